"""The lifecycle end to end with the pool on the AWS provider: real boto3 against moto's
server, simulated GPU hosts for the instances moto runs."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import boto3

from navarch.agent.fake_host import FakeHostManager
from navarch.contracts.spec import ProviderChoice
from navarch.sim.fakeworld import FakeWorld
from navarch.workers.control_plane import ControlPlane

from lifecycle_helpers import (
    SimPlane,
    eventually,
    fast_spec,
    moto_hosts,
    node_status,
    pool_status,
    start_pool,
)


async def test_pool_on_aws_comes_up_and_repairs(dev_env, tmp_path, aws_env):
    client = dev_env.client
    ec2 = boto3.client("ec2", endpoint_url=aws_env, region_name="us-east-1")
    discover = moto_hosts(aws_env)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    world = FakeWorld(tmp_path / "faults.db")
    plane = ControlPlane(client, world=None, task_queue=f"navarch-{uuid.uuid4().hex}")
    hosts = FakeHostManager(client, world, discover=discover)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(plane.run(stop)), asyncio.create_task(hosts.run(stop))]
    try:
        spec = fast_spec(min_nodes=2, providers=[ProviderChoice(
            name="aws", type="aws", instance_type="p5.48xlarge", region="us-east-1", ami=ami)])
        await start_pool(client, SimPlane(plane, world), spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 2,
                                within=60, what="2 ready on AWS")
        victim = pool.nodes[0].node_id
        node = await node_status(client, victim)
        assert node.provider == "aws" and node.instance_id.startswith("i-")
        world.inject(victim, "xid", value=79)
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.ready == 2 and p.replacements == 1, within=60,
                         what="replaced on AWS")
        state = ec2.describe_instances(InstanceIds=[node.instance_id])["Reservations"][0][
            "Instances"][0]["State"]["Name"]
        assert state in ("shutting-down", "terminated")
        assert len(discover()) == 2
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
