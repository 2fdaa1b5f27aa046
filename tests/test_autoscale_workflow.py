"""PoolWorkflow's autoscaling on the time-skipping server: the real PoolWorkflow with stand-in
nodes (ready at once, leave when retired) and a scripted metrics activity, so hours of
autoscaling take seconds."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from navarch.activities.fleet import live_nodes
from navarch.config.schema import AutoscalingConfig
from navarch.contracts.names import node_workflow_id, pool_workflow_id
from navarch.contracts.node import NodeState
from navarch.contracts.pool import PoolInput, PoolStatus
from navarch.contracts.spec import PoolSpec, ProviderChoice
from navarch.workflows.pool import PoolWorkflow

from autoscale_stubs import ScriptedMetrics, StubNode


def spec(autoscaling: dict[str, Any], **kw: Any) -> PoolSpec:
    values: dict[str, Any] = {
        "name": f"as-{uuid.uuid4().hex[:10]}",
        "providers": [ProviderChoice(name="sim", type="fake", instance_type="h100-8x")],
        "instance_type": "h100-8x", "min_nodes": 1, "max_nodes": 4,
        "cooldown": timedelta(minutes=5), "autoscale_interval": timedelta(seconds=30),
        "autoscaling": AutoscalingConfig.model_validate(autoscaling),
    }
    values.update(kw)
    return PoolSpec(**values)


@contextlib.asynccontextmanager
async def pool(env: WorkflowEnvironment, pool_spec: PoolSpec,
               metrics: ScriptedMetrics) -> AsyncIterator[WorkflowHandle[Any, Any]]:
    queue = f"as-{uuid.uuid4().hex}"
    async with Worker(env.client, task_queue=queue, workflows=[PoolWorkflow, StubNode],
                      activities=[metrics.gather, live_nodes]):
        handle = await env.client.start_workflow(
            PoolWorkflow.run, PoolInput(spec=pool_spec), id=pool_workflow_id(pool_spec.name),
            task_queue=queue)
        try:
            yield handle
        finally:
            await handle.terminate()


async def status(handle: WorkflowHandle[Any, Any]) -> PoolStatus:
    result: PoolStatus = await handle.query("status", result_type=PoolStatus)
    return result


async def test_rising_utilization_grows_one_node_per_cooldown_up_to_max(time_env):
    metrics = ScriptedMetrics(utilization=95.0)
    async with pool(time_env, spec({"type": "reactive"}), metrics) as handle:
        await time_env.sleep(timedelta(minutes=21))
        st = await status(handle)
        assert st.target == 4 and st.ready == 4
        steps = [(d.from_target, d.to_target) for d in st.decisions]
        assert steps == [(1, 2), (2, 3), (3, 4)]
        gaps = [b.at - a.at for a, b in zip(st.decisions, st.decisions[1:], strict=False)]
        assert all(timedelta(minutes=5) <= g < timedelta(minutes=6) for g in gaps), gaps
        assert all("utilization 95.0% > 80%" in d.reason for d in st.decisions)
        assert st.utilization == 95.0 and st.autoscaler == "reactive"
        assert st.last_evaluation == "utilization 95.0% > 80% but at maximum 4"
        assert metrics.calls[0].utilization is not None and metrics.calls[0].queue is None
        # Evaluations kept coming every 30 s (21 min / 30 s), each one activity.
        assert 40 <= len(metrics.calls) <= 44


async def test_queue_burst_scales_up_then_back_down(time_env):
    metrics = ScriptedMetrics()
    pool_spec = spec({"type": "queue", "jobs_per_node": 10}, max_nodes=8,
                     cooldown=timedelta(minutes=2))
    async with pool(time_env, pool_spec, metrics) as handle:
        await time_env.sleep(timedelta(minutes=1))
        assert (await status(handle)).target == 1  # nothing reported: stays at min
        await handle.signal("report_queue_depth", {"queue_depth": 45, "pending_jobs": 30})
        await time_env.sleep(timedelta(seconds=40))
        st = await status(handle)
        assert st.target == 5 and st.queue_depth == 45
        assert st.decisions[-1].reason == "queue depth 45 needs 5 node(s) at 10 jobs/node"
        await handle.signal("report_queue_depth", {"queue_depth": 0})
        await time_env.sleep(timedelta(minutes=3))
        st = await status(handle)
        assert st.target == 1 and st.decisions[-1].to_target == 1
        # The queue came by signal: the metrics activity was never needed.
        assert metrics.calls == []
        # A bad payload is dropped, not fatal.
        await handle.signal("report_queue_depth", {"queue_depth": -3})
        await time_env.sleep(timedelta(seconds=40))
        assert (await status(handle)).target == 1


async def test_schedule_window_raises_min_at_its_hour(time_env):
    now = await time_env.get_current_time()
    start = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    window = {"start": start.hour, "end": start.hour + 1, "min_nodes": 3, "max_nodes": 4}
    metrics = ScriptedMetrics(utilization=50.0)
    pool_spec = spec({"type": "scheduled", "schedule": [window],
                      "fallback": {"type": "reactive"}})
    async with pool(time_env, pool_spec, metrics) as handle:
        await time_env.sleep(timedelta(minutes=1))
        assert (await status(handle)).target == 1
        await time_env.sleep(start - now)
        st = await status(handle)
        assert st.target == 3
        assert st.decisions[-1].reason == (f"window daily {start.hour:02d}-"
                                           f"{start.hour + 1:02d}h: 3-4 nodes: 1 serving < "
                                           "minimum 3")
        assert st.decisions[-1].at.hour == start.hour
        await time_env.sleep(timedelta(hours=1, minutes=6))  # the window closes
        st = await status(handle)
        assert st.target == 3  # back to the pool's 1-4: reactive at 50% holds the size
        assert st.last_evaluation == "utilization 50.0% within 20-80%"


async def test_scale_down_never_retires_held_nodes_and_the_pool_keeps_serving(time_env):
    """An operator's hold takes a node out of the pool's count: the pool starts another to
    keep its size, and a scale-down retires idle nodes first, then the newest, but never
    the held node nor one a diagnostics run is checking."""
    metrics = ScriptedMetrics(utilization=50.0)
    pool_spec = spec({"type": "reactive"}, cooldown=timedelta(minutes=1))
    async with pool(time_env, pool_spec, metrics) as handle:
        await handle.signal("scale", {"target": 4})
        await time_env.sleep(timedelta(seconds=20))
        st = await status(handle)
        assert st.ready == 4
        held, idle, checked, busy = [n.node_id for n in st.nodes]
        await handle.signal("cordon_node", {"node_id": held, "reason": "bad fan"})
        await time_env.client.get_workflow_handle(node_workflow_id(checked)).signal(
            "cordon", {"reason": "diagnostics", "source": "diagnostics"})
        await time_env.sleep(timedelta(seconds=20))
        st = await status(handle)
        assert (st.ready, len(st.nodes)) == (3, 5)  # a fifth serves for the held one (and one
        # is under diagnostics)
        fifth = st.nodes[-1].node_id
        metrics.idle_nodes = [idle]
        metrics.utilization = 5.0
        await time_env.sleep(timedelta(minutes=6))
        st = await status(handle)
        left = {n.node_id: n.state for n in st.nodes}
        retired = [e.detail.split(" ")[0] for e in st.events if e.kind == "retire"]
        assert retired == [idle, fifth, busy]
        assert left[checked] is NodeState.CORDONED  # under diagnostics: kept
        assert left[held] is NodeState.CORDONED  # held by an operator: kept, not counted
        assert st.target == 1
        assert [(d.from_target, d.to_target) for d in st.decisions] == [(4, 3), (3, 2), (2, 1)]


async def test_history_cost_of_one_evaluation(time_env):
    metrics = ScriptedMetrics(utilization=50.0)
    pool_spec = spec({"type": "reactive"})
    async with pool(time_env, pool_spec, metrics) as handle:
        await time_env.sleep(timedelta(minutes=1))
        before = len((await handle.fetch_history()).events)
        calls = len(metrics.calls)
        await time_env.sleep(timedelta(minutes=10))
        after = len((await handle.fetch_history()).events)
        per_evaluation = (after - before) / (len(metrics.calls) - calls)
        print(f"pool history: {per_evaluation:.1f} events per evaluation "
              f"({after - before} events, {len(metrics.calls) - calls} evaluations)")
        # timer started + fired, workflow task scheduled/started/completed, the metrics
        # (local activity) marker: 6 events, nothing per node.
        assert per_evaluation <= 6.5


async def test_history_stays_bounded_by_continue_as_new(time_env):
    metrics = ScriptedMetrics(utilization=50.0)
    pool_spec = spec({"type": "reactive"}, continue_as_new_after=200)
    async with pool(time_env, pool_spec, metrics) as handle:
        await time_env.sleep(timedelta(hours=2))
        st = await status(handle)
        assert st.runs >= 2 and st.target == 1
        history = await time_env.client.get_workflow_handle(
            pool_workflow_id(pool_spec.name)).fetch_history()
        assert len(history.events) <= 260
        assert len(metrics.calls) >= 230  # every 30 s across the runs
