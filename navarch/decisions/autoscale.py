"""Autoscalers: pure functions from a pool's state to a target node count and a reason.

The five kinds and their parameters are the Go Navarch's (`reactive`, `queue`, `scheduled`,
`predictive`, `composite`), with its semantics where it had them right. What differs:

- `reactive` keeps at least `min_nodes` *serving* (ready, degraded or still coming up):
  nodes that are cordoned, draining or unreachable are not counted as capacity there, so a
  pool at its minimum with a cordoned node gets a replacement.
- The cooldown is applied once, here, from the pool's last scale event (the Go version never
  set that clock), and it only holds back the autoscaler's own moves: the pool's bounds
  (`min_nodes`/`max_nodes`, or a schedule window's) are enforced at every evaluation, with or
  without an autoscaler.
- A schedule window may wrap midnight (start 22, end 6).
- Missing metrics (no utilization reported yet, no queue depth) keep the size as it is.

`evaluate` is what PoolWorkflow calls; it is deterministic (no clock, no I/O).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from navarch.config.schema import WEEKDAYS, AutoscalingConfig, ScheduleWindow

DEFAULT_SCALE_UP_AT = 80.0
DEFAULT_SCALE_DOWN_AT = 20.0
DEFAULT_JOBS_PER_NODE = 10
DEFAULT_LOOKBACK_WINDOW = 10
DEFAULT_GROWTH_FACTOR = 1.2
# Predictive: size the pool so the predicted load sits this far below the high mark (the Go
# version's 80 % trigger and 70 % target).
PREDICTIVE_HEADROOM = 10.0


class PoolSnapshot(BaseModel):
    """What an autoscaler sees at one evaluation."""

    model_config = ConfigDict(extra="forbid")

    current: int = Field(ge=0)  # live nodes the pool keeps (not leaving)
    serving: int = Field(ge=0)  # of those: ready, degraded, or still coming up
    min_nodes: int = Field(ge=0)
    max_nodes: int = Field(ge=0)
    utilization: float | None = None  # mean GPU utilization now, percent
    history: list[float] = Field(default_factory=list)  # oldest first, `utilization` last
    queue_depth: int | None = None  # jobs queued or running
    pending_jobs: int | None = None  # jobs waiting for a node
    now: datetime  # aware
    last_scale_at: datetime | None = None
    cooldown: timedelta = timedelta(0)

    @property
    def not_serving(self) -> int:
        return max(0, self.current - self.serving)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: int
    reason: str


def needs(config: AutoscalingConfig | None) -> set[str]:
    """The metrics an autoscaler reads: "utilization", "queue"."""
    if config is None:
        return set()
    if config.type in ("reactive", "predictive"):
        out = {"utilization"}
    elif config.type == "queue":
        out = {"queue"}
    else:
        out = set()
    for child in [config.fallback, *config.autoscalers]:
        out |= needs(child)
    return out


def window_for(config: AutoscalingConfig | None, local: datetime) -> ScheduleWindow | None:
    """The first schedule window (of a scheduled autoscaler, however nested) that holds at
    this local time."""
    if config is None:
        return None
    if config.type == "scheduled":
        day, hour = WEEKDAYS[local.weekday()], local.hour
        for window in config.schedule:
            if window.days and day not in window.days:
                continue
            inside = (window.start <= hour < window.end if window.start < window.end
                      else hour >= window.start or hour < window.end)
            if inside:
                return window
    for child in [config.fallback, *config.autoscalers]:
        found = window_for(child, local)
        if found is not None:
            return found
    return None


def local_time(config: AutoscalingConfig | None, now: datetime) -> datetime:
    tz = config.timezone if config is not None and config.timezone else "UTC"
    return now.astimezone(ZoneInfo(tz))


def evaluate(config: AutoscalingConfig | None, snap: PoolSnapshot) -> Decision:
    """The pool's target: the autoscaler's recommendation (held back during the cooldown),
    clamped to the bounds in force (a schedule window's, else the pool's)."""
    local = local_time(config, snap.now)
    window = window_for(config, local)
    lo, hi = (window.min_nodes, window.max_nodes) if window else (snap.min_nodes, snap.max_nodes)
    bounded = snap.model_copy(update={"min_nodes": lo, "max_nodes": hi})
    if config is None:
        wanted = Decision(target=snap.current, reason="no autoscaler")
    elif (snap.last_scale_at is not None and snap.cooldown
          and snap.now - snap.last_scale_at < snap.cooldown):
        left = snap.cooldown - (snap.now - snap.last_scale_at)
        wanted = Decision(target=snap.current, reason=f"cooldown ({_secs(left)} left)")
    else:
        wanted = recommend(config, bounded, local)
    target = max(lo, min(hi, wanted.target))
    reason = wanted.reason
    if target > wanted.target:
        reason = f"below minimum {lo}" + (f" ({_window_text(window)})" if window else "")
    elif target < wanted.target:
        reason = f"above maximum {hi}" + (f" ({_window_text(window)})" if window else "")
    return Decision(target=target, reason=reason)


def recommend(config: AutoscalingConfig, snap: PoolSnapshot, local: datetime) -> Decision:
    """One autoscaler's wish, before bounds and cooldown."""
    if config.type == "reactive":
        return _reactive(config, snap)
    if config.type == "queue":
        return _queue(config, snap)
    if config.type == "scheduled":
        window = window_for(config, local)
        if window is not None:
            snap = snap.model_copy(update={"min_nodes": window.min_nodes,
                                           "max_nodes": window.max_nodes})
        if config.fallback is None:
            return Decision(target=max(snap.min_nodes, min(snap.max_nodes, snap.current)),
                            reason=(f"schedule {_window_text(window)}" if window
                                    else "outside every schedule window"))
        inner = recommend(config.fallback, snap, local)
        return Decision(target=inner.target, reason=(
            f"{_window_text(window)}: {inner.reason}" if window else inner.reason))
    if config.type == "predictive":
        return _predictive(config, snap, local)
    return _composite(config, snap, local)


def _reactive(config: AutoscalingConfig, snap: PoolSnapshot) -> Decision:
    up = config.scale_up_at if config.scale_up_at is not None else DEFAULT_SCALE_UP_AT
    down = config.scale_down_at if config.scale_down_at is not None else DEFAULT_SCALE_DOWN_AT
    missing = snap.not_serving
    if snap.serving < snap.min_nodes:
        return Decision(target=snap.min_nodes + missing,
                        reason=f"{snap.serving} serving < minimum {snap.min_nodes}"
                               + (f" ({missing} not serving)" if missing else ""))
    if snap.utilization is None:
        return Decision(target=snap.current, reason="no utilization reported yet")
    util = snap.utilization
    if util > up:
        if snap.current >= snap.max_nodes:
            return Decision(target=snap.current, reason=f"utilization {util:.1f}% > {up:g}% "
                                                        f"but at maximum {snap.max_nodes}")
        return Decision(target=snap.current + 1, reason=f"utilization {util:.1f}% > {up:g}%")
    if util < down:
        if snap.current <= snap.min_nodes:
            return Decision(target=snap.current, reason=f"utilization {util:.1f}% < {down:g}% "
                                                        f"but at minimum {snap.min_nodes}")
        return Decision(target=snap.current - 1, reason=f"utilization {util:.1f}% < {down:g}%")
    return Decision(target=snap.current, reason=f"utilization {util:.1f}% within "
                                                f"{down:g}-{up:g}%")


def _queue(config: AutoscalingConfig, snap: PoolSnapshot) -> Decision:
    per_node = config.jobs_per_node or DEFAULT_JOBS_PER_NODE
    if snap.queue_depth is None:
        return Decision(target=snap.current, reason="no queue depth reported yet")
    needed = math.ceil(snap.queue_depth / per_node)
    return Decision(target=needed,
                    reason=f"queue depth {snap.queue_depth} needs {needed} node(s) at "
                           f"{per_node} jobs/node")


def _predictive(config: AutoscalingConfig, snap: PoolSnapshot, local: datetime) -> Decision:
    lookback = config.lookback_window or DEFAULT_LOOKBACK_WINDOW
    growth = config.growth_factor if config.growth_factor is not None else DEFAULT_GROWTH_FACTOR
    high = config.scale_up_at if config.scale_up_at is not None else DEFAULT_SCALE_UP_AT

    def fallback(why: str) -> Decision:
        if config.fallback is None:
            return Decision(target=snap.current, reason=why)
        inner = recommend(config.fallback, snap, local)
        return Decision(target=inner.target, reason=f"{why}; {inner.reason}")

    if snap.utilization is None or len(snap.history) < lookback:
        return fallback(f"{len(snap.history)} of {lookback} samples")
    recent = snap.history[-lookback:]
    trend = recent[-1] - recent[0]
    predicted = snap.utilization + trend * growth
    if predicted > high and snap.current < snap.max_nodes:
        needed = max(snap.current + 1,
                     int(max(snap.current, 1) * predicted / (high - PREDICTIVE_HEADROOM)))
        return Decision(target=needed,
                        reason=f"predicted utilization {predicted:.1f}% (trend {trend:+.1f} "
                               f"over {lookback} samples)")
    return fallback(f"predicted {predicted:.1f}% ≤ {high:g}%")


def _composite(config: AutoscalingConfig, snap: PoolSnapshot, local: datetime) -> Decision:
    parts = [recommend(child, snap, local) for child in config.autoscalers]
    targets = [p.target for p in parts]
    mode = config.mode or "max"
    if mode == "max":
        target = max(targets)
    elif mode == "min":
        target = min(targets)
    else:
        target = sum(targets) // len(targets)  # the Go version's integer mean
    chosen = " | ".join(f"{child.type}: {p.target} ({p.reason})"
                        for child, p in zip(config.autoscalers, parts, strict=True))
    return Decision(target=target, reason=f"{mode} of [{chosen}]")


def _window_text(window: ScheduleWindow | None) -> str:
    if window is None:
        return ""
    days = ",".join(d[:3] for d in window.days) or "daily"
    return (f"window {days} {window.start:02d}-{window.end:02d}h: "
            f"{window.min_nodes}-{window.max_nodes} nodes")


def _secs(delta: timedelta) -> str:
    return f"{max(0, math.ceil(delta.total_seconds()))}s"
