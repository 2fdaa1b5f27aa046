"""Rebooting a machine through its cloud, where it lives: EC2 RebootInstances in the
instance's own region (moto), GCE instances.reset in its zone and Lambda's restart (their
local API servers), and the fake cloud's reboot, which heals what a reboot heals and keeps
hardware faults. The repair ladder (issue 18) builds on these."""

from __future__ import annotations

import os
import time

import boto3
from temporalio.testing import ActivityEnvironment

from navarch.activities.aws import AwsProvider
from navarch.activities.cloud import CloudActivities
from navarch.activities.fake_cloud import FakeCloudProvider
from navarch.activities.gcp import GcpProvider
from navarch.activities.lambda_labs import LambdaProvider
from navarch.contracts.cloud import ProvisionRequest, TerminateRequest
from navarch.contracts.spec import ProviderChoice, RegionalIds
from navarch.sim.fakeworld import FakeWorld, GpuFault, survives_reboot, survives_reset


def ami(region: str) -> str:
    return str(boto3.client("ec2", endpoint_url=os.environ["NAVARCH_AWS_ENDPOINT_URL"],
                            region_name=region)
               .describe_images(Owners=["amazon"])["Images"][0]["ImageId"])


async def test_ec2_reboot_acts_in_the_instances_own_region(aws_env):
    choice = ProviderChoice(name="aws", type="aws", instance_type="p5.48xlarge",
                            region="us-east-1", ami=ami("us-east-1"), regions=["us-west-2"],
                            regional={"us-west-2": RegionalIds(ami=ami("us-west-2"))})
    aws = AwsProvider(choice)
    made = await aws.provision(ProvisionRequest(node_id="n-reboot", pool="p", provider=choice,
                                                region="us-west-2"))
    activities = CloudActivities({"aws": lambda c: aws})
    assert await ActivityEnvironment().run(activities.reboot, TerminateRequest(
        provider=choice, instance_id=made.instance_id, region="us-west-2")) is True
    # Asked in another region, EC2 does not know the instance: nothing rebooted there.
    assert await aws.reboot(made.instance_id, "us-east-1") is False


async def test_gce_resets_in_the_instances_zone(gce):
    choice = ProviderChoice(name="gcp", type="gcp", instance_type="a3-highgpu-8g",
                            project="ml-prod", zone="us-central1-b")
    gcp = GcpProvider(choice)
    made = await gcp.provision(ProvisionRequest(node_id="n-reset", pool="p", provider=choice))
    assert await gcp.reboot(made.instance_id) is True
    assert gce.resets == [("us-central1-b", "nv-n-reset")]
    assert await gcp.reboot("us-central1-a/nv-n-reset") is False


async def test_lambda_restarts(lambda_api):
    choice = ProviderChoice(name="lambda", type="lambda", instance_type="gpu_8x_h100_sxm5",
                            regions=["us-west-2"])
    lam = LambdaProvider(choice)
    made = await lam.provision(ProvisionRequest(node_id="n-restart", pool="p", provider=choice))
    assert await lam.reboot(made.instance_id) is True
    assert lambda_api.restarts == [made.instance_id]
    assert await lam.reboot("inst-9999") is False


def fault(kind: str, value: float | None = None) -> GpuFault:
    return GpuFault(id=1, node_id="n", kind=kind, gpu_index=0, value=value, message="")


def test_what_a_reboot_heals_by_the_catalogs_action():
    assert not survives_reboot(fault("xid", 13))  # RESTART_APP: the application's fault
    assert not survives_reboot(fault("xid", 31))
    assert not survives_reboot(fault("temperature", 95))
    assert survives_reboot(fault("ecc_dbe"))  # hardware stays
    assert survives_reboot(fault("pcie"))
    assert survives_reboot(fault("xid", 999_999))  # unknown: assume the worst


async def test_the_fake_cloud_reboot_heals_transient_faults_and_keeps_hardware(tmp_path):
    world = FakeWorld(tmp_path / "world.db")
    choice = ProviderChoice(name="sim", type="fake", instance_type="h100-8x")
    fake = FakeCloudProvider(world, choice, boot_seconds=0.0, reboot_seconds=30.0)
    made = await fake.provision(ProvisionRequest(node_id="n-1", pool="p", provider=choice))
    world.boot_due()
    world.inject("n-1", "xid", value=13)
    world.inject("n-1", "temperature", value=95)
    world.inject("n-1", "ecc_dbe")
    before = time.time()
    assert await fake.reboot(made.instance_id) is True
    inst = world.get(made.instance_id)
    assert inst is not None and inst.state == "pending" and inst.boot_at >= before + 29
    assert [f.kind for f in world.faults("n-1")] == ["ecc_dbe"]
    assert world.counter("reboots") == 1
    world.terminate(made.instance_id)
    assert await fake.reboot(made.instance_id) is False


def test_what_a_reset_heals_is_less_than_a_reboot():
    assert not survives_reset(fault("xid", 119))  # RESET_GPU
    assert not survives_reset(fault("xid", 48))  # a DBE: the reset remaps the row
    assert survives_reset(fault("xid", 151))  # RESTART_VM: the machine must restart
    assert survives_reset(fault("nvml_failure"))  # the driver lost the GPU
    assert survives_reset(fault("temperature", 95))  # a reset does not cool a GPU
    assert survives_reset(fault("ecc_dbe"))
    assert not survives_reboot(fault("xid", 151)) and not survives_reboot(fault("nvml_failure"))
