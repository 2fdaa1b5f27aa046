"""The node lifecycle end to end on the real Temporal dev server, fake cloud, simulated hosts."""

from __future__ import annotations

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    start_pool,
    transitions,
)


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
