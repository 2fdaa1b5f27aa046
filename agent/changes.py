"""Wakes the health watch when a node's events change.

The agent's event sources run on threads of their own: the kernel-log reader blocked on
/dev/kmsg, NVML's event wait, a diagnostic's job. Each records what it found in the backend,
and the backend notifies its `Changes`; the health watch, asleep on the event loop between
polls of the GPUs' readings, wakes and judges at once instead of at its next poll.

A change is counted, so one that lands between the watch reading the events and going to
sleep is not lost: the watch sleeps only if nothing changed since the count it read."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Changes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def count(self) -> int:
        """How many changes so far: read it before reading the events."""
        with self._lock:
            return self._count

    def notify(self) -> None:
        """Something changed; from any thread."""
        with self._lock:
            self._count += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                loop.call_soon_threadsafe(event.set)

    async def wait(self, seconds: float, since: int) -> bool:
        """Sleep up to `seconds`; True as soon as the count has moved past `since`."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._count != since:
                return True
            self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), seconds)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        return self.count != since
