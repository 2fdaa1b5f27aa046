"""Simulated hosts sharing one task queue (the simulator's large fleets): the production
node workflow sends each node's GPU-local activities to the queue in its record, and a
shared host behaves like a real agent — it judges faults, and when its machine goes silent
the node sees the same timeouts a dead agent causes (those cases run in both host modes in
test_lifecycle_e2e)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import timedelta

from temporalio.activity import _Definition

from navarch.agent.activities import AgentActivities
from navarch.agent.fake_backend import FakeGpuBackend
from navarch.agent.shared_host import SharedHosts
from navarch.sim.fakeworld import FakeWorld

from diag_outputs import DIAG_PASS
from lifecycle_helpers import (
    control_plane,
    eventually,
    node_status,
    pool_status,
    ready_pool,
    run_diagnostics,
    transitions,
)


def _names(activities: Sequence[object]) -> set[str]:
    names = set()
    for fn in activities:
        defn = _Definition.from_callable(fn)  # type: ignore[arg-type]
        assert defn is not None and defn.name is not None
        names.add(defn.name)
    return names


def test_shared_hosts_serve_every_agent_activity(tmp_path):
    agent = AgentActivities(FakeGpuBackend(FakeWorld(tmp_path / "w.db"), "n1", 8, "H100"))
    assert _names(SharedHosts().activities()) == _names(agent.activities())


async def test_pool_on_shared_hosts_comes_up_and_replaces_a_fatal_xid(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path, host_mode="shared") as plane:
        spec, status = await ready_pool(client, plane)
        node = await node_status(client, status.nodes[0].node_id)
        assert node.agent_task_queue == plane.plane.shared_host_queue
        assert len(node.gpus) == 8
        assert [s for s, _ in transitions(node)] == [
            "provisioning", "booting", "boot_checking", "ready"]
        assert plane.plane.hosts is not None and len(plane.plane.hosts.shared) == 3
        victim = status.nodes[1].node_id
        plane.world.inject(victim, "xid", value=79, gpu_index=2)
        node = await eventually(lambda: node_status(client, victim),
                                lambda n: n.state.value == "terminated", what="victim terminated")
        assert node.health_rule == "xid-needs-reset-or-reboot"
        assert ("cordoned", "unhealthy") in transitions(node)
        await eventually(lambda: pool_status(client, spec.name),
                         lambda s: s.ready == 3 and s.replacements == 1, what="replaced")


async def test_diagnostics_reach_shared_hosts_through_the_node_record(dev_env, tmp_path,
                                                                      tools):
    tools("dcgmi", json.dumps(DIAG_PASS))
    client = dev_env.client
    async with control_plane(client, tmp_path, host_mode="shared") as plane:
        spec, _ = await ready_pool(client, plane, min_nodes=2)
        report = await run_diagnostics(client, plane, spec)
        assert {n.outcome for n in report.nodes} == {"pass"}
        assert len(report.nodes) == 2


async def test_a_failed_diagnostic_wakes_the_shared_hosts_watch(dev_env, tmp_path):
    """The watch of a shared host sleeps a whole check interval unless woken; a diagnostic
    that fails records an event the watch must judge now, not an interval later."""
    client = dev_env.client
    async with control_plane(client, tmp_path, host_mode="shared") as plane:
        plane.world.simulate_diagnostics()
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                        health_check_interval=timedelta(seconds=60))
        node_id = status.nodes[0].node_id
        plane.world.inject(node_id, "pcie", gpu_index=1, value=5)  # degraded: the watch wakes
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "degraded", within=10, what="degraded")
        started = time.monotonic()
        report = await run_diagnostics(client, plane, spec, nodes=[node_id])
        assert report.nodes[0].outcome == "fail"
        judged = await eventually(lambda: node_status(client, node_id),
                                  lambda n: n.health.value == "unhealthy", within=20,
                                  what="judged unhealthy")
        assert judged.health_rule == "diagnostic-failed"
        assert time.monotonic() - started < 15  # well inside the 60 s check interval
