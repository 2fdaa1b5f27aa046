"""The node lifecycle end to end on the real Temporal dev server, fake cloud, simulated hosts."""

from __future__ import annotations

import asyncio
import subprocess

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    start_pool,
    transitions,
)

from navarch.temporal_client import temporal_cli_path


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


async def _ready_pool(client, plane, **overrides):
    spec = fast_spec(**overrides)
    await start_pool(client, plane, spec)
    status = await eventually(lambda: pool_status(client, spec.name),
                              lambda s: s.ready == spec.min_nodes, what="pool ready")
    return spec, status


async def test_fatal_xid_replaces_the_node(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await _ready_pool(client, plane)
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
        spec, status = await _ready_pool(client, plane)
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


def temporal_cli(env, *args: str) -> str:
    address = env.client.service_client.config.target_host
    result = subprocess.run([temporal_cli_path(), *args, "--address", address],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_operator_cordon_uncordon_and_drain_with_the_temporal_cli(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await _ready_pool(client, plane)
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
        spec, status = await _ready_pool(client, plane, min_nodes=1)
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
