"""DiagnosticsWorkflow (started by the schedule `diagnostics/<pool>`): active checks on the
idle, ready nodes of a pool.

Each node is checked that no GPU work runs on it, cordoned for the duration, put through the
pool's checks (DCGM diag, GPU burn, NCCL all-reduce) on its own queue, and uncordoned if
nothing failed. A failed check is recorded by the agent as a `diagnostic` health event: the
node's watch judges it with the pool's policy (default: unhealthy → repair), so the node
stays cordoned and the usual repair path takes over.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import MappingProxyType

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from navarch.contracts.agent import (
        DiagnosticInput,
        DiagnosticResult,
        WaitIdleInput,
        diagnostic_limit,
        run_diagnostic,
        wait_idle,
    )
    from navarch.contracts.diagnostics import DiagnosticsInput, DiagnosticsReport, NodeDiagnostics
    from navarch.contracts.fleet import ListNodesInput, agent_queues, list_nodes
    from navarch.contracts.names import node_task_queue, node_workflow_id
    from navarch.contracts.node import CordonInput, CordonSource, UncordonInput

from .node import RUN_ONCE, NodeWorkflow

# Finding the pool's nodes: one visibility listing; the agent queues add a `status` query
# to each node, one after another, hence the longer allowance.
LIST_NODES_TIMEOUT = timedelta(minutes=1)
AGENT_QUEUES_TIMEOUT = timedelta(minutes=5)
LOOKUP_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2))
IDLE_CHECK_TIMEOUT = timedelta(minutes=1)  # one look at the GPU processes (grace 0)
CHECK_MARGIN = timedelta(minutes=10)  # over a check's own run time: start-up, reporting
# How long `dcgmi diag -r LEVEL` may run, by level.
LEVEL_TIME = MappingProxyType({1: timedelta(minutes=5), 2: timedelta(minutes=20),
                               3: timedelta(hours=1), 4: timedelta(hours=4)})


@workflow.defn(name="DiagnosticsWorkflow")
class DiagnosticsWorkflow:
    def __init__(self) -> None:
        self._report: DiagnosticsReport | None = None

    @workflow.query(name="status")
    def status(self) -> DiagnosticsReport | None:
        return self._report

    @workflow.run
    async def run(self, params: DiagnosticsInput) -> DiagnosticsReport:
        report = self._report = DiagnosticsReport(pool=params.pool)
        lookup = ListNodesInput(pool=params.pool, state="ready")
        if workflow.patched("agent-queue-v1"):  # the node's record says where its agent is
            queues: dict[str, str] = await workflow.execute_activity(
                agent_queues, lookup,
                start_to_close_timeout=AGENT_QUEUES_TIMEOUT, retry_policy=LOOKUP_RETRY)
        else:
            queues = {n: node_task_queue(n) for n in await workflow.execute_activity(
                list_nodes, lookup,
                start_to_close_timeout=LIST_NODES_TIMEOUT, retry_policy=LOOKUP_RETRY)}
        if params.nodes and set(params.nodes) - set(queues):  # asked for: degraded ones too
            queues.update(await workflow.execute_activity(
                agent_queues, ListNodesInput(pool=params.pool, state="degraded"),
                start_to_close_timeout=AGENT_QUEUES_TIMEOUT, retry_policy=LOOKUP_RETRY))
        if params.nodes:  # a node asked for that is neither ready nor degraded is skipped
            report.nodes.extend(
                NodeDiagnostics(node_id=n, outcome="skipped",
                                detail="not ready or degraded in the pool")
                for n in sorted(set(params.nodes) - set(queues)))
            queues = {n: q for n, q in queues.items() if n in params.nodes}
        nodes = sorted(queues)
        slots = asyncio.Semaphore(params.max_parallel)

        async def one(node_id: str) -> None:
            async with slots:
                report.nodes.append(await self._diagnose(node_id, queues[node_id], params))

        await asyncio.gather(*(one(n) for n in nodes))
        workflow.set_current_details(", ".join(
            f"{sum(1 for n in report.nodes if n.outcome == k)} {k}"
            for k in ("pass", "fail", "skipped", "busy", "unreachable")))
        return report

    async def _diagnose(self, node_id: str, queue: str,
                        params: DiagnosticsInput) -> NodeDiagnostics:
        try:
            idle = await workflow.execute_activity(
                wait_idle, WaitIdleInput(node_id=node_id, grace=timedelta(0)),
                task_queue=queue,
                schedule_to_start_timeout=params.heartbeat_timeout,
                start_to_close_timeout=IDLE_CHECK_TIMEOUT, retry_policy=RUN_ONCE)
        except ActivityError as err:
            return NodeDiagnostics(node_id=node_id, outcome="unreachable", detail=str(err.cause))
        if idle.outcome != "idle":
            return NodeDiagnostics(node_id=node_id, outcome="busy",
                                   detail=f"{idle.remaining_processes} GPU process(es) running")
        node = workflow.get_external_workflow_handle(node_workflow_id(node_id))
        await node.signal(NodeWorkflow.cordon,
                          CordonInput(reason="diagnostics", source=CordonSource.DIAGNOSTICS))
        results: list[DiagnosticResult] = []
        for check in params.checks:
            limit = diagnostic_limit(check.kind, check.level, check.seconds)
            try:
                results.append(await workflow.execute_activity(
                    run_diagnostic,
                    DiagnosticInput(node_id=node_id, kind=check.kind, level=check.level,
                                    seconds=check.seconds, command=check.command,
                                    min_bus_gbps=check.min_bus_gbps),
                    task_queue=queue,
                    schedule_to_start_timeout=params.heartbeat_timeout,
                    start_to_close_timeout=limit, heartbeat_timeout=params.heartbeat_timeout,
                    retry_policy=RUN_ONCE))
            except ActivityError as err:
                results.append(DiagnosticResult(kind=check.kind, status="fail",
                                                detail=f"could not run: {err.cause}"))
        failed = [r for r in results if r.status == "fail"]
        if failed:
            return NodeDiagnostics(node_id=node_id, outcome="fail", results=results,
                                   detail="; ".join(r.detail for r in failed))
        await node.signal(NodeWorkflow.uncordon, UncordonInput(reason="diagnostics passed",
                                                            source=CordonSource.DIAGNOSTICS))
        ran = [r for r in results if r.status == "pass"]
        return NodeDiagnostics(node_id=node_id, outcome="pass" if ran else "skipped",
                               results=results)
