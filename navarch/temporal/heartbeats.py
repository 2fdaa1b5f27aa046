"""Long activity calls beat while they wait, so the workflow's heartbeat timeout (not a long
start-to-close timeout) notices a worker or agent that died mid-call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity

HEARTBEAT_SECONDS = 5.0  # well inside the 30 s heartbeat timeout the workflows set

# The agent's workers send a heartbeat to the server at most once per 0.8 x the activity's
# heartbeat timeout (the SDK's throttle), and no more often than that: the SDK's own cap of
# 60 s would send one every 60 s at the 90 s default, 1,440 a day per healthy node where
# 1,200 keep it alive. On Temporal Cloud each is a billable action.
AGENT_HEARTBEAT_THROTTLE_CAP = timedelta(hours=1)

T = TypeVar("T")


async def with_heartbeats(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating every few seconds, so the workflow's heartbeat timeout
    (not the long start-to-close one) notices a worker or agent that died mid-call."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
            if done:
                return task.result()
            activity.heartbeat()
    except asyncio.CancelledError:
        task.cancel()
        raise
