"""The Temporal Schedule behind each pool's diagnostics (`diagnostics/<pool>`)."""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from navarch.contracts.names import CONTROL_PLANE_TASK_QUEUE
from navarch.contracts.spec import PoolSpec


def diagnostics_schedule_id(pool: str) -> str:
    return f"diagnostics/{pool}"


def _schedule(spec: PoolSpec, task_queue: str) -> Schedule:
    from navarch.contracts.diagnostics import DiagnosticsInput

    diag = spec.diagnostics
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "DiagnosticsWorkflow",
            DiagnosticsInput(pool=spec.name, checks=diag.checks, max_parallel=diag.max_parallel,
                             heartbeat_timeout=spec.heartbeat_timeout),
            id=f"diagnostics/{spec.name}", task_queue=task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[diag.cron]),
    )


async def apply_diagnostics_schedule(client: Client, spec: PoolSpec,
                                     task_queue: str = CONTROL_PLANE_TASK_QUEUE) -> str:
    """Create, update or (when disabled) delete the pool's schedule; say which."""
    schedule_id = diagnostics_schedule_id(spec.name)
    handle = client.get_schedule_handle(schedule_id)
    if not spec.diagnostics.enabled:
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            return "none"
        return "deleted"
    schedule = _schedule(spec, task_queue)
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
        return "updated"


async def delete_diagnostics_schedule(client: Client, pool: str) -> bool:
    """Remove the pool's schedule; False when it had none."""
    try:
        await client.get_schedule_handle(diagnostics_schedule_id(pool)).delete()
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True
