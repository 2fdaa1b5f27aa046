"""Start the orphan sweep, or reconfigure the one running: one update-with-start call, as a
pool's apply is."""

from __future__ import annotations

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from navarch.contracts.names import CONTROL_PLANE_TASK_QUEUE, SWEEP_WORKFLOW_ID
from navarch.contracts.sweep import SweepConfig, SweepInput


async def apply_sweep(client: Client, config: SweepConfig,
                      task_queue: str = CONTROL_PLANE_TASK_QUEUE) -> str:
    """What the running sweep answered ("unchanged", "configured: ...")."""
    start: WithStartWorkflowOperation[SweepInput, None] = WithStartWorkflowOperation(
        "OrphanSweepWorkflow", SweepInput(config=config), id=SWEEP_WORKFLOW_ID,
        task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="orphan sweep: machines no node owns, nodes whose machine is gone")
    answer: str = await client.execute_update_with_start_workflow(
        "configure", config, start_workflow_operation=start, result_type=str)
    return answer
