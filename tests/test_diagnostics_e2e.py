"""DiagnosticsWorkflow on the real dev server, its schedule, and a failed diagnostic taking
the usual repair path."""

from __future__ import annotations

import json

from navarch.contracts.diagnostics import DiagnosticsReport
from navarch.temporal.schedules import apply_diagnostics_schedule, diagnostics_schedule_id

from diag_outputs import DIAG_FAIL, DIAG_PASS
from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    run_diagnostics,
    start_pool,
    transitions,
)


async def test_passing_diagnostics_cordon_then_return_nodes(dev_env, tmp_path, tools):
    tools("dcgmi", json.dumps(DIAG_PASS))
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(min_nodes=2)
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 2)
        busy = pool.nodes[1].node_id
        plane.world.add_process(busy, 99)
        report = await run_diagnostics(client, plane, spec)
        outcomes = {n.node_id: n.outcome for n in report.nodes}
        assert outcomes == {pool.nodes[0].node_id: "pass", busy: "busy"}
        checked = await node_status(client, pool.nodes[0].node_id)
        assert transitions(checked)[-2:] == [("cordoned", "operator"), ("ready", "operator")]
        assert checked.transitions[-1].detail == "diagnostics passed"


async def test_failed_diagnostic_makes_the_node_unhealthy_and_replaced(dev_env, tmp_path,
                                                                       tools):
    tools("dcgmi", json.dumps(DIAG_FAIL), rc=226)
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(min_nodes=1)
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1)
        report = await run_diagnostics(client, plane, spec)
        assert report.nodes[0].outcome == "fail"
        assert "Memory (GPU 3)" in report.nodes[0].detail
        victim = await eventually(lambda: node_status(client, pool.nodes[0].node_id),
                                  lambda n: n.state.value == "terminated", what="replaced")
        assert victim.health_rule == "diagnostic-failed"
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.ready == 1 and p.replacements == 1, what="replacement")


async def test_diagnostics_of_named_nodes_include_degraded_ones(dev_env, tmp_path):
    """As `run_diagnostic` in a scenario asks: only the nodes named, a degraded one too; on
    simulated hosts the answer comes from the host's faults."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        plane.world.simulate_diagnostics()
        spec = fast_spec(min_nodes=2)
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 2)
        flaky, other = pool.nodes[0].node_id, pool.nodes[1].node_id
        plane.world.inject(flaky, "nvlink", gpu_index=2, value=3)
        await eventually(lambda: node_status(client, flaky),
                         lambda n: n.state.value == "degraded", what="degraded")
        report = await run_diagnostics(client, plane, spec, nodes=[flaky, "no-such-node"])
        outcomes = {n.node_id: (n.outcome, n.detail) for n in report.nodes}
        assert outcomes == {
            flaky: ("fail", "dcgmi diag -r 2 (simulated): GPU 2 nvlink 3"),
            "no-such-node": ("skipped", "not ready or degraded in the pool")}, outcomes
        assert other not in outcomes
        judged = await eventually(lambda: node_status(client, flaky),
                                  lambda n: n.health.value == "unhealthy", what="unhealthy")
        assert judged.health_rule == "diagnostic-failed"


async def test_schedule_is_created_updated_triggered_and_deleted(dev_env, tmp_path,
                                                                 tools):
    tools("dcgmi", json.dumps(DIAG_PASS))
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(min_nodes=1)
        await start_pool(client, plane, spec)
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1)
        assert await apply_diagnostics_schedule(client, spec, plane.task_queue) == "created"
        spec.diagnostics.cron = "30 4 * * 1"
        assert await apply_diagnostics_schedule(client, spec, plane.task_queue) == "updated"
        handle = client.get_schedule_handle(diagnostics_schedule_id(spec.name))
        described = await handle.describe()
        upcoming = described.info.next_action_times[0]
        assert (upcoming.weekday(), upcoming.hour, upcoming.minute) == (0, 4, 30)
        await handle.trigger()
        query = 'WorkflowType="DiagnosticsWorkflow" AND ExecutionStatus="Completed"'
        runs = await eventually(
            lambda: _list(client, query + f' AND WorkflowId STARTS_WITH "diagnostics/{spec.name}"'),
            lambda ids: len(ids) == 1, what="scheduled run completed")
        result = await client.get_workflow_handle(runs[0], result_type=DiagnosticsReport).result()
        assert [n.outcome for n in result.nodes] == ["pass"]
        spec.diagnostics.enabled = False
        assert await apply_diagnostics_schedule(client, spec, plane.task_queue) == "deleted"
        assert await apply_diagnostics_schedule(client, spec, plane.task_queue) == "none"


async def _list(client, query: str) -> list[str]:
    return [w.id async for w in client.list_workflows(query)]

