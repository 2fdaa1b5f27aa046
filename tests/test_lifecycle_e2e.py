"""The node lifecycle end to end on the real Temporal dev server, fake cloud, simulated hosts.

These run the workflows in the SDK's strict sandbox (each instance imports the workflow
modules afresh, every call checked), where the rest of the suite runs the worker as
production does, with the modules shared (navarch.temporal.sandbox)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from navarch.contracts.names import node_workflow_id
from navarch.contracts.node import NodeInput, NodeStatus
from navarch.sim.fakeworld import FakeWorld
from navarch.workflows.node import NodeWorkflow

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    ready_pool,
    start_pool,
    temporal_cli,
    transitions,
)


@pytest.fixture(autouse=True)
def strict_sandbox(monkeypatch):
    monkeypatch.setenv("NAVARCH_STRICT_SANDBOX", "1")


async def test_pool_of_three_comes_up_ready(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec()
        await start_pool(client, plane, spec)
        status = await eventually(lambda: pool_status(client, spec.name),
                                  lambda s: s.ready == 3, what="3 ready nodes")
        assert status.target == 3 and status.schedulable == 3
        node = await node_status(client, status.nodes[0].node_id)
        assert [s for s, _ in transitions(node)] == [
            "provisioning", "booting", "boot_checking", "ready"]
        assert len(node.gpus) == 8
        assert {c.name: c.status for c in node.boot_checks}["gpu_count"] == "pass"
        assert len(plane.world.instances(spec.name, live_only=True)) == 3


async def test_fatal_xid_replaces_the_node(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane)
        victim = status.nodes[0].node_id
        plane.world.inject(victim, "xid", value=79, gpu_index=3,
                           message="NVRM: Xid (PCI:0000:1b:00): 79, GPU has fallen off the bus.")
        node = await eventually(lambda: node_status(client, victim),
                                lambda n: n.state.value == "terminated", what="victim terminated")
        assert transitions(node)[-4:] == [
            ("cordoned", "unhealthy"), ("draining", "unhealthy"),
            ("terminating", "unhealthy"), ("terminated", "unhealthy")]
        assert node.health.value == "unhealthy"
        assert node.health_rule == "xid-needs-reset-or-reboot"
        assert node.last_events[0].metrics["xid_code"] == 79
        after = await eventually(lambda: pool_status(client, spec.name),
                                 lambda s: s.ready == 3 and s.replacements == 1,
                                 what="replacement ready")
        replacement = next(n for n in after.nodes if n.replacement_of == victim)
        assert replacement.state.value == "ready"
        live = plane.world.instances(spec.name, live_only=True)
        assert len(live) == 3 and victim not in {i.node_id for i in live}


async def test_application_xid_only_degrades_and_recovers(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane)
        node_id = status.nodes[1].node_id
        plane.world.inject(node_id, "xid", value=13, message="Graphics SM Warp Exception")
        degraded = await eventually(lambda: node_status(client, node_id),
                                    lambda n: n.state.value == "degraded", what="degraded")
        assert degraded.health.value == "degraded" and degraded.health_rule == "xid-other"
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.counts.get("degraded") == 1, what="pool sees it")
        assert pool.schedulable == 3 and pool.ready == 2
        plane.world.clear(node_id)
        ready = await eventually(lambda: node_status(client, node_id),
                                 lambda n: n.state.value == "ready", what="ready again")
        assert transitions(ready)[-2:] == [("degraded", "degraded"), ("ready", "healthy")]
        assert (await pool_status(client, spec.name)).replacements == 0


async def test_operator_cordon_uncordon_and_drain_with_the_temporal_cli(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane)
        first, second = status.nodes[0].node_id, status.nodes[1].node_id

        temporal_cli(dev_env, "workflow", "signal", "--workflow-id", f"node/{first}",
                     "--name", "cordon", "--input", '{"reason": "bad fan"}')
        node = await eventually(lambda: node_status(client, first),
                                lambda n: n.state.value == "cordoned", what="cordoned")
        assert node.transitions[-1].detail == "bad fan" and node.cordoned
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.schedulable == 2, what="cordoned node not schedulable")
        temporal_cli(dev_env, "workflow", "signal", "--workflow-id", f"node/{first}",
                     "--name", "uncordon")
        await eventually(lambda: node_status(client, first),
                         lambda n: n.state.value == "ready", what="uncordoned")

        # Drain waits while a GPU process runs, and goes on when it ends.
        plane.world.add_process(first, 4242, gpu_index=0, name="train.py")
        temporal_cli(dev_env, "workflow", "signal", "--workflow-id", f"node/{first}",
                     "--name", "drain", "--input", '{"grace_seconds": 60, "reason": "maint"}')
        await eventually(lambda: node_status(client, first),
                         lambda n: n.state.value == "draining", what="draining")
        await asyncio.sleep(1.5)
        assert (await node_status(client, first)).state.value == "draining"
        plane.world.remove_process(first, 4242)
        node = await eventually(lambda: node_status(client, first),
                                lambda n: n.state.value == "terminated", what="drained")
        assert transitions(node)[-3:] == [("draining", "operator"), ("terminating", "operator"),
                                          ("terminated", "operator")]
        assert node.transitions[-1].detail == "maint; drained"

        # A process that never ends: the grace period runs out and the node goes anyway.
        plane.world.add_process(second, 7, name="stuck")
        await client.get_workflow_handle(f"node/{second}").signal(
            "drain", {"grace_seconds": 1, "reason": "stuck job"})
        node = await eventually(lambda: node_status(client, second),
                                lambda n: n.state.value == "terminated", what="grace expired")
        assert "grace expired" in node.transitions[-1].detail
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.ready == 3 and p.replacements == 2, what="replaced")


async def test_bad_signal_payloads_are_dropped_not_fatal(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1)
        node_id = status.nodes[0].node_id
        handle = client.get_workflow_handle(f"node/{node_id}")
        await handle.signal("cordon", {"reason": 5, "bogus": True})
        await handle.signal("drain", {"grace_seconds": -3})
        await handle.signal("drain", "not an object")
        pool = client.get_workflow_handle(f"pool/{spec.name}")
        await pool.signal("scale", {"target": "many"})
        await pool.signal("cordon_node", {"node": node_id})
        await asyncio.sleep(1.0)
        node = await node_status(client, node_id)
        assert node.state.value == "ready"
        assert (await pool_status(client, spec.name)).ready == 1
        # and the workflows still take good signals
        await handle.signal("cordon", {"reason": "ok"})
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "cordoned", what="cordoned")
        desc = await pool.describe()
        assert desc.status is not None and desc.status.name == "RUNNING"


# Both ways of hosting simulated agents: a worker per host, or one shared queue (where a
# silent host holds its activities until the server has timed them out).
HOST_MODES = pytest.mark.parametrize("host_mode", ["per-host", "shared"])


@HOST_MODES
async def test_silent_agent_becomes_unreachable_then_replaced(dev_env, tmp_path, host_mode):
    client = dev_env.client
    async with control_plane(client, tmp_path, host_mode=host_mode) as plane:
        spec, status = await ready_pool(client, plane)
        node_id = status.nodes[2].node_id
        plane.world.set_agent_enabled(node_id, False)  # the host's agent process dies
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "unreachable", what="unreachable")
        node = await eventually(lambda: node_status(client, node_id),
                                lambda n: n.state.is_terminal(), what="terminated")
        assert transitions(node)[-3:] == [("unreachable", "unreachable"),
                                          ("terminating", "unreachable"),
                                          ("terminated", "unreachable")]
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.ready == 3 and p.replacements == 1, what="replaced")
        if host_mode == "shared":
            assert plane.plane.hosts is not None and plane.plane.hosts.shared.silent_holds >= 1


@HOST_MODES
async def test_agent_that_comes_back_in_time_is_kept(dev_env, tmp_path, host_mode):
    client = dev_env.client
    async with control_plane(client, tmp_path, host_mode=host_mode) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                         health={"unreachable_toleration": "30s"})
        node_id = status.nodes[0].node_id
        plane.world.set_agent_enabled(node_id, False)
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "unreachable", what="unreachable")
        plane.world.set_agent_enabled(node_id, True)
        node = await eventually(lambda: node_status(client, node_id),
                                lambda n: n.state.value == "ready", what="back")
        assert transitions(node)[-1] == ("ready", "reachable_again")
        assert (await pool_status(client, spec.name)).replacements == 0


async def test_nodes_are_listed_by_search_attributes(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane)
        cordoned = status.nodes[0].node_id
        await client.get_workflow_handle(f"node/{cordoned}").signal("cordon", {"reason": "x"})
        await eventually(lambda: node_status(client, cordoned),
                         lambda n: n.state.value == "cordoned", what="cordoned")
        query = f'NavarchPool="{spec.name}" AND NavarchNodeState="ready"'
        expected = {f"node/{n.node_id}" for n in status.nodes[1:]}

        async def listed():
            out = temporal_cli(dev_env, "workflow", "list", "--query", query, "-o", "json")
            try:
                rows = json.loads(out) if out.strip() else []
            except json.JSONDecodeError:  # one JSON object per line
                rows = [json.loads(line) for line in out.splitlines() if line.strip()]
            return {r["execution"]["workflowId"] for r in rows}

        assert await eventually(listed, lambda ids: ids == expected, what="list") == expected
        health = f'NavarchPool="{spec.name}" AND NavarchHealth="healthy"'
        found = {w.id async for w in client.list_workflows(health)}
        assert {f"node/{n.node_id}" for n in status.nodes} <= found


async def test_worker_killed_during_provisioning_makes_no_duplicates(dev_env, tmp_path):
    client = dev_env.client
    world = FakeWorld(tmp_path / "world.db")
    spec = fast_spec(min_nodes=10, max_nodes=10)
    async with control_plane(client, tmp_path, world=world, provision_delay=3.0) as plane:
        queue = plane.task_queue
        await start_pool(client, plane, spec)
        # Machines exist in the cloud, but no provision call has reported back yet.
        await eventually(lambda: asyncio.to_thread(world.instances, spec.name),
                         lambda found: len(found) == 10, what="10 machines created")
    # The worker (and every simulated host) is gone; a new one starts on the same queue.
    async with control_plane(client, tmp_path, world=world, task_queue=queue):
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 10,
                         within=60, what="10 ready after restart")
    live = world.instances(spec.name, live_only=True)
    assert len(live) == 10
    assert len({i.node_id for i in live}) == 10
    assert world.counter("provisioned") == 10  # never a second machine for one node


async def test_repair_pauses_when_too_much_of_the_pool_fails(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=5)
        first, second = status.nodes[0].node_id, status.nodes[1].node_id
        for node_id in (first, second):
            plane.world.inject(node_id, "xid", value=79)
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.repair_paused, what="repair paused")
        assert "2 of 5 nodes needed repair" in pool.repair_paused_reason
        handle = client.get_workflow_handle(f"pool/{spec.name}")
        details = (await handle.query("__temporal_workflow_metadata")).current_details
        assert "repair paused" in details
        # One repair went ahead (at least one is always allowed); the other waits, cordoned.
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.replacements == 1 and p.ready == 4, what="one repaired")
        await asyncio.sleep(1.0)
        pool = await pool_status(client, spec.name)
        waiting = [n for n in pool.nodes if n.awaiting_repair]
        assert len(waiting) == 1, "\n".join(f"{e.kind} {e.detail}" for e in pool.events) + "\n" + "\n".join(f"{n.node_id} {n.state} {n.awaiting_repair}" for n in pool.nodes)
        assert waiting[0].state.value == "cordoned"
        assert pool.replacements == 1
        await handle.signal("resume_repair")
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.replacements == 2 and p.ready == 5,
                                what="second repaired after resume")
        assert not pool.repair_paused
        assert [e.kind for e in pool.events].count("repair_resumed") == 1


async def test_pool_continues_as_new_without_losing_nodes_or_counters(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, continue_as_new_after=50)
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.runs >= 2, what="continued as new")
        assert pool.ready == 3 and pool.provisioned == 3
        assert {n.node_id for n in pool.nodes} == {n.node_id for n in status.nodes}
        handle = client.get_workflow_handle(f"pool/{spec.name}")
        await handle.signal("scale", {"target": 4})
        victim = status.nodes[0].node_id
        plane.world.inject(victim, "xid", value=48)
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.ready == 4 and p.replacements == 1,
                                within=60, what="scaled and repaired across runs")
        assert pool.provisioned == 5
        assert pool.events[0].kind == "created"


# The boot deadline is tested on the dev server with a short deadline: the time-skipping
# test server does not advance its clock while an activity task waits for a worker, which
# is exactly the state of a machine that never boots.
async def test_instance_that_never_boots_fails_at_the_boot_deadline(dev_env, tmp_path):
    client = dev_env.client
    world = FakeWorld(tmp_path / "world.db")
    world.set_cloud_fault("never_boot", 1)
    spec = fast_spec(min_nodes=1, boot_deadline=timedelta(seconds=2))
    async with control_plane(client, tmp_path, world=world, simulate_hosts=False) as plane:
        handle = await client.start_workflow(
            NodeWorkflow.run, NodeInput(node_id=f"nb-{spec.name}", spec=spec),
            id=node_workflow_id(f"nb-{spec.name}"), task_queue=plane.task_queue,
        )
        status: NodeStatus = await handle.result()
    assert status.state.value == "failed"
    assert [(t.to_state.value, t.reason.value) for t in status.transitions] == [
        ("provisioning", "created"), ("booting", "provisioned"),
        ("terminating", "boot_timeout"), ("failed", "boot_timeout")]
    assert status.transitions[-2].at - status.transitions[1].at >= timedelta(seconds=2)
    assert world.instances(spec.name, live_only=True) == []


async def test_pool_replaces_a_node_that_never_boots(dev_env, tmp_path):
    client = dev_env.client
    world = FakeWorld(tmp_path / "world.db")
    world.set_cloud_fault("never_boot", 1)
    spec = fast_spec(min_nodes=1, boot_deadline=timedelta(seconds=2))
    async with control_plane(client, tmp_path, world=world) as plane:
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.ready == 1, within=60, what="replacement ready")
    gone = [n for n in pool.nodes if n.state.value == "failed"]
    assert len(gone) == 1 and gone[0].reason.value == "boot_timeout"
    assert pool.replacements == 1
    assert len(world.instances(spec.name, live_only=True)) == 1


async def test_pool_started_from_the_temporal_cli_with_json_input(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        name = f"cli-{plane.task_queue[-8:]}"
        spec = {
            "name": name,
            "providers": [{"name": "sim", "type": "fake", "instance_type": "h100-8x"}],
            "instance_type": "h100-8x",
            "min_nodes": 2,
            "max_nodes": 4,
            "health_check_interval": "500ms",
            "heartbeat_timeout": "5s",
        }
        temporal_cli(dev_env, "workflow", "start", "--type", "PoolWorkflow",
                     "--task-queue", plane.task_queue, "--workflow-id", f"pool/{name}",
                     "--input", json.dumps({"spec": spec}))
        status = await eventually(lambda: pool_status(client, name), lambda p: p.ready == 2,
                                  what="2 ready")
        node = await node_status(client, status.nodes[0].node_id)
        assert node.instance_type == "h100-8x" and node.health.value == "healthy"


async def test_without_auto_replace_an_unhealthy_node_stays_cordoned(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                         health={"auto_replace": False})
        node_id = status.nodes[0].node_id
        plane.world.inject(node_id, "xid", value=79)
        node = await eventually(lambda: node_status(client, node_id),
                                lambda n: n.state.value == "cordoned", what="cordoned")
        assert node.awaiting_repair and node.health.value == "unhealthy"
        await asyncio.sleep(1.5)
        assert (await node_status(client, node_id)).state.value == "cordoned"
        pool = await pool_status(client, spec.name)
        assert pool.replacements == 0 and pool.awaiting_repair == [node_id]
        # The operator decides: terminate it by hand, and the pool replaces it.
        await client.get_workflow_handle(f"node/{node_id}").signal("terminate", {"reason": "rma"})
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.ready == 1 and p.replacements == 1, what="replaced")


async def test_a_verdict_on_a_node_already_cordoned_is_recorded_and_searchable(dev_env,
                                                                               tmp_path):
    """Cordoned by an operator, then its GPU fails: the state stays cordoned, the verdict is
    in its transitions and its NavarchVerdict and NavarchHealth attributes, and the repair
    waits for the operator (who holds the node) instead of going on by itself."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1)
        node_id = status.nodes[0].node_id
        await client.get_workflow_handle(f"node/{node_id}").signal("cordon", {"reason": "x"})
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "cordoned", what="cordoned")
        plane.world.inject(node_id, "xid", value=79)
        node = await eventually(lambda: node_status(client, node_id),
                                lambda n: n.health.value == "unhealthy", what="unhealthy")
        assert node.state.value == "cordoned" and not node.awaiting_repair
        assert (node.verdict.value, node.verdict_rule) == ("unhealthy",
                                                           "xid-needs-reset-or-reboot")
        assert [h.owner.value for h in node.holds] == ["operator", "unhealthy"]
        assert transitions(node)[-2:] == [("cordoned", "operator"), ("cordoned", "unhealthy")]
        assert node.transitions[-1].detail == ("rule xid-needs-reset-or-reboot; held by the "
                                               "operator, repair waits for them")
        for attribute in ("NavarchVerdict", "NavarchHealth"):
            query = f'NavarchPool="{spec.name}" AND {attribute}="unhealthy"'

            async def found(query: str = query) -> set[str]:
                return {w.id async for w in client.list_workflows(query)}

            await eventually(found, lambda ids: ids == {f"node/{node_id}"}, what=attribute)
        # auto_replace is on, yet nothing is repaired while the operator holds the node.
        pool = await pool_status(client, spec.name)
        assert pool.awaiting_repair == [] and pool.replacements == 0


async def test_terminate_while_booting_does_not_wait_for_the_boot(dev_env, tmp_path):
    client = dev_env.client
    world = FakeWorld(tmp_path / "world.db")
    world.set_cloud_fault("never_boot", 1)
    spec = fast_spec(min_nodes=1, boot_deadline=timedelta(minutes=10))
    async with control_plane(client, tmp_path, world=world, simulate_hosts=False) as plane:
        node_id = f"tb-{spec.name}"
        handle = await client.start_workflow(
            NodeWorkflow.run, NodeInput(node_id=node_id, spec=spec),
            id=node_workflow_id(node_id), task_queue=plane.task_queue)
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "booting", what="booting")
        await handle.signal("terminate", {"reason": "wrong image"})
        status: NodeStatus = await asyncio.wait_for(handle.result(), 20)
    assert transitions(status)[-2:] == [("terminating", "operator"), ("terminated", "operator")]
    assert status.transitions[-1].detail == "wrong image"
    assert world.instances(spec.name, live_only=True) == []
