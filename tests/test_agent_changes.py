"""The health watch wakes on a recorded event instead of waiting for its next poll: the
change count, a notify from another thread, and the kernel-log reader sleeping in poll(2)
until a record is written."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import timedelta

from temporalio.testing import ActivityEnvironment

from navarch.agent import activities
from navarch.agent.activities import AgentActivities
from navarch.agent.changes import Changes
from navarch.agent.fake_backend import FakeGpuBackend
from navarch.agent.kernel_log_follower import KernelLogWatcher, KmsgSource
from navarch.contracts.agent import WatchHealthInput
from navarch.health.events import EventType, HealthEvent, HealthResult
from navarch.health.kernel_log import KernelLogEvent
from navarch.health.policy import builtin_policy
from navarch.sim.fakeworld import FakeWorld

XID = "NVRM: Xid (PCI:0000:1a:00): 79, pid=1, name=x, GPU has fallen off the bus."


async def test_a_change_before_the_wait_is_not_lost_and_a_quiet_wait_times_out():
    changes = Changes()
    seen = changes.count
    changes.notify()  # between reading the events and going to sleep
    assert await changes.wait(30, since=seen) is True
    assert await changes.wait(0.05, since=changes.count) is False


async def test_a_notify_from_another_thread_wakes_the_waiter():
    changes = Changes()
    seen = changes.count
    threading.Timer(0.1, changes.notify).start()
    started = time.monotonic()
    assert await changes.wait(30, since=seen) is True
    assert time.monotonic() - started < 10


async def test_an_event_recorded_off_the_loop_completes_the_watch_before_its_next_poll(
        tmp_path, monkeypatch):
    # Readings every 60 s: only the wake-up can end the watch within the test's bound.
    monkeypatch.setattr(activities, "MAX_POLL_SECONDS", 60.0)
    backend = FakeGpuBackend(FakeWorld(tmp_path / "world.db"), "n1", 8, "H100")
    watch = asyncio.ensure_future(ActivityEnvironment().run(
        AgentActivities(backend).watch_health,
        WatchHealthInput(node_id="n1", policy=builtin_policy("default").source,
                         check_interval=timedelta(seconds=60))))
    await asyncio.sleep(0.3)
    assert not watch.done()
    xid = HealthEvent(event_type=EventType.XID, gpu_index=2, metrics={"xid_code": 79})
    threading.Thread(target=backend.record, args=(xid,)).start()  # as the kernel-log reader
    result = await asyncio.wait_for(watch, 10)
    assert result.health is HealthResult.UNHEALTHY and result.events[0].gpu_index == 2


def test_the_kmsg_reader_sleeps_until_a_record_is_written_and_stops_at_once(tmp_path):
    path = tmp_path / "kmsg"
    os.mkfifo(path)
    held = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # a writer that stays, as the kernel
    found: list[KernelLogEvent] = []
    delivered = threading.Event()

    def on_event(event: KernelLogEvent) -> None:
        found.append(event)
        delivered.set()

    watcher = KernelLogWatcher(KmsgSource(str(path)), on_event)
    reads = _count_reads(watcher)
    watcher.start()
    try:
        time.sleep(1.0)
        assert reads[0] <= 2, f"{reads[0]} reads of an idle kernel log in 1 s: it polls on a timer"
        os.write(held, f"3,7,70,-;{XID}\n".encode())
        assert delivered.wait(5) and found[0].code == 79
        stopped = time.monotonic()
    finally:
        watcher.stop()
        os.close(held)
    assert time.monotonic() - stopped < 2 and not watcher._thread.is_alive()


def test_a_fifo_whose_writer_went_is_read_on_a_timer_not_in_a_busy_loop(tmp_path):
    path = tmp_path / "kmsg"
    os.mkfifo(path)
    source = KmsgSource(str(path))
    os.close(os.open(path, os.O_WRONLY))  # a writer came and went: poll says hung up
    watcher = KernelLogWatcher(source, lambda e: None)
    reads = _count_reads(watcher)
    watcher.start()
    time.sleep(0.5)
    watcher.stop()
    assert 2 <= reads[0] <= 10


def _count_reads(watcher: KernelLogWatcher) -> list[int]:
    """Count the watcher's reads of its source (in a one-item list the test reads)."""
    reads = [0]
    poll_once = watcher.poll_once

    def counting() -> None:
        reads[0] += 1
        poll_once()

    watcher.poll_once = counting  # type: ignore[method-assign]
    return reads
