"""Test doubles for the autoscaling workflow tests on the time-skipping server: a NodeWorkflow
stand-in that is ready at once and leaves when retired (no machine, no agent), and a
metrics activity that answers what the test scripts. The PoolWorkflow under test is the
real one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from navarch.contracts.autoscale import GATHER_METRICS, MetricsRequest, PoolMetrics
    from navarch.contracts.names import pool_workflow_id
    from navarch.contracts.node import (
        CordonInput,
        NodeInput,
        NodeReport,
        NodeState,
        NodeStatus,
        RetireInput,
        TransitionReason,
    )


@workflow.defn(name="NodeWorkflow")
class StubNode:
    def __init__(self) -> None:
        self._retire: RetireInput | None = None
        self._cordon: CordonInput | None = None
        self._seq = 0

    @workflow.signal(name="retire")
    def retire(self, params: RetireInput) -> None:
        self._retire = params

    @workflow.signal(name="cordon")
    def cordon(self, params: CordonInput) -> None:
        self._cordon = params

    async def _tell(self, params: NodeInput, state: NodeState, reason: TransitionReason,
                    source: str | None = None) -> None:
        self._seq += 1
        await workflow.get_external_workflow_handle(pool_workflow_id(params.spec.name)).signal(
            "node_state_changed", NodeReport(
                node_id=params.node_id, state=state, reason=reason, at=workflow.now(),
                seq=self._seq, cordon_source=source,
                run_chain=workflow.info().first_execution_run_id))

    @workflow.run
    async def run(self, params: NodeInput) -> NodeStatus:
        await workflow.sleep(timedelta(seconds=1))
        await self._tell(params, NodeState.READY, TransitionReason.BOOT_CHECK_PASSED)
        while self._retire is None:
            await workflow.wait_condition(lambda: self._retire is not None
                                          or self._cordon is not None)
            if self._cordon is not None:
                await self._tell(params, NodeState.CORDONED, TransitionReason.OPERATOR,
                                 self._cordon.source)
                self._cordon = None
        await self._tell(params, NodeState.TERMINATED, self._retire.reason)
        return NodeStatus(node_id=params.node_id, pool=params.spec.name,
                          state=NodeState.TERMINATED)


@dataclass
class ScriptedMetrics:
    """What the metrics activity answers; a test changes it as time goes on."""

    utilization: float | None = None
    queue_depth: int | None = None
    idle_nodes: list[str] = field(default_factory=list)
    calls: list[MetricsRequest] = field(default_factory=list)

    @activity.defn(name=GATHER_METRICS)
    async def gather(self, request: MetricsRequest) -> PoolMetrics:
        self.calls.append(request)
        await asyncio.sleep(0)
        return PoolMetrics(utilization=self.utilization, queue_depth=self.queue_depth,
                           idle_nodes=list(self.idle_nodes), gpus=8 if self.utilization else 0)
