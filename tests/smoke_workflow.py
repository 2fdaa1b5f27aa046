"""A tiny workflow + activity used to prove the test harness runs real Temporal servers."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from navarch.contracts.names import SA_POOL
    from navarch.health.events import EventType, HealthEvent, HealthResult


class SmokeInput(BaseModel):
    pool: str
    sleep: timedelta = timedelta(0)
    upsert_search_attribute: bool = False


class SmokeOutput(BaseModel):
    event: HealthEvent
    result: HealthResult
    slept: timedelta


@activity.defn(name="smoke.make_event")
async def make_event(pool: str) -> HealthEvent:
    return HealthEvent(event_type=EventType.XID, gpu_index=3, metrics={"xid_code": 79},
                       message=f"from {pool}")


@workflow.defn(name="NavarchSmoke")
class SmokeWorkflow:
    @workflow.run
    async def run(self, params: SmokeInput) -> SmokeOutput:
        if params.upsert_search_attribute:
            workflow.upsert_search_attributes([SA_POOL.value_set(params.pool)])
        start = workflow.now()
        event = await workflow.execute_activity(
            make_event, params.pool, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.sleep(params.sleep)
        return SmokeOutput(event=event, result=HealthResult.UNHEALTHY,
                           slept=workflow.now() - start)
