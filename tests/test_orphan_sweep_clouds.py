"""No machine lost or leaked, at the clouds: real boto3 against moto's server with two
regions, the real google-cloud-compute client and real `requests` against the local Compute
and Lambda API servers, on the real dev server with the real workflows.

- A node placed outside the provider's first region has its machine terminated there.
- The sweep terminates this installation's machine that no node owns, in its own region,
  and leaves another installation's alone.
- A machine terminated behind Navarch's back gets its node `instance_gone` and a
  replacement.
- A launch whose answer was lost after the cloud made the machine leaks nothing: the retry
  finds the machine by its node-id tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from temporalio.client import Client

from navarch.activities.cloud import ProviderError
from navarch.activities.gcp import GcpProvider
from navarch.activities.lambda_labs import LambdaProvider
from navarch.agent.fake_host import FakeHostManager
from navarch.contracts.cloud import CloudErrorType, ProvisionRequest
from navarch.contracts.node import NodeState, TransitionReason
from navarch.contracts.spec import ProviderChoice, RegionalIds
from navarch.contracts.sweep import SweepStatus, SweepTarget
from navarch.sim.fakeworld import FakeInstance, FakeWorld
from navarch.temporal.identity import namespace_cluster_id
from navarch.workers.control_plane import ControlPlane

from fake_gce_api import FakeGceApi
from fake_lambda_api import FakeLambdaApi
from lifecycle_helpers import (
    SimPlane,
    eventually,
    fast_spec,
    moto_hosts,
    node_status,
    pool_status,
    start_pool,
    start_sweep,
    sweep_status,
)
from local_http import LossyProxy

REGIONS = ("us-east-1", "us-west-2")


def ec2(endpoint: str, region: str) -> Any:
    return boto3.client("ec2", endpoint_url=endpoint, region_name=region)


def ami(endpoint: str, region: str) -> str:
    return str(ec2(endpoint, region).describe_images(Owners=["amazon"])["Images"][0]["ImageId"])


def aws_choice(endpoint: str) -> ProviderChoice:
    """First region us-east-1 (its AMI at the top level), pools land in us-west-2 (its own)."""
    return ProviderChoice(name=f"aws-{uuid.uuid4().hex[:6]}", type="aws",
                          instance_type="p5.48xlarge", region="us-east-1",
                          ami=ami(endpoint, "us-east-1"), regions=["us-west-2"],
                          regional={"us-west-2": RegionalIds(ami=ami(endpoint, "us-west-2"))})


def machines(endpoint: str, region: str, **tags: str) -> list[dict[str, Any]]:
    found = ec2(endpoint, region).describe_instances(Filters=[
        {"Name": f"tag:{k.replace('_', ':', 1).replace('_', '-')}", "Values": [v]}
        for k, v in tags.items()])
    return [i for r in found["Reservations"] for i in r["Instances"]]


@contextlib.asynccontextmanager
async def cloud_plane(client: Client, tmp_path: Any, endpoint: str, *,
                    hosts: bool = True) -> AsyncIterator[SimPlane]:
    """A control plane with the real cloud providers (no fake cloud), and simulated GPU
    hosts for the machines moto runs in both regions."""
    world = FakeWorld(tmp_path / "faults.db")
    plane = ControlPlane(client, world=None, task_queue=f"navarch-{uuid.uuid4().hex}")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(plane.run(stop))]
    if hosts:
        manager = FakeHostManager(client, world, discover=moto_hosts(endpoint, REGIONS))
        tasks.append(asyncio.create_task(manager.run(stop)))
    try:
        yield SimPlane(plane, world)
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task


def terminated(status: SweepStatus) -> set[str]:
    return {r.instance_id for r in status.records if r.action == "terminated"}


def run_ghost(endpoint: str, region: str, cluster: str) -> str:
    """A machine made behind Navarch's back, tagged as this installation's (or another's)
    with a node id no workflow has."""
    return str(ec2(endpoint, region).run_instances(
        ImageId=ami(endpoint, region), InstanceType="p5.48xlarge", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": "navarch:managed-by", "Value": "navarch"},
            {"Key": "navarch:cluster", "Value": cluster},
            {"Key": "navarch:node-id", "Value": f"ghost-{uuid.uuid4().hex[:6]}"}]}],
    )["Instances"][0]["InstanceId"])


def state_of(endpoint: str, region: str, instance_id: str) -> str:
    return str(ec2(endpoint, region).describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]["State"]["Name"])


async def test_nodes_failing_their_boot_outside_the_first_region_leave_no_machine(
        dev_env, tmp_path, aws_env):
    """The issue's reproduction: the provider's first region is us-east-1, the pool lands in
    us-west-2, and no agent ever starts: every node fails its boot deadline and every one
    of its machines is terminated, in us-west-2."""
    client = dev_env.client
    choice = aws_choice(aws_env)
    async with cloud_plane(client, tmp_path, aws_env, hosts=False) as plane:
        spec = fast_spec(min_nodes=2, providers=[choice], boot_deadline=timedelta(seconds=2))
        await start_pool(client, plane, spec)
        pool = await eventually(
            lambda: pool_status(client, spec.name),
            lambda p: sum(n.state is NodeState.FAILED for n in p.nodes) >= 2,
            within=60, what="two boot failures")
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")
        failed = [n.node_id for n in pool.nodes if n.state is NodeState.FAILED]
        for node_id in failed:
            node = await node_status(client, node_id)
            assert node.region == "us-west-2" and node.instance_id.startswith("i-")
            assert state_of(aws_env, "us-west-2", node.instance_id) in (
                "shutting-down", "terminated"), node_id
        assert not machines(aws_env, "us-east-1", navarch_pool=spec.name)


async def test_on_aws_the_sweep_cleans_up_in_every_region_and_gone_machines_are_replaced(
        dev_env, tmp_path, aws_env):
    client = dev_env.client
    ours = await namespace_cluster_id(client)
    choice = aws_choice(aws_env)
    async with cloud_plane(client, tmp_path, aws_env) as plane:
        spec = fast_spec(min_nodes=1, providers=[choice],
                         health={"unreachable_toleration": timedelta(minutes=30)})
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1,
                                within=60, what="1 ready in us-west-2")
        node = await node_status(client, pool.nodes[0].node_id)
        assert node.region == "us-west-2"
        mine = machines(aws_env, "us-west-2", navarch_node_id=node.node_id)
        assert [{t["Key"]: t["Value"] for t in m["Tags"]}["navarch:cluster"]
                for m in mine] == [ours]

        ghost_west = run_ghost(aws_env, "us-west-2", ours)
        ghost_east = run_ghost(aws_env, "us-east-1", ours)
        foreign = run_ghost(aws_env, "us-west-2", "another-install")
        handle = await start_sweep(client, plane.task_queue,
                                   [SweepTarget(provider=choice, region=r) for r in REGIONS])
        try:
            status = await eventually(
                lambda: sweep_status(handle),
                lambda s: {ghost_west, ghost_east} <= terminated(s), within=30,
                what="both orphans terminated")
            assert state_of(aws_env, "us-west-2", ghost_west) in ("shutting-down", "terminated")
            assert state_of(aws_env, "us-east-1", ghost_east) in ("shutting-down", "terminated")
            assert state_of(aws_env, "us-west-2", foreign) == "running"
            assert node.instance_id not in terminated(status)
            assert {r.target.split("/")[0] for r in status.results} == {choice.name}
            assert sum(r.others for r in status.results) >= 1  # the other installation's

            # A spot reclaim: the node's machine is terminated behind Navarch's back.
            ec2(aws_env, "us-west-2").terminate_instances(InstanceIds=[node.instance_id])
            gone = await eventually(
                lambda: node_status(client, node.node_id), lambda n: n.state.is_terminal(),
                within=30, what="the node left")
            assert gone.transitions[-1].reason is TransitionReason.INSTANCE_GONE
            await eventually(lambda: pool_status(client, spec.name),
                             lambda p: p.ready == 1 and p.replacements == 1, within=60,
                             what="a replacement ready")
        finally:
            await handle.terminate("test over")
            await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")


async def test_a_launch_whose_answer_is_lost_leaves_one_machine(dev_env, tmp_path, aws_env,
                                                               monkeypatch):
    """RunInstances makes the machine and the answer never arrives (botocore's own retries
    off, so the failure reaches the activity, as a timeout would): the activity's retry
    finds the machine by its node-id tag instead of launching a second."""
    with LossyProxy(aws_env, b"Action=RunInstances") as proxy:
        proxy.lose = 1
        monkeypatch.setenv("NAVARCH_AWS_ENDPOINT_URL", proxy.base_url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        client = dev_env.client
        choice = aws_choice(aws_env)
        async with cloud_plane(client, tmp_path, aws_env) as plane:
            spec = fast_spec(min_nodes=1, providers=[choice])
            await start_pool(client, plane, spec)
            pool = await eventually(lambda: pool_status(client, spec.name),
                                    lambda p: p.ready == 1, within=60, what="1 ready")
            await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")
        assert proxy.lost == 1
        made = machines(aws_env, "us-west-2", navarch_node_id=pool.nodes[0].node_id)
        assert len(made) == 1, [m["InstanceId"] for m in made]
        assert not pool.replacements


async def test_on_gce_and_lambda_the_sweep_terminates_only_this_installations_orphans(
        dev_env, tmp_path, gce, lambda_api):
    client = dev_env.client
    ours = await namespace_cluster_id(client)
    gcp = ProviderChoice(name=f"gcp-{uuid.uuid4().hex[:6]}", type="gcp",
                         instance_type="a3-highgpu-8g", project="ml-prod",
                         zone="us-central1-a", zones=["us-central1-a", "us-central1-b"])
    lam = ProviderChoice(name=f"lambda-{uuid.uuid4().hex[:6]}", type="lambda",
                         instance_type="gpu_8x_h100_sxm5", regions=["us-west-2"])
    # Machines made by Navarch for nodes that no longer exist, one each of ours and of
    # another installation, through the providers themselves.
    made = {}
    for choice, provider in ((gcp, GcpProvider(gcp)), (lam, LambdaProvider(lam))):
        for cluster in (ours, "another-install"):
            node_id = f"gone-{uuid.uuid4().hex[:6]}"
            request = ProvisionRequest(node_id=node_id, pool="p", provider=choice,
                                       zone="us-central1-b" if choice is gcp else None,
                                       cluster_id=cluster)
            made[(choice.type, cluster)] = (await provider.provision(request)).instance_id
    async with cloud_plane(client, tmp_path, "", hosts=False) as plane:
        handle = await start_sweep(client, plane.task_queue,
                                   [SweepTarget(provider=gcp), SweepTarget(provider=lam)])
        try:
            status = await eventually(
                lambda: sweep_status(handle),
                lambda s: {made[("gcp", ours)], made[("lambda", ours)]} <= terminated(s),
                within=30, what="our orphans terminated at GCE and Lambda")
        finally:
            await handle.terminate("test over")
    assert ("us-central1-b", made[("gcp", ours)].split("/")[1]) not in gce.instances
    assert ("us-central1-b", made[("gcp", "another-install")].split("/")[1]) in gce.instances
    assert lambda_api.instances[made[("lambda", ours)]]["status"] == "terminated"
    assert lambda_api.instances[made[("lambda", "another-install")]]["status"] == "booting"
    assert not status.errors


async def test_gce_and_lambda_launches_whose_answer_is_lost_make_one_machine(
        gce, lambda_api):
    for provider, api in ((GcpProvider(ProviderChoice(
            name="gcp", type="gcp", instance_type="a3-highgpu-8g", project="ml-prod",
            zone="us-central1-a")), gce),
            (LambdaProvider(ProviderChoice(name="lambda", type="lambda",
                                           instance_type="gpu_8x_h100_sxm5",
                                           regions=["us-west-2"])), lambda_api)):
        api.lose_answers = 1
        request = ProvisionRequest(node_id="n-lost", pool="p", provider=provider.choice,
                                   cluster_id="ours")
        with pytest.raises(ProviderError) as info:
            await provider.provision(request)
        assert info.value.error_type is CloudErrorType.TRANSIENT  # retried by the activity
        again = await provider.provision(request)
        assert (await provider.provision(request)).instance_id == again.instance_id
        listed = [i for i in await provider.list_managed("") if i.node_id == "n-lost"]
        assert [i.instance_id for i in listed] == [again.instance_id]
        assert listed[0].cluster == "ours"


def gce_hosts(api: FakeGceApi) -> list[FakeInstance]:
    return [host(f"{zone}/{name}", inst.get("labels", {}).get("navarch-node-id", ""), zone)
            for (zone, name), inst in list(api.instances.items())]


def lambda_hosts(api: FakeLambdaApi) -> list[FakeInstance]:
    return [host(iid, {t["key"]: t["value"] for t in inst.get("tags", [])}.get(
                 "navarch-node-id", ""), inst["region"]["name"])
            for iid, inst in list(api.instances.items()) if inst["status"] != "terminated"]


def host(instance_id: str, node_id: str, where: str) -> FakeInstance:
    return FakeInstance(instance_id=instance_id, node_id=node_id, pool="", provider="",
                        instance_type="", region=where, zone="", state="running",
                        created_at=0.0, boot_at=0.0, gpu_count=8, gpu_model="H100",
                        agent_enabled=True, never_boot=False)


@pytest.mark.parametrize("cloud", ["gcp", "lambda"])
async def test_on_gce_and_lambda_a_machine_gone_behind_navarchs_back_is_replaced(
        dev_env, tmp_path, gce, lambda_api, cloud):
    client = dev_env.client
    if cloud == "gcp":
        choice = ProviderChoice(name=f"gcp-{uuid.uuid4().hex[:6]}", type="gcp",
                                instance_type="a3-highgpu-8g", project="ml-prod",
                                zone="us-central1-a")
        discover, remove = (lambda: gce_hosts(gce)), (
            lambda iid: gce.instances.pop(tuple(iid.split("/", 1))))
    else:
        choice = ProviderChoice(name=f"lambda-{uuid.uuid4().hex[:6]}", type="lambda",
                                instance_type="gpu_8x_h100_sxm5", regions=["us-west-2"])
        discover = lambda: lambda_hosts(lambda_api)  # noqa: E731
        remove = lambda iid: lambda_api.instances[iid].update(status="terminated")  # noqa: E731
    world = FakeWorld(tmp_path / "faults.db")
    plane = ControlPlane(client, world=None, task_queue=f"navarch-{uuid.uuid4().hex}")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(plane.run(stop)), asyncio.create_task(
        FakeHostManager(client, world, discover=discover).run(stop))]
    try:
        spec = fast_spec(min_nodes=1, providers=[choice],
                         health={"unreachable_toleration": timedelta(minutes=30)})
        await start_pool(client, SimPlane(plane, world), spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1,
                                within=60, what=f"1 ready on {cloud}")
        node = await node_status(client, pool.nodes[0].node_id)
        remove(node.instance_id)  # reclaimed at the cloud
        gone = await eventually(lambda: node_status(client, node.node_id),
                                lambda n: n.state.is_terminal(), within=30, what="it left")
        assert gone.transitions[-1].reason is TransitionReason.INSTANCE_GONE
        assert node.instance_id in gone.transitions[-1].detail
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.ready == 1 and p.replacements == 1, within=60,
                         what="replaced")
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
