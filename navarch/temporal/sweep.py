"""Start the orphan sweep, or reconfigure the one running: one update-with-start call, as a
pool's apply is."""

from __future__ import annotations

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from navarch.contracts.names import CONTROL_PLANE_TASK_QUEUE, SWEEP_WORKFLOW_ID
from navarch.contracts.sweep import SweepConfig, SweepInput


async def apply_sweep(client: Client, config: SweepConfig,
                      task_queue: str = CONTROL_PLANE_TASK_QUEUE) -> str:
    """"started", or what the running sweep answered ("unchanged", "configured: ...")."""
    try:
        running = (await client.get_workflow_handle(SWEEP_WORKFLOW_ID).describe()).status \
            == WorkflowExecutionStatus.RUNNING
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        running = False
    start: WithStartWorkflowOperation[SweepInput, None] = WithStartWorkflowOperation(
        "OrphanSweepWorkflow", SweepInput(config=config), id=SWEEP_WORKFLOW_ID,
        task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="orphan sweep: machines no node owns, nodes whose machine is gone")
    answer: str = await client.execute_update_with_start_workflow(
        "configure", config, start_workflow_operation=start, result_type=str)
    # Whether it ran before is only for the message: the start-or-update is one call.
    return answer if running else "started"
