"""The AWS provider: the real boto3 client against moto's server mode on 127.0.0.1."""

from __future__ import annotations

import os

import boto3
import pytest
from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from navarch.activities.aws import AwsProvider, classify
from navarch.activities.cloud import CloudActivities, ProviderError
from navarch.contracts.cloud import (
    CloudErrorType,
    InstanceState,
    ProvisionRequest,
    TerminateRequest,
)
from navarch.contracts.spec import ProviderChoice, RegionalIds


def an_ami(region: str = "us-east-1") -> str:
    return str(boto3.client("ec2", endpoint_url=os.environ["NAVARCH_AWS_ENDPOINT_URL"],
                            region_name=region)
               .describe_images(Owners=["amazon"])["Images"][0]["ImageId"])


def provider(**kw) -> AwsProvider:
    choice = ProviderChoice(name="aws", type="aws", instance_type="p5.48xlarge",
                            region="us-east-1", ami=an_ami(), **kw)
    return AwsProvider(choice)


def request(node_id: str, pool: str = "train") -> ProvisionRequest:
    return ProvisionRequest(node_id=node_id, pool=pool, provider=ProviderChoice(
        name="aws", type="aws", instance_type="p5.48xlarge"), labels={"team": "ml"})


async def test_provision_is_idempotent_tagged_listed_and_terminated(aws_env):
    aws = provider()
    first = await aws.provision(request("node-aaa"))
    again = await aws.provision(request("node-aaa"))
    assert again.instance_id == first.instance_id
    assert (first.node_id, first.pool, first.provider) == ("node-aaa", "train", "aws")
    assert first.instance_type == "p5.48xlarge" and first.zone.startswith("us-east-1")
    ec2 = boto3.client("ec2", endpoint_url=aws_env)
    tags = {t["Key"]: t["Value"] for r in ec2.describe_instances(
        InstanceIds=[first.instance_id])["Reservations"] for t in r["Instances"][0]["Tags"]}
    assert tags["navarch:managed-by"] == "navarch" and tags["team"] == "ml"
    await aws.provision(request("node-bbb"))
    await aws.provision(request("node-ccc", pool="other"))
    listed = {i.node_id for i in await aws.list("train")}
    assert listed == {"node-aaa", "node-bbb"}
    assert await aws.terminate(first.instance_id) is True
    gone = await aws.get(first.instance_id)
    assert gone is not None and gone.state in (InstanceState.STOPPING, InstanceState.TERMINATED)
    assert {i.node_id for i in await aws.list("train")} == {"node-bbb"}
    assert await aws.terminate("i-0123456789abcdef0") is False  # not found counts as done
    assert await aws.get("i-0123456789abcdef0") is None


async def test_cloud_errors_map_to_the_closed_set(aws_env):
    aws = provider()

    def refuse(code: str):
        def handler(**kwargs):
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}},
                              "RunInstances")
        return handler

    client = aws.client()
    for code, kind in [("InsufficientInstanceCapacity", CloudErrorType.CAPACITY),
                       ("RequestLimitExceeded", CloudErrorType.THROTTLED),
                       ("InvalidAMIID.NotFound", CloudErrorType.INVALID_REQUEST),
                       ("InternalError", CloudErrorType.TRANSIENT)]:
        hook = refuse(code)
        client.meta.events.register("before-call.ec2.RunInstances", hook)
        try:
            with pytest.raises(ProviderError) as info:
                await aws.provision(request(f"node-{code}"))
        finally:
            client.meta.events.unregister("before-call.ec2.RunInstances", hook)
        assert info.value.error_type is kind and code in str(info.value)


async def test_missing_credentials_are_an_invalid_request(aws_env, monkeypatch):
    aws = provider()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    fresh = AwsProvider(aws.choice)
    with pytest.raises(ProviderError) as info:
        await fresh.provision(request("node-nocreds"))
    assert info.value.error_type is CloudErrorType.INVALID_REQUEST
    assert "no AWS credentials" in str(info.value)


def test_classify():
    assert classify("VcpuLimitExceeded") is CloudErrorType.CAPACITY
    assert classify("UnauthorizedOperation") is CloudErrorType.INVALID_REQUEST
    assert classify("Throttling") is CloudErrorType.THROTTLED
    assert classify("SomethingNew") is CloudErrorType.TRANSIENT


async def test_worker_launches_instances_with_the_agent_bootstrap(aws_env, monkeypatch):
    import base64
    from types import SimpleNamespace

    from navarch.workers.control_plane import ControlPlane

    monkeypatch.setenv("NAVARCH_AGENT_TEMPORAL_ADDRESS", "temporal.internal:7233")
    client = SimpleNamespace(namespace="fleet",
                             service_client=SimpleNamespace(config=SimpleNamespace(
                                 target_host="127.0.0.1:7233")))
    plane = ControlPlane(client)  # type: ignore[arg-type]
    aws = plane.provider_factories()["aws"](provider().choice)
    inst = await aws.provision(request("node-boot"))
    ec2 = boto3.client("ec2", endpoint_url=aws_env)
    attr = ec2.describe_instance_attribute(InstanceId=inst.instance_id, Attribute="userData")
    user_data = base64.b64decode(attr["UserData"]["Value"]).decode()
    assert user_data.startswith("#cloud-config")
    assert "NAVARCH_NODE_ID=node-boot" in user_data
    assert "TEMPORAL_ADDRESS=temporal.internal:7233" in user_data
    assert "TEMPORAL_NAMESPACE=fleet" in user_data


async def test_describe_type_reads_gpu_info(aws_env):
    info = await provider().describe_type()
    assert (info.name, info.gpu_count, info.gpu_model) == ("p5.48xlarge", 8, "H100")
    assert info.price_per_hour is None and info.available_regions is None


async def test_list_types_gives_gpu_types_with_their_zones(aws_env):
    listed = {t.name: t for t in await provider().list_types()}
    assert listed and all(t.gpu_count for t in listed.values())
    assert "m5.large" not in listed  # no GPU, not listed
    p5 = listed["p5.48xlarge"]
    assert (p5.gpu_count, p5.gpu_model, p5.vcpus) == (8, "H100", 192)
    assert p5.memory_gib == 2048.0 and p5.price_per_hour is None
    assert p5.zones and all(z.startswith("us-east-1") for z in p5.zones)


async def test_machines_live_and_are_terminated_in_their_own_region(aws_env):
    """The provider's first region is us-east-1; a node placed in us-west-2 is looked up,
    terminated and confirmed gone there, not in the first region."""

    west_ami = an_ami("us-west-2")
    aws = provider(regions=["us-east-1", "us-west-2"],
                   regional={"us-west-2": RegionalIds(ami=west_ami)})
    west = request("node-west").model_copy(update={"region": "us-west-2"})
    made = await aws.provision(west)
    ec2_west = boto3.client("ec2", endpoint_url=aws_env, region_name="us-west-2")
    launched = ec2_west.describe_instances(InstanceIds=[made.instance_id])[
        "Reservations"][0]["Instances"][0]
    assert launched["ImageId"] == west_ami  # the region's own AMI, not us-east-1's
    assert made.region == "us-west-2" and made.zone.startswith("us-west-2")
    # The same node asked for in the first region finds its machine in the other.
    again = await aws.provision(request("node-west"))
    assert again.instance_id == made.instance_id and again.region == "us-west-2"
    activities = CloudActivities({"aws": lambda choice: aws})
    assert await ActivityEnvironment().run(activities.terminate, TerminateRequest(
        provider=aws.choice, instance_id=made.instance_id, region="us-west-2")) is True
    state = ec2_west.describe_instances(InstanceIds=[made.instance_id])[
        "Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    gone = await aws.get(made.instance_id, "us-west-2")
    assert gone is not None and gone.state in (InstanceState.STOPPING, InstanceState.TERMINATED)


async def test_a_region_without_its_own_ids_is_refused_not_launched_with_anothers(aws_env):
    aws = provider(regions=["us-east-1", "us-west-2"])  # the AMI is us-east-1's only
    with pytest.raises(ProviderError) as info:
        await aws.provision(request("node-x").model_copy(update={"region": "us-west-2"}))
    assert info.value.error_type is CloudErrorType.INVALID_REQUEST
    assert "us-west-2" in str(info.value) and "regions.us-west-2" in str(info.value)
    ec2_west = boto3.client("ec2", endpoint_url=aws_env, region_name="us-west-2")
    assert not [i for r in ec2_west.describe_instances()["Reservations"]
                for i in r["Instances"] if i["State"]["Name"] != "terminated"
                and {"Key": "navarch:node-id", "Value": "node-x"} in i.get("Tags", [])]


async def test_a_terminate_that_leaves_the_machine_running_is_not_done(aws_env):
    """A provider that answers "terminated" while the machine still runs: the activity
    fails (and is retried) instead of reporting it gone."""

    aws = provider()
    made = await aws.provision(request("node-stuck"))

    async def pretend(instance_id: str, region: str | None = None) -> bool:
        return True

    aws.terminate = pretend  # type: ignore[method-assign]
    activities = CloudActivities({"aws": lambda choice: aws})
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(activities.terminate, TerminateRequest(
            provider=aws.choice, instance_id=made.instance_id))
    assert "is still" in str(info.value) and not info.value.non_retryable
