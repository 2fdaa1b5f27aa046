"""An activity whose workflow no longer wants it (the workflow ended, or the server timed
the activity out) is told so at its next heartbeat and cancelled. That is routine — a
leaving node's health watch ends this way — so the worker says it quietly, instead of a
warning with a traceback for every one."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from navarch.temporal.abandoned import QuietAbandonment

cancelled: dict[str, asyncio.Event] = {}


@activity.defn
async def beat_forever(key: str) -> None:
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        cancelled[key].set()
        raise


@workflow.defn(sandboxed=False)
class LeavesItsActivity:
    @workflow.run
    async def run(self, key: str) -> None:
        workflow.start_activity(beat_forever, key, start_to_close_timeout=timedelta(minutes=1),
                                heartbeat_timeout=timedelta(seconds=1),
                                cancellation_type=workflow.ActivityCancellationType.ABANDON)
        await workflow.sleep(0.5)


@pytest.mark.parametrize("quiet", [True, False])
async def test_an_abandoned_activity_ends_without_a_warning(
        dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture, quiet: bool):
    key = uuid.uuid4().hex
    cancelled[key] = asyncio.Event()
    queue = f"abandon-{key}"
    caplog.set_level(logging.DEBUG, logger="temporalio.activity")
    async with Worker(dev_env.client, task_queue=queue, workflows=[LeavesItsActivity],
                      activities=[beat_forever], workflow_runner=UnsandboxedWorkflowRunner(),
                      interceptors=[QuietAbandonment()] if quiet else []):
        await dev_env.client.execute_workflow(LeavesItsActivity.run, key, id=f"abandon/{key}",
                                              task_queue=queue)
        await asyncio.wait_for(cancelled[key].wait(), 10)  # told at its next heartbeat
        await asyncio.sleep(0.5)  # the worker completes it
    warned = [r for r in caplog.records if r.name == "temporalio.activity"
              and r.levelno >= logging.WARNING and "failed" in r.getMessage()]
    if quiet:
        assert not warned
        assert any("no longer wanted" in (r.exc_text or str(r.exc_info))
                   for r in caplog.records if r.name == "temporalio.activity")
    else:  # the SDK's own behaviour, which the interceptor is there for
        assert warned
