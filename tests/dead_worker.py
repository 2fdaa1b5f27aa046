"""The sequence that forks a workflow's history on SDK core (navarch/temporal/fork_guard.py),
for the tests that check it no longer does: the workflow's worker is SIGKILLed, a query
waits for it and goes to another worker, a signal lands while the query waits (its task
waits for the dead worker), a second signal lands after the query, before that task
times out; then the workflow runs on and a timer fires."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError

from lifecycle_helpers import eventually

TRIES = 3


async def history_events(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


async def last_worker(handle: WorkflowHandle[Any, Any]) -> str:
    """The identity (pid@host) of the worker that completed the workflow's last task."""
    completed = [e for e in await history_events(handle)
                 if e.HasField("workflow_task_completed_event_attributes")]
    return completed[-1].workflow_task_completed_event_attributes.identity


def fired_after_last_signal(events: list[HistoryEvent]) -> bool:
    """A timer started after the last signal has fired: only then does a replay compare
    the timer ids of the forked part."""
    last = max(e.event_id for e in events
               if e.HasField("workflow_execution_signaled_event_attributes"))
    started = {e.event_id for e in events
               if e.event_id > last and e.HasField("timer_started_event_attributes")}
    return any(e.timer_fired_event_attributes.started_event_id in started for e in events
               if e.HasField("timer_fired_event_attributes"))


async def query_while_its_worker_is_dead(
        handle: WorkflowHandle[Any, Any], workers: list[subprocess.Popen[bytes]],
        start_worker: Callable[[], subprocess.Popen[bytes]],
        query: Callable[[], Awaitable[object]],
        poke: Callable[[], Awaitable[None]]) -> bool:
    """Run the sequence until the first signal's task waited for the dead worker and timed
    out (the server sometimes drops the dead worker at once; then nothing forks and it tries
    again, with a new worker each time). Whether the query was refused."""
    for _ in range(TRIES):
        holder = await last_worker(handle)
        alive = [w for w in workers if w.poll() is None]
        dead = next((w for w in alive if f"{w.pid}@" in holder), None)
        assert dead is not None, f"{holder} is none of {[w.pid for w in alive]}"
        dead.kill()
        dead.wait()
        workers.append(start_worker())
        asked = asyncio.ensure_future(query())  # waits for the dead worker
        await asyncio.sleep(1)
        before = len(await history_events(handle))
        await poke()  # its task waits for the dead worker
        refused = False
        try:
            await asyncio.wait_for(asked, 30)
        except WorkflowQueryFailedError as err:
            assert "fork guard" in str(err), err
            refused = True
        await poke()  # before that task times out
        events = await eventually(lambda: history_events(handle), fired_after_last_signal,
                                  within=30, what="a timer fired after the second signal")
        if any(e.HasField("workflow_task_timed_out_event_attributes")
               for e in events[before:]):
            return refused
    raise AssertionError(f"in {TRIES} tries the signal's task never waited for the dead "
                         "worker: nothing was tested")
