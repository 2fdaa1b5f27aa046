"""Many simulated hosts behind one task queue.

Each host is the real agent (AgentActivities over a fake backend); one worker serves them
all and hands each activity to the host named in its input. An activity for a host that
is not up (still booting, or its network cut by a scenario) waits, without heartbeats,
until the host comes up — as a task waits on a real agent's queue — or until the server's
own timeout for it has passed, so the node workflow sees the timeouts a dead agent causes.
A host that goes silent mid-activity stops heartbeating at that moment and never answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from navarch.contracts import agent as agent_api
from navarch.contracts.agent import (
    BootCheckInput,
    BootCheckResult,
    DiagnosticInput,
    DiagnosticResult,
    Inventory,
    RebootHostInput,
    ResetGpuInput,
    ResetGpuResult,
    WaitIdleInput,
    WaitIdleResult,
    WatchHealthInput,
    WatchHealthResult,
)

from .activities import AgentActivities

# How long past the server's timeout a silent host holds an activity before letting go of
# it (the server has failed it by then; what the worker reports is dropped).
HOLD_MARGIN = timedelta(seconds=2)
HOLD_LIMIT = timedelta(hours=1)  # an activity with no timeout at all


@dataclass
class _Host:
    agent: AgentActivities
    down: asyncio.Event = field(default_factory=asyncio.Event)


class SharedHosts:
    def __init__(self) -> None:
        self._hosts: dict[str, _Host] = {}
        self._up: dict[str, asyncio.Event] = {}
        self.silent_holds = 0  # activities that timed out on a host that was down

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._hosts

    def __len__(self) -> int:
        return len(self._hosts)

    def node_ids(self) -> list[str]:
        return list(self._hosts)

    def add(self, node_id: str, agent: AgentActivities) -> None:
        self._hosts[node_id] = _Host(agent)
        self._up.setdefault(node_id, asyncio.Event()).set()

    def remove(self, node_id: str) -> None:
        """The host goes silent: its running activities stop heartbeating and answering."""
        host = self._hosts.pop(node_id, None)
        if host is not None:
            host.down.set()
        up = self._up.pop(node_id, None)
        if up is not None and not up.is_set():  # someone waits for it: keep their event
            self._up[node_id] = up

    async def _serve(self, node_id: str,
                     call: Callable[[AgentActivities], Awaitable[Any]]) -> Any:
        host = self._hosts.get(node_id)
        if host is None:
            up = self._up.setdefault(node_id, asyncio.Event())
            try:
                await asyncio.wait_for(up.wait(), self._seconds_left())
            except TimeoutError:
                return await self._silent(node_id)
            host = self._hosts.get(node_id)
            if host is None:  # up and down again in between
                return await self._silent(node_id)
        work = asyncio.ensure_future(call(host.agent))
        gone = asyncio.ensure_future(host.down.wait())
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
        await asyncio.sleep(self._seconds_left())
        return await self._silent(node_id)

    @staticmethod
    def _seconds_left() -> float:
        """Until the server has timed this activity out (heartbeats stop from now on)."""
        info = activity.info()
        now = datetime.now(UTC)
        ends = [now + HOLD_LIMIT]
        if info.heartbeat_timeout:
            ends.append(now + info.heartbeat_timeout)
        if info.start_to_close_timeout:
            ends.append(info.started_time + info.start_to_close_timeout)
        if info.schedule_to_close_timeout:
            ends.append(info.current_attempt_scheduled_time + info.schedule_to_close_timeout)
        return max(0.0, (min(ends) - now + HOLD_MARGIN).total_seconds())

    async def _silent(self, node_id: str) -> Any:
        self.silent_holds += 1
        # Benign: expected, logged at debug; the server has failed the activity already.
        raise ApplicationError(f"simulated host {node_id} is down", type="HostDown",
                               non_retryable=True, category=ApplicationErrorCategory.BENIGN)

    @activity.defn(name=agent_api.GPU_INVENTORY)
    async def gpu_inventory(self, node_id: str) -> Inventory:
        result: Inventory = await self._serve(node_id, lambda a: a.gpu_inventory(node_id))
        return result

    @activity.defn(name=agent_api.BOOT_CHECK)
    async def boot_check(self, params: BootCheckInput) -> BootCheckResult:
        result: BootCheckResult = await self._serve(params.node_id,
                                                    lambda a: a.boot_check(params))
        return result

    @activity.defn(name=agent_api.WATCH_HEALTH)
    async def watch_health(self, params: WatchHealthInput) -> WatchHealthResult:
        result: WatchHealthResult = await self._serve(params.node_id,
                                                      lambda a: a.watch_health(params))
        return result

    @activity.defn(name=agent_api.WAIT_IDLE)
    async def wait_idle(self, params: WaitIdleInput) -> WaitIdleResult:
        result: WaitIdleResult = await self._serve(params.node_id, lambda a: a.wait_idle(params))
        return result

    @activity.defn(name=agent_api.RUN_DIAGNOSTIC)
    async def run_diagnostic(self, params: DiagnosticInput) -> DiagnosticResult:
        result: DiagnosticResult = await self._serve(params.node_id,
                                                     lambda a: a.run_diagnostic(params))
        return result

    @activity.defn(name=agent_api.RESET_GPU)
    async def reset_gpu(self, params: ResetGpuInput) -> ResetGpuResult:
        result: ResetGpuResult = await self._serve(params.node_id, lambda a: a.reset_gpu(params))
        return result

    @activity.defn(name=agent_api.REBOOT_HOST)
    async def reboot_host(self, params: RebootHostInput) -> str:
        result: str = await self._serve(params.node_id, lambda a: a.reboot_host(params))
        return result

    def activities(self) -> list[Callable[..., object]]:
        return [self.gpu_inventory, self.boot_check, self.watch_health, self.wait_idle,
                self.run_diagnostic, self.reset_gpu, self.reboot_host]
