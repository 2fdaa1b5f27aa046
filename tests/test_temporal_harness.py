"""The harness runs a real workflow and activity on both real Temporal servers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from navarch.models import EventType, HealthResult

from smoke_workflow import SmokeInput, SmokeOutput, SmokeWorkflow, make_event


async def _run(env: WorkflowEnvironment, params: SmokeInput) -> tuple[str, SmokeOutput]:
    queue = f"smoke-{uuid.uuid4()}"
    workflow_id = f"smoke/{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[SmokeWorkflow],
                      activities=[make_event]):
        result = await env.client.execute_workflow(
            SmokeWorkflow.run, params, id=workflow_id, task_queue=queue
        )
    return workflow_id, result


async def test_dev_server_runs_workflow_and_registers_search_attributes(dev_env):
    workflow_id, out = await _run(
        dev_env, SmokeInput(pool="smoke-pool", upsert_search_attribute=True)
    )
    assert out.event.event_type is EventType.XID
    assert out.event.metrics == {"xid_code": 79}
    assert out.event.message == "from smoke-pool"
    assert out.result is HealthResult.UNHEALTHY

    # Visibility is eventually consistent: the search attribute query answers within moments.
    found: list[str] = []
    for _ in range(50):
        found = [w.id async for w in dev_env.client.list_workflows('NavarchPool="smoke-pool"')]
        if workflow_id in found:
            break
        await asyncio.sleep(0.1)
    assert workflow_id in found


async def test_time_skipping_server_skips_a_three_day_timer(time_env):
    _, out = await _run(time_env, SmokeInput(pool="p", sleep=timedelta(days=3)))
    assert out.slept >= timedelta(days=3)
    assert out.event.gpu_index == 3
