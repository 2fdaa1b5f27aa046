"""Build B of the control plane, as the upgrade test runs it: the workflows of this tree,
with a NodeWorkflow that takes one new step at the start of every run (it records in its
memo which build ran it). The step is a command build A never issues, and it is not
patched: a run of A replayed on this code fails, so only pinning keeps A's runs safe."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from navarch.contracts.node import NodeInput, NodeStatus
    from navarch.workflows.node import NodeWorkflow
    from navarch.workflows.registry import WORKFLOWS


@workflow.defn(name="NodeWorkflow")
class NodeWorkflowB(NodeWorkflow):
    @workflow.run
    async def run(self, params: NodeInput) -> NodeStatus:
        workflow.upsert_memo({"ran_by": "B"})
        return await super().run(params)


WORKFLOWS_B: list[type[Any]] = [NodeWorkflowB if w is NodeWorkflow else w for w in WORKFLOWS]
