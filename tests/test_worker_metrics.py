"""The control-plane worker's Prometheus endpoint carries the workflows' own metrics: an
autoscaler decision is counted there, by pool and direction."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
import uuid
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from navarch.activities.fleet import live_nodes
from navarch.config.schema import AutoscalingConfig
from navarch.contracts.names import pool_workflow_id
from navarch.contracts.pool import PoolInput, PoolStatus
from navarch.contracts.spec import PoolSpec, ProviderChoice
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.devserver import free_port
from navarch.temporal.runtime import CORE_LOGGER, ExpectedCoreWarnings, worker_runtime
from navarch.workflows.pool import PoolWorkflow

from autoscale_stubs import ScriptedMetrics, StubNode


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


async def test_autoscaler_decisions_are_exported(dev_env):
    port = free_port()
    client = await Client.connect(dev_env.client.service_client.config.target_host,
                                  data_converter=pydantic_data_converter,
                                  runtime=worker_runtime(port, "127.0.0.1"))
    name = f"m-{uuid.uuid4().hex[:8]}"
    spec = PoolSpec(name=name, providers=[ProviderChoice(name="sim", type="fake",
                                                         instance_type="h100-8x")],
                    instance_type="h100-8x", min_nodes=1, max_nodes=3,
                    cooldown=timedelta(seconds=1), autoscale_interval=timedelta(seconds=1),
                    autoscaling=AutoscalingConfig(type="reactive"))
    metrics = ScriptedMetrics(utilization=99.0)
    queue = f"m-{uuid.uuid4().hex}"
    async with Worker(client, task_queue=queue, workflows=[PoolWorkflow, StubNode],
                      activities=[metrics.gather, live_nodes]):
        handle = await client.start_workflow(PoolWorkflow.run, PoolInput(spec=spec),
                                             id=pool_workflow_id(name), task_queue=queue)
        text = ""
        for _ in range(100):
            status = await handle.query("status", result_type=PoolStatus)
            text = await asyncio.to_thread(scrape, port)
            if status.target == 3 and f'pool="{name}"' in text:
                break
            await asyncio.sleep(0.2)
        await handle.terminate()
    lines = [line for line in text.splitlines()
             if line.startswith("navarch_autoscaler_decisions") and f'pool="{name}"' in line]
    assert lines, text[:2000]
    assert any('direction="up"' in line and 'autoscaler="reactive"' in line
               and line.rstrip().endswith(" 2") for line in lines), lines
    assert "temporal_workflow_task_execution_latency" in text  # the SDK's own, same endpoint


async def test_fleet_metrics_through_a_repair(dev_env, tmp_path):
    """A pool on the fake cloud (the real NodeWorkflows and simulated agents), one refusal
    for capacity, one fatal Xid: every fleet metric shows up on the worker's endpoint."""
    from lifecycle_helpers import control_plane, eventually, fast_spec, pool_status, start_pool

    port = free_port()
    client = await Client.connect(dev_env.client.service_client.config.target_host,
                                  data_converter=pydantic_data_converter,
                                  runtime=worker_runtime(port, "127.0.0.1"))
    async with control_plane(client, tmp_path, fleet_gauges_seconds=0.5) as plane:
        plane.world.set_cloud_fault("capacity", 1)
        spec = fast_spec(min_nodes=2, max_nodes=2)
        await start_pool(client, plane, spec)
        status = await eventually(lambda: pool_status(client, spec.name),
                                  lambda s: s.ready == 2, within=60, what="two ready")
        victim = next(n.node_id for n in status.nodes if n.state.value == "ready")
        plane.world.inject(victim, "xid", value=79)
        await eventually(lambda: pool_status(client, spec.name),
                         lambda s: any(n.replacement_of == victim and n.state.value == "ready"
                                       for n in s.nodes), within=60,
                         what="the victim's replacement ready")
        text = await eventually(
            lambda: asyncio.to_thread(scrape, port),
            lambda t: any(line.startswith("navarch_pool_nodes") and 'state="ready"' in line
                          and f'pool="{spec.name}"' in line and line.rstrip().endswith(" 2")
                          for line in t.splitlines())
            and "navarch_fault_to_replacement_ready_seconds_count" in t,
            within=30, what="the pool's gauges after the repair")
        await client.get_workflow_handle(pool_workflow_id(spec.name)).terminate()

    pool = f'pool="{spec.name}"'

    def lines(name: str, *having: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith(name)
                and all(h in line for h in having)]

    assert lines("navarch_node_transitions", pool, 'reason="unhealthy"',
                 'to_state="cordoned"')
    assert lines("navarch_provisioning_seconds_count", 'provider="sim"',
                 'instance_type="h100-8x"')
    assert lines("navarch_capacity_errors", 'provider="sim"')
    for name in ("navarch_fault_to_cordon_seconds_count", "navarch_fault_to_terminate_seconds_count",
                 "navarch_fault_to_replacement_ready_seconds_count"):
        assert [line for line in lines(name, pool) if line.rstrip().endswith(" 1")], name
    ready = lines("navarch_pool_nodes", pool, 'state="ready"', 'provider="sim"')
    assert ready and ready[0].rstrip().endswith(" 2"), ready
    gpus = lines("navarch_pool_gpus", pool, 'model="H100"')
    assert gpus and gpus[0].rstrip().endswith(" 16"), gpus
    gone = lines("navarch_pool_nodes", pool, 'state="cordoned"')
    assert all(line.rstrip().endswith(" 0") for line in gone), gone  # dropped to 0, not stale


def test_the_cores_expected_warning_is_quiet_and_others_are_not(caplog):
    core = logging.getLogger(CORE_LOGGER)
    core.addFilter(ExpectedCoreWarnings())
    with caplog.at_level(logging.INFO, logger=CORE_LOGGER):
        core.warning("[temporal_sdk_core] Activity not found on completion. This may happen "
                     "if the activity has already been cancelled")
        core.warning("[temporal_sdk_core] Failed to poll: connection refused")
    assert [r.getMessage() for r in caplog.records] == [
        "[temporal_sdk_core] Failed to poll: connection refused"]


async def test_two_workers_sharing_a_fleet_export_the_same_pool_gauges(dev_env, tmp_path):
    """Two control-plane workers on one task queue: whichever ran the pool's latest task,
    both export what the pool says (from its status), so `max by` over them is right and
    neither keeps a stale value."""
    from lifecycle_helpers import control_plane, eventually, fast_spec, pool_status, start_pool

    address = dev_env.client.service_client.config.target_host
    ports = [free_port(), free_port()]
    clients = [await Client.connect(address, data_converter=pydantic_data_converter,
                                    runtime=worker_runtime(p, "127.0.0.1")) for p in ports]
    world = FakeWorld(tmp_path / "world.db")
    queue = f"two-{uuid.uuid4().hex}"
    spec = fast_spec(min_nodes=2, max_nodes=2)

    def gauge(text: str, *having: str) -> str | None:
        for line in text.splitlines():
            if line.startswith("navarch_pool_nodes{") and f'pool="{spec.name}"' in line \
                    and all(h in line for h in having):
                return line.rsplit(" ", 1)[1]
        return None

    async def both(*having: str) -> list[str | None]:
        texts = [await asyncio.to_thread(scrape, p) for p in ports]
        return [gauge(t, *having) for t in texts]

    async with control_plane(clients[0], tmp_path, world=world, task_queue=queue,
                             fleet_gauges_seconds=0.5) as first, \
            control_plane(clients[1], tmp_path, world=world, task_queue=queue,
                          simulate_hosts=False, fleet_gauges_seconds=0.5):
        await start_pool(clients[0], first, spec)
        status = await eventually(lambda: pool_status(clients[0], spec.name),
                                  lambda s: s.ready == 2, within=60, what="two ready")
        await eventually(lambda: both('state="ready"'), lambda v: v == ["2", "2"],
                         within=30, what="both workers export 2 ready")
        victim = next(n.node_id for n in status.nodes if n.state.value == "ready")
        world.inject(victim, "xid", value=79)
        await eventually(lambda: pool_status(clients[0], spec.name),
                         lambda s: any(n.replacement_of == victim and n.state.value == "ready"
                                       for n in s.nodes), within=60, what="replacement ready")
        await eventually(lambda: both('state="ready"'), lambda v: v == ["2", "2"],
                         within=30, what="both workers export 2 ready after the repair")
        for state in ("cordoned", "draining", "terminating"):
            assert all(v in (None, "0") for v in await both(f'state="{state}"')), state
        await clients[0].get_workflow_handle(pool_workflow_id(spec.name)).terminate()
