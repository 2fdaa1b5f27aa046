"""Simulated GPU hosts: for each running fake-cloud instance, the real agent activities
over a FakeGpuBackend — by default an agent worker on `navarch-node-<node_id>` per host, as
on a real machine; with `shared_queue`, one worker on that queue serves every host (the
fake cloud then records that queue in each instance, so node workflows send there).

The fake cloud only records instances; this manager makes them come alive when their boot
time comes, and go away when they are terminated or their agent is switched off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from navarch.contracts.names import node_task_queue
from navarch.health.policy import Policy
from navarch.sim.fakeworld import FakeInstance, FakeWorld
from navarch.temporal.abandoned import QuietAbandonment
from navarch.temporal.heartbeats import AGENT_HEARTBEAT_THROTTLE_CAP

from .activities import AgentActivities
from .fake_backend import FakeGpuBackend
from .shared_host import SharedHosts
from .world_feed import DEFAULT_REFRESH_SECONDS, WorldFeed

log = logging.getLogger(__name__)

SHARED_HOST_QUEUE = "navarch-sim-hosts"
# Activities one shared worker may hold: every host keeps a health watch open.
SHARED_MAX_ACTIVITIES = 100_000
SHARED_POLLERS = 8


@dataclass
class _Host:
    worker: Worker
    task: asyncio.Task[None]


class FakeHostManager:
    """`discover`, if given, lists the running machines to simulate (e.g. instances of a
    local moto server); by default they are the fake cloud's own. GPU faults always come
    from `world`."""

    def __init__(self, client: Client, world: FakeWorld, *, poll_seconds: float = 0.1,
                 discover: Callable[[], list[FakeInstance]] | None = None,
                 shared_queue: str | None = None) -> None:
        self.client = client
        self.world = world
        self.poll_seconds = poll_seconds
        self.discover = discover
        self.hosts: dict[str, _Host] = {}
        self.shared_queue = shared_queue
        self.shared = SharedHosts()
        self.feed = WorldFeed(world)
        self.policies: dict[str, Policy] = {}  # compiled once for every shared host

    async def run(self, stop: asyncio.Event) -> None:
        if self.shared_queue is not None:
            await self._run_shared(stop, self.shared_queue)
            return
        try:
            while not stop.is_set():
                await self.sync()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)
        finally:
            await self.stop_all()

    async def _run_shared(self, stop: asyncio.Event, queue: str) -> None:
        worker = Worker(self.client, task_queue=queue, activities=self.shared.activities(),
                        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(SHARED_POLLERS),
                        max_concurrent_activities=SHARED_MAX_ACTIVITIES,
                        interceptors=[QuietAbandonment()],
                        max_heartbeat_throttle_interval=AGENT_HEARTBEAT_THROTTLE_CAP)
        log.info("simulated hosts share task queue %r", queue)
        async with worker:
            while not stop.is_set():
                await self.sync_shared()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(self.poll_seconds,
                                                            DEFAULT_REFRESH_SECONDS))

    async def sync_shared(self) -> None:
        """Read the world once; bring up hosts whose machine runs with its agent on, silence
        the rest."""
        await self.feed.refresh()
        wanted = {i.node_id: i for i in self.feed.snapshot.instances
                  if i.state == "running" and i.agent_enabled}
        for node_id in [n for n in self.shared.node_ids() if n not in wanted]:
            self.shared.remove(node_id)
            self.feed.forget(node_id)
        for node_id, inst in wanted.items():
            if node_id not in self.shared:
                backend = FakeGpuBackend(self.world, node_id, inst.gpu_count, inst.gpu_model,
                                         feed=self.feed)
                self.shared.add(node_id, AgentActivities(
                    backend, wait_change=functools.partial(self.feed.wait_change, node_id),
                    policies=self.policies))

    async def sync(self) -> None:
        if self.discover is not None:
            instances = await asyncio.to_thread(self.discover)
        else:
            await asyncio.to_thread(self.world.boot_due)
            instances = await asyncio.to_thread(self.world.instances, None, live_only=True)
        wanted = {i.node_id: i for i in instances if i.state == "running" and i.agent_enabled}
        for node_id in [n for n in self.hosts if n not in wanted]:
            await self.stop_host(node_id)
        for node_id, inst in wanted.items():
            if node_id not in self.hosts:
                self.start_host(inst)

    def start_host(self, inst: FakeInstance) -> None:
        backend = FakeGpuBackend(self.world, inst.node_id, inst.gpu_count, inst.gpu_model)
        worker = Worker(
            self.client,
            task_queue=node_task_queue(inst.node_id),
            activities=AgentActivities(backend).activities(),
            activity_task_poller_behavior=PollerBehaviorSimpleMaximum(1),
            max_concurrent_activities=8,
            interceptors=[QuietAbandonment()],
            max_heartbeat_throttle_interval=AGENT_HEARTBEAT_THROTTLE_CAP,
        )
        self.hosts[inst.node_id] = _Host(worker, asyncio.create_task(worker.run()))
        log.info("simulated host %s is up (%d× %s)", inst.node_id, inst.gpu_count,
                 inst.gpu_model)

    async def stop_host(self, node_id: str) -> None:
        host = self.hosts.pop(node_id, None)
        if host is None:
            return
        with contextlib.suppress(Exception):
            await host.worker.shutdown()
        with contextlib.suppress(BaseException):
            await host.task
        log.info("simulated host %s is gone", node_id)

    async def stop_all(self) -> None:
        for node_id in list(self.hosts):
            await self.stop_host(node_id)
