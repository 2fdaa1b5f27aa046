"""Reliability runs that fit in the suite: a pool converges while the cloud throttles,
answers 5xx and runs out of capacity at a steady rate; a dev server stopped and restarted
on its SQLite file mid-repair resumes every pool and node while the worker keeps running.
(Killing the worker during a 50-node provision: benchmarks/worker_kill.py.)"""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from navarch.contracts.names import pool_workflow_id
from navarch.contracts.spec import ProviderChoice
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.devserver import DevServer, free_port

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    start_pool,
)


def test_a_fault_rate_is_kept_exactly_on_the_calls_it_matches(tmp_path):
    world = FakeWorld(tmp_path / "w.db")
    world.set_cloud_fault("unavailable", 0, rate=0.2, provider="a")
    refused = []
    for i in range(20):
        for provider in ("a", "b"):
            try:
                world.provision(node_id=f"{provider}{i}", pool="p", provider=provider,
                                instance_type="h100-8x", region="r", zone="z", gpu_count=8,
                                gpu_model="H100")
            except Exception:
                refused.append(f"{provider}{i}")
    assert refused == ["a2", "a7", "a12", "a17"]  # one in five of provider a's, from the 3rd
    assert world.counter("fault:unavailable") == 4


async def test_pool_converges_under_provider_faults_at_a_rate(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        world = plane.world
        world.set_cloud_fault("throttle", 0, rate=0.3)
        world.set_cloud_fault("unavailable", 0, rate=0.2)  # 5xx
        world.set_cloud_fault("capacity", 0, rate=0.15, provider="sim-a")
        spec = fast_spec(min_nodes=8, providers=[
            ProviderChoice(name="sim-a", type="fake", instance_type="h100-8x"),
            ProviderChoice(name="sim-b", type="fake", instance_type="h100-8x")])
        await start_pool(client, plane, spec)
        status = await eventually(lambda: pool_status(client, spec.name),
                                  lambda s: s.ready == 8, within=150, what="8 ready")
        faults = {k: world.counter(f"fault:{k}") for k in ("throttle", "unavailable", "capacity")}
        assert all(faults.values()), faults  # every kind of refusal happened, and was survived
        live = world.instances(spec.name, live_only=True)
        assert len(live) == 8 and len({i.node_id for i in live}) == 8
        assert {i.node_id for i in live} == {n.node_id for n in status.nodes
                                             if n.state.value == "ready"}


async def test_dev_server_restart_mid_repair_resumes_pools_and_nodes(tmp_path):
    server = DevServer(tmp_path / "temporal", port=free_port(), ui_port=free_port())
    server.start()
    try:
        client = await Client.connect(f"127.0.0.1:{server.port}",
                                      data_converter=pydantic_data_converter)
        async with control_plane(client, tmp_path) as plane:
            first, second = fast_spec(min_nodes=3), fast_spec(min_nodes=2)
            await start_pool(client, plane, first)
            before = await eventually(lambda: pool_status(client, first.name),
                                      lambda s: s.ready == 3, what="first pool ready")
            victim = before.nodes[0].node_id
            plane.world.inject(victim, "xid", value=79)
            await start_pool(client, plane, second)  # still provisioning when the server goes
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(3)  # the worker's polls fail meanwhile
            await asyncio.to_thread(server.start)
            after = await eventually(lambda: pool_status(client, first.name),
                                     lambda s: s.ready == 3 and s.replacements == 1,
                                     within=90, what="first pool repaired after the restart")
            await eventually(lambda: pool_status(client, second.name),
                             lambda s: s.ready == 2, within=60, what="second pool ready")
            gone = await node_status(client, victim)
            assert gone.state.value == "terminated" and gone.health_rule
            for name, size in ((first.name, 3), (second.name, 2)):
                desc = await client.get_workflow_handle(pool_workflow_id(name)).describe()
                assert desc.status is not None and desc.status.name == "RUNNING"
                live = plane.world.instances(name, live_only=True)
                assert len(live) == size, (name, live)
            assert victim not in {i.node_id for i in plane.world.instances(first.name,
                                                                         live_only=True)}
            assert any(n.replacement_of == victim for n in after.nodes)
    finally:
        server.stop()
