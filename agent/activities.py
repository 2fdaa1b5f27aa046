"""The agent's activities, run on the node's own task queue against a GPU backend."""

from __future__ import annotations

import asyncio
import functools
import random
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from navarch.contracts import agent as agent_api
from navarch.contracts.agent import (
    BootCheckInput,
    BootCheckResult,
    CheckResult,
    DiagnosticInput,
    DiagnosticResult,
    HealthSummary,
    Inventory,
    RebootHostInput,
    ResetGpuInput,
    ResetGpuResult,
    WaitIdleInput,
    WaitIdleResult,
    WatchHealthInput,
    WatchHealthResult,
)
from navarch.health.events import EventType, HealthEvent, HealthResult
from navarch.health.policy import EventVerdict, Policy, compile_policy
from navarch.temporal.heartbeats import with_heartbeats

from . import diagnostics
from .backend import BackendError, GpuBackend

# Events shown in the heartbeat summary (the UI's live view of a node).
SUMMARY_EVENTS = 5
# The GPUs' readings (temperatures, ECC counters, NVLink state, the driver answering) are
# read at least this often, whatever the pool's check interval. One-shot events (a kernel-log
# Xid, an NVML event, a failed diagnostic) do not wait for it: the backend's `changes`
# wake the watch as soon as one is recorded.
MAX_POLL_SECONDS = 0.5
DIAGNOSTIC_HEARTBEAT_SECONDS = 5.0
SAMPLE_SECONDS = 10.0


class AgentActivities:
    """`wait_change(seconds)`, if given, sleeps until the backend's events may have changed
    (True) or the time is up (False), and covers every change, readings included: the
    health watch then sleeps a whole check interval between judgements instead of reading
    the GPUs twice a second (simulated hosts, told of new faults by their feed). Without
    it, the watch reads twice a second and wakes on the backend's `changes`."""

    def __init__(self, backend: GpuBackend, *,
                 wait_change: Callable[[float], Awaitable[bool]] | None = None,
                 policies: dict[str, Policy] | None = None) -> None:
        self.backend = backend
        self._wait_change = wait_change
        # Compiled policies by source; many hosts in one process share one (compiling the
        # default policy for each of thousands of simulated hosts was 5% of a ramp's CPU).
        self._policies: dict[str, Policy] = {} if policies is None else policies
        # The policy's latest verdict per GPU, for the agent's metrics.
        self.gpu_health: dict[int, HealthResult] = {}
        self._sample: list[agent_api.GpuSummary] = []
        self._sampled_at = float("-inf")
        self._processes: int | None = None

    def _policy(self, params: WatchHealthInput) -> Policy:
        key = params.policy.model_dump_json()
        if key not in self._policies:
            self._policies[key] = compile_policy(params.policy, origin="<pool health policy>")
        return self._policies[key]

    @activity.defn(name=agent_api.GPU_INVENTORY)
    async def gpu_inventory(self, node_id: str) -> Inventory:
        return self._inventory()

    def _inventory(self) -> Inventory:
        inventory = self.backend.inventory()
        if not inventory.hostname:
            inventory.hostname = socket.gethostname()
        return inventory

    @activity.defn(name=agent_api.RESET_GPU)
    async def reset_gpu(self, params: ResetGpuInput) -> ResetGpuResult:
        """Reset the GPUs a repair names, if nothing holds them (the backend refuses,
        touching nothing, otherwise). A driver that does not answer cannot reset: failed."""
        try:
            result = await with_heartbeats(asyncio.to_thread(self.backend.reset_gpus,
                                                             params.gpus))
        except BackendError as exc:
            return ResetGpuResult(outcome="failed", detail=str(exc))
        activity.logger.info("GPU reset on %s: %s (%s)", params.node_id, result.outcome,
                             result.detail)
        return result

    @activity.defn(name=agent_api.REBOOT_HOST)
    async def reboot_host(self, params: RebootHostInput) -> str:
        """Reboot this host from inside; the answer goes out before it goes down."""
        try:
            return await asyncio.to_thread(self.backend.reboot, params.delay_seconds)
        except OSError as exc:
            raise ApplicationError(f"cannot reboot: {exc}", type="RebootUnavailable",
                                   non_retryable=True) from None

    @activity.defn(name=agent_api.BOOT_CHECK)
    async def boot_check(self, params: BootCheckInput) -> BootCheckResult:
        checks: list[CheckResult] = []
        try:
            inventory = self._inventory()
        except BackendError as exc:
            checks.append(CheckResult(name="driver", status="fail", detail=str(exc)))
            return BootCheckResult(passed=False, checks=checks)
        checks.append(CheckResult(
            name="driver", status="pass",
            detail=f"driver {inventory.driver_version}, {len(inventory.gpus)} GPU(s)",
        ))
        count = len(inventory.gpus)
        if params.expected_gpu_count is None:
            checks.append(CheckResult(name="gpu_count", status="skipped",
                                      detail="instance type has no known GPU count"))
        else:
            ok = count == params.expected_gpu_count
            checks.append(CheckResult(
                name="gpu_count", status="pass" if ok else "fail",
                detail=f"found {count}, expected {params.expected_gpu_count}",
            ))
        if params.expected_gpu_model and inventory.gpus:
            family = params.expected_gpu_model.split("-")[0].upper()
            wrong = [g.name for g in inventory.gpus if family not in g.name.upper()]
            checks.append(CheckResult(
                name="gpu_model", status="fail" if wrong else "pass",
                detail=(f"expected {params.expected_gpu_model}, found {wrong[0]}" if wrong
                        else f"all {params.expected_gpu_model}"),
            ))
        if inventory.gpus:
            # Seconds of CUDA work in a child process: off the event loop, so heartbeats
            # and other activities go on.
            checks.append(await with_heartbeats(asyncio.to_thread(
                self.backend.memory_check, random.choice(inventory.gpus).index)))
        for unit in params.required_services:
            checks.append(self.backend.service_active(unit))
        return BootCheckResult(passed=all(c.status != "fail" for c in checks), checks=checks,
                               inventory=inventory)

    @activity.defn(name=agent_api.WATCH_HEALTH)
    async def watch_health(self, params: WatchHealthInput) -> WatchHealthResult:
        """Judge the node with the pool's policy; heartbeat a small summary; return only
        when the node's health differs from `last_health`.

        A one-shot event (an Xid line, an NVML event) wakes the watch when it is recorded,
        so it is judged and the watch completes at once; the GPUs' readings are read at
        least twice a second whatever the check interval. Unhealthy counts only once the
        policy has said so in `unhealthy_after` consecutive health checks, `check_interval`
        apart; any healthier poll resets the count. The other way, a healthier result counts
        only once it has held for `recover_after` checks in a row (a settle period), so a condition
        that comes and goes between two polls does not make the node flap.

        When the agent stops (SIGTERM: a restart, a package upgrade), the watch returns at
        its next poll with `handover` set and the verdict it was given, so the node goes on
        with a new watch that the agent's next process takes, instead of going unreachable."""
        policy = self._policy(params)
        seen, windows = _seen(params.occurrences), _windows(policy)
        interval = params.check_interval.total_seconds()
        poll = interval if self._wait_change else min(interval, MAX_POLL_SECONDS)
        streak = polls = calm = 0
        counted_at = calm_at = 0.0
        while True:
            seen_changes = self.backend.changes.count
            events = self.backend.current_events()
            verdict = policy.evaluate(events, seen)
            counted = _count(seen, verdict.events, windows)
            _report_skipped_rules(policy)
            polls += 1
            now = time.monotonic()
            if verdict.result is not HealthResult.UNHEALTHY:
                streak = 0
            elif streak == 0 or now - counted_at >= interval:
                streak, counted_at = streak + 1, now
            if not params.last_health.is_worse_than(verdict.result):
                calm = 0
            elif calm == 0 or now - calm_at >= interval:
                calm, calm_at = calm + 1, now
            health = verdict.result
            if health is HealthResult.UNHEALTHY and streak < params.unhealthy_after:
                health = params.last_health
            if params.last_health.is_worse_than(health) and calm < params.recover_after:
                health = params.last_health
            self._remember_gpu_health(verdict.events)
            notable = [v.event for v in verdict.events if v.result is not HealthResult.HEALTHY]
            summary = HealthSummary(
                node_id=params.node_id, health=health, gpus=self._safe_sample(),
                last_events=[_describe(e) for e in notable[-SUMMARY_EVENTS:]],
                unhealthy_streak=streak, checks=polls, processes=self._processes,
            )
            if health is not params.last_health or counted:
                remedy = policy.remedy(verdict) if health is HealthResult.UNHEALTHY else None
                return WatchHealthResult(health=health, rule=verdict.rule, events=notable,
                                         summary=summary, remedy=remedy,
                                         occurrences=_occurrences(seen, windows))
            if activity.is_worker_shutdown():  # hand the watch to the next agent process
                return WatchHealthResult(health=params.last_health, summary=summary,
                                         occurrences=_occurrences(seen, windows),
                                         handover=True)
            await _sleep_heartbeating(
                poll, summary,
                self._wait_change or functools.partial(self.backend.changes.wait,
                                                       since=seen_changes),
                until_shutdown=True)

    def _remember_gpu_health(self, verdicts: tuple[EventVerdict, ...]) -> None:
        worst: dict[int, HealthResult] = {}
        for v in verdicts:
            index = v.event.gpu_index
            if v.result.is_worse_than(worst.get(index, HealthResult.HEALTHY)):
                worst[index] = v.result
        self.gpu_health = worst

    def _safe_sample(self) -> list[agent_api.GpuSummary]:
        """Telemetry for the heartbeat summary. The SDK sends a heartbeat at most once per
        0.8 x timeout, so reading the GPUs on every half-second poll would be wasted work:
        a reading is reused for SAMPLE_SECONDS."""
        now = time.monotonic()
        if now - self._sampled_at >= SAMPLE_SECONDS:
            try:
                self._sample = self.backend.sample()
            except BackendError:
                self._sample = []
            try:
                self._processes = len(self.backend.compute_processes())
            except BackendError:
                self._processes = None
            self._sampled_at = now
        return self._sample

    @activity.defn(name=agent_api.WAIT_IDLE)
    async def wait_idle(self, params: WaitIdleInput) -> WaitIdleResult:
        """Return when no GPU compute processes remain, or when the grace period ends."""
        deadline = time.monotonic() + params.grace.total_seconds()
        while True:
            try:
                remaining = len(self.backend.compute_processes())
            except BackendError:
                remaining = 0  # a driver that does not answer runs no work we could wait for
            if remaining == 0:
                return WaitIdleResult(outcome="idle")
            if time.monotonic() >= deadline:
                return WaitIdleResult(outcome="grace_expired", remaining_processes=remaining)
            await _sleep_heartbeating(
                min(params.poll_interval.total_seconds(), max(0.0, deadline - time.monotonic())),
                {"remaining_processes": remaining},
            )

    @activity.defn(name=agent_api.RUN_DIAGNOSTIC)
    async def run_diagnostic(self, params: DiagnosticInput) -> DiagnosticResult:
        """Run one active diagnostic; a failure is also recorded as a `diagnostic` event, so
        the node's watch judges it with the pool's policy."""
        outcome = self.backend.simulated_diagnostic(params)
        if outcome is not None and outcome.metrics.get("run_seconds"):
            await _sleep_heartbeating(float(outcome.metrics["run_seconds"]),
                                      {"diagnostic": params.kind})
        if outcome is None:
            task = asyncio.ensure_future(asyncio.to_thread(self._diagnostic_job(params)))
            while not task.done():
                activity.heartbeat({"diagnostic": params.kind})
                await asyncio.wait({task}, timeout=DIAGNOSTIC_HEARTBEAT_SECONDS)
            outcome = task.result()
        if outcome.status == "fail":
            self.backend.record(HealthEvent(
                event_type=EventType.DIAGNOSTIC, gpu_index=-1,
                metrics={"passed": False, "kind": params.kind, **outcome.metrics},
                message=outcome.detail,
            ))
        return DiagnosticResult(kind=params.kind, status=outcome.status, detail=outcome.detail,
                                metrics=outcome.metrics)

    def _diagnostic_job(self, params: DiagnosticInput) -> Callable[[], diagnostics.Outcome]:
        if params.kind == "dcgm":
            return functools.partial(diagnostics.dcgm_diag, params.level)
        if params.kind == "gpu_burn":
            return functools.partial(diagnostics.gpu_burn, params.seconds,
                                     params.command or "gpu_burn")
        gpus = len(self.backend.inventory().gpus)
        return functools.partial(diagnostics.nccl_all_reduce, gpus, params.min_bus_gbps,
                                 params.command or "all_reduce_perf")

    def activities(self) -> list[Callable[..., object]]:
        return [self.gpu_inventory, self.boot_check, self.watch_health, self.wait_idle,
                self.run_diagnostic, self.reset_gpu, self.reboot_host]


async def _sleep_heartbeating(seconds: float, details: object,
                              wait: Callable[[float], Awaitable[bool]] | None = None, *,
                              until_shutdown: bool = False) -> None:
    """Sleep, heartbeating often enough for the activity's heartbeat timeout whatever the
    check interval (the SDK throttles what actually reaches the server). With `wait`, stop
    early when it says something changed; with `until_shutdown`, once the worker stops."""
    timeout = activity.info().heartbeat_timeout
    slice_ = timeout.total_seconds() / 3 if timeout else seconds
    end = time.monotonic() + seconds
    while True:
        activity.heartbeat(details)
        left = end - time.monotonic()
        if left <= 0 or (until_shutdown and activity.is_worker_shutdown()):
            return
        if wait is None:
            await asyncio.sleep(min(left, slice_))
        elif await wait(min(left, slice_)):
            return


def _seen(occurrences: list[agent_api.Occurrence]) -> dict[tuple[str, int], set[datetime]]:
    seen: dict[tuple[str, int], set[datetime]] = {}
    for o in occurrences:
        seen.setdefault((o.rule, o.gpu_index), set()).add(o.at)
    return seen


def _windows(policy: Policy) -> dict[str, timedelta]:
    return {c.rule.name: c.rule.repeats.window for c in policy.rules if c.rule.repeats}


def _count(seen: dict[tuple[str, int], set[datetime]],
           verdicts: tuple[EventVerdict, ...], windows: dict[str, timedelta]) -> bool:
    """Add the events `repeats` rules counted (those still inside the rule's window);
    whether any was new."""
    new = False
    now = datetime.now(UTC)
    for v in verdicts:
        for rule in v.counted:
            if v.event.timestamp <= now - windows[rule]:
                continue  # too old to count (a fault that never went away)
            times = seen.setdefault((rule, v.event.gpu_index), set())
            if v.event.timestamp not in times:
                times.add(v.event.timestamp)
                new = True
    return new


def _occurrences(seen: dict[tuple[str, int], set[datetime]],
                 windows: dict[str, timedelta]) -> list[agent_api.Occurrence]:
    """What the workflow keeps: the counts still inside their rule's window, newest last."""
    now = datetime.now(UTC)
    kept = [agent_api.Occurrence(rule=rule, gpu_index=gpu, at=at)
            for (rule, gpu), times in seen.items() if rule in windows
            for at in times if at > now - windows[rule]]
    kept.sort(key=lambda o: o.at)
    return kept[-agent_api.MAX_OCCURRENCES:]


def _describe(event: HealthEvent) -> str:
    gpu = f"gpu{event.gpu_index} " if event.gpu_index >= 0 else ""
    if event.event_type is EventType.XID and "xid_code" in event.metrics:
        return f"{gpu}xid {event.metrics['xid_code']}"
    metrics = ",".join(f"{k}={v}" for k, v in event.metrics.items())
    return f"{gpu}{event.event_type.value}" + (f" {metrics}" if metrics else "")


def _report_skipped_rules(policy: Policy) -> None:
    """Say once, in the agent's log, that a rule went over its time budget and is skipped."""
    for compiled in policy.rules:
        if compiled.over_budget and not compiled.reported:
            compiled.reported = True
            activity.logger.warning("health rule %r %s", compiled.rule.name,
                                    compiled.over_budget)
