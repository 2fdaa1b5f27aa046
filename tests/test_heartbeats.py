"""Long calls beat while they wait (so a worker that dies mid-call is noticed by the
heartbeat timeout), and a cancelled activity cancels the call it was waiting on."""

from __future__ import annotations

import asyncio

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from navarch.temporal import heartbeats


async def test_beats_while_waiting_and_returns_the_result(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(heartbeats, "HEARTBEAT_SECONDS", 0.05)
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    @activity.defn
    async def slow() -> str:
        async def work() -> str:
            await asyncio.sleep(0.3)
            return "done"

        return await heartbeats.with_heartbeats(work())

    assert await env.run(slow) == "done"
    assert len(beats) >= 3


async def test_cancel_reaches_the_call(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(heartbeats, "HEARTBEAT_SECONDS", 0.05)
    env = ActivityEnvironment()
    cancelled = asyncio.Event()

    @activity.defn
    async def stuck() -> None:
        async def work() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        await heartbeats.with_heartbeats(work())

    task = asyncio.ensure_future(env.run(stuck))
    await asyncio.sleep(0.2)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
