"""The repair ladder's decisions: which rung fixes an unhealthy node, and when it moves up.

    reset → reboot → replace

- The first rung is the verdict's remedy (the policy rule's `remedy`, else the Xid
  catalog's action, else replace), moved up past the rungs the pool does not allow
  (`health.remediation`).
- Escalation: a rung already tried `attempts` times for the same fault class on this node
  within the pool's `remediation_window` is passed over (one reset, two reboots by default).
- A rung that failed in this repair (a reset refused or failed, a reboot whose agent never
  came back, checks that did not pass afterwards) moves the ladder strictly above it.
- No rung left (the pool allows none above): the node stays held, with its verdict, for an
  operator. An operator's hold stops the ladder wherever it is.

`NodeWorkflow` carries these out; each is table-tested in `tests/test_decisions.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from navarch.contracts.node import CordonSource, NodeStatus, RepairAttempt
from navarch.health.remedy import RUNGS, Remedy, Rung


@dataclass(frozen=True)
class RungChoice:
    rung: Rung | None  # None: no rung left; the node waits for an operator
    why: str  # for the node's story: why this rung, and which ones were passed over


def tried(attempts: Sequence[RepairAttempt], rung: Rung, fault: str, now: datetime,
          window: timedelta) -> int:
    """How often `rung` was tried for `fault` within the window (a stopped try not counted)."""
    return sum(1 for a in attempts if a.rung == rung and a.fault == fault
               and a.outcome != "stopped" and a.at > now - window)


def next_rung(remedy: Remedy, allowed: Sequence[Rung], attempts: Sequence[RepairAttempt],
              now: datetime, window: timedelta, *, above: Rung | None = None) -> RungChoice:
    """The cheapest rung that may fix `remedy`'s fault now (`above`: a rung that just
    failed in this repair; only rungs above it are left)."""
    start = RUNGS.index(remedy.rung)
    if above is not None:
        start = max(start, RUNGS.index(above) + 1)
    passed: list[str] = []
    for rung in RUNGS[start:]:
        if rung not in allowed:
            passed.append(f"{rung} not allowed by the pool")
            continue
        if rung != "replace":
            count, limit = tried(attempts, rung, remedy.fault, now, window), \
                remedy.attempts.of(rung)
            if count >= limit:
                passed.append(f"{count} {rung}(s) for {remedy.fault} within {window}")
                continue
        why = f"{rung} for {remedy.fault}" + (f" after the {above} failed" if above else "")
        return RungChoice(rung, why + (f" ({'; '.join(passed)})" if passed else ""))
    left = "; ".join(passed) or f"nothing above {above}"
    return RungChoice(None, f"no repair rung left for {remedy.fault} ({left}): held for an "
                            "operator")


def ladder_stopped(status: NodeStatus) -> str | None:
    """Why the ladder must not go on now (None: it may): a person holds the node."""
    hold = status.held_by(CordonSource.OPERATOR) or status.held_by(CordonSource.SCHEDULER)
    if hold is None:
        return None
    who = "an operator" if hold.owner is CordonSource.OPERATOR else "the workload scheduler"
    return f"held by {who}" + (f" ({hold.reason})" if hold.reason else "")
