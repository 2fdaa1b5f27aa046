"""What the orphan sweep does with what it found: pure functions of the findings, what the
sweep remembers, the time and the config."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from navarch.contracts.sweep import Orphan, SweepMode


@dataclass
class OrphanPlan:
    terminate: list[Orphan] = field(default_factory=list)  # past the grace, mode terminate
    report: list[Orphan] = field(default_factory=list)  # past the grace, mode report: newly
    waiting: list[Orphan] = field(default_factory=list)  # within the grace (or reported)
    first_seen: dict[str, datetime] = field(default_factory=dict)  # for what is still there


def age_from(orphan: Orphan, first_seen: datetime) -> datetime:
    """A machine's age counts from its creation when the cloud says, else from when the
    sweep first saw it (Lambda's API gives no launch time). Never from a creation time in
    the sweep's future (a skewed clock): then from first sight."""
    created = orphan.created_at
    return created if created is not None and created <= first_seen else first_seen


def plan_orphans(orphans: list[Orphan], seen: dict[str, datetime], reported: set[str],
                 now: datetime, grace: timedelta, mode: SweepMode) -> OrphanPlan:
    """Which orphans to act on now. An orphan younger than the grace waits (a launch still
    on its way to being recorded is never touched); one past it is terminated, or in
    `report` mode recorded once. What is no longer found is forgotten."""
    plan = OrphanPlan()
    for orphan in orphans:
        first = seen.get(orphan.key(), now)
        plan.first_seen[orphan.key()] = first
        orphan = orphan.model_copy(update={"first_seen": first})
        due = now - age_from(orphan, first) >= grace
        if due and mode == "terminate":
            plan.terminate.append(orphan)
        elif due and mode == "report" and orphan.key() not in reported:
            plan.report.append(orphan)
        else:
            plan.waiting.append(orphan)
    return plan
