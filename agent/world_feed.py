"""One reader of the fake world for many simulated hosts.

A simulated host on its own reads its faults from SQLite every half second; thousands of
them would spend the machine on those reads. The feed reads every machine, fault and GPU
process in one transaction a few times a second, and wakes the hosts whose faults changed,
so a new fault is judged as soon as it is read while idle hosts do nothing."""

from __future__ import annotations

import asyncio
import contextlib

from navarch.sim.fakeworld import FakeWorld, GpuFault, GpuProcess, WorldSnapshot

DEFAULT_REFRESH_SECONDS = 0.25
MACHINES_EVERY = 4  # refreshes: machines (thousands of rows) are read once a second


class WorldFeed:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world
        self.snapshot = WorldSnapshot([], {}, {})
        self._changed: dict[str, asyncio.Event] = {}
        self._refreshes = 0

    async def refresh(self) -> None:
        """Read faults and processes (and, every MACHINES_EVERY calls, bring due machines up
        and read them); wake the hosts whose faults changed."""
        machines = self._refreshes % MACHINES_EVERY == 0
        self._refreshes += 1
        if machines:
            await asyncio.to_thread(self.world.boot_due)
        new = await asyncio.to_thread(self.world.snapshot, machines=machines)
        if not machines:
            new = WorldSnapshot(self.snapshot.instances, new.faults, new.processes)
        old, self.snapshot = self.snapshot, new
        for node_id in set(old.faults) | set(new.faults):
            if old.faults.get(node_id) != new.faults.get(node_id):
                event = self._changed.get(node_id)
                if event is not None:
                    event.set()

    def faults(self, node_id: str) -> list[GpuFault]:
        return self.snapshot.faults.get(node_id, [])

    def processes(self, node_id: str) -> list[GpuProcess]:
        return self.snapshot.processes.get(node_id, [])

    async def wait_change(self, node_id: str, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the node's faults change."""
        event = self._changed.setdefault(node_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        changed = event.is_set()
        event.clear()
        return changed

    def wake(self, node_id: str) -> None:
        """Wake the node's watch now: its host recorded an event of its own (a diagnostic
        that failed), which no read of the world would show."""
        self._changed.setdefault(node_id, asyncio.Event()).set()

    def forget(self, node_id: str) -> None:
        self._changed.pop(node_id, None)
