"""A node's decisions: who holds its cordon, what a health result or a command does to it.

Each function takes the node's status (and the time, and the command or health result) and
returns a `Decision`: the status as it should be after, the transitions to record, the
notifications to send, whether to ask the pool for a repair, whether the node leaves, and
the answer for whoever asked. `NodeWorkflow` only carries a decision out. The rules:

- A cordon has owners (`Hold`s). A node is schedulable only when no owner holds it.
- An operator's hold is lifted only by an operator's uncordon: not by a recovery, a passing
  diagnostic, or a pool update. A node an operator holds is never repaired automatically:
  an unhealthy verdict on it is recorded and alerted on, and the repair waits until the
  operator releases the hold (or drains or terminates the node).
- An unhealthy verdict sticks: later checks that say the hardware is fine change the node's
  `health` (what the hardware says now), never its `verdict`, until the machine is repaired
  or an operator clears the verdict. An uncordon under a verdict is refused with its rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from navarch.contracts.node import (
    ClearInput,
    CordonInput,
    CordonSource,
    Hold,
    NodeState,
    NodeStatus,
    TransitionReason,
    UncordonInput,
)
from navarch.contracts.spec import PoolSpec
from navarch.health.events import HealthResult


@dataclass(frozen=True)
class Step:
    """One transition to record (the same state again records an event in the node's story)."""

    state: NodeState
    reason: TransitionReason
    detail: str = ""
    report: bool = True  # tell the pool (a repair request reports on its own)


@dataclass
class Decision:
    status: NodeStatus
    steps: list[Step] = field(default_factory=list)
    notify: list[tuple[str, str]] = field(default_factory=list)  # (event, reason)
    request_repair: str | None = None  # ask the pool to approve a repair, with this detail
    answer: str = ""
    fault_started: bool = False  # a new fault episode began (the cordon metric starts here)


def resting_state(st: NodeStatus) -> NodeState:
    """Where a node in service sits: cordoned while anyone holds it, else by its health
    (degraded, too, while flap damping holds it there)."""
    if st.holds:
        return NodeState.CORDONED
    if st.health is HealthResult.DEGRADED or st.held_degraded_until is not None:
        return NodeState.DEGRADED
    return NodeState.READY


def _who(by: str) -> str:
    return f" (by {by})" if by else ""


def said(reason: str, by: str) -> str:
    """An operator's words for the record: `RMA hold (by ana)`, or `by ana` alone."""
    if not reason:
        return f"by {by}" if by else ""
    return reason + _who(by)


def _then(detail: str, more: str) -> str:
    return f"{detail}; {more}" if detail else more


def _held(st: NodeStatus, owner: CordonSource, reason: str, by: str, now: datetime) -> None:
    st.holds = [h for h in st.holds if h.owner is not owner]
    st.holds.append(Hold(owner=owner, reason=reason, by=by, at=now))
    st.cordoned = True


def _release(st: NodeStatus, *owners: CordonSource) -> None:
    st.holds = [h for h in st.holds if h.owner not in owners]
    st.cordoned = bool(st.holds)


def _others(st: NodeStatus) -> str:
    return ", ".join(h.owner.value for h in st.holds)


def uncordon_refusal(st: NodeStatus, params: UncordonInput) -> str | None:
    """Why an uncordon cannot be done at all (the update refuses it before history)."""
    if (st.verdict is HealthResult.UNHEALTHY and st.holds
            and params.source is CordonSource.OPERATOR
            and st.held_by(CordonSource.OPERATOR) is None):
        return "node is unhealthy" + (f" (rule {st.verdict_rule})" if st.verdict_rule else "")
    return None


def clear_refusal(st: NodeStatus) -> str | None:
    """Why a verdict cannot be cleared now."""
    if st.verdict is not HealthResult.UNHEALTHY:
        return "the node has no unhealthy verdict to clear"
    if st.health is HealthResult.UNHEALTHY:
        return ("the hardware still reports unhealthy"
                + (f" (rule {st.health_rule})" if st.health_rule else "")
                + "; clear it once the fault is gone, or drain or terminate the node")
    return None


def cordon(status: NodeStatus, params: CordonInput, now: datetime) -> Decision:
    st = status.model_copy(deep=True)
    d = Decision(st)
    if st.state.is_leaving():
        d.answer = f"not cordoned: node is {st.state.value}"
        return d
    if st.held_by(params.source) is not None:
        d.answer = f"already cordoned ({params.source.value})"
        return d
    before = list(st.holds)
    _held(st, params.source, params.reason, params.by, now)
    detail = said(params.reason, params.by)
    if before:
        # Held already (a verdict, a diagnostics run): the new owner's hold is recorded too.
        detail = _then(detail, "also held by " + ", ".join(h.owner.value for h in before))
    else:
        d.notify.append(("cordon", params.reason or params.source.value))
    d.steps.append(Step(NodeState.CORDONED, TransitionReason.OPERATOR, detail))
    d.answer = "cordoned" + (f"; also held by {', '.join(h.owner.value for h in before)}"
                             if before else "")
    return d


def uncordon(status: NodeStatus, params: UncordonInput, now: datetime) -> Decision:
    st = status.model_copy(deep=True)
    d = Decision(st)
    if not st.holds:
        d.answer = "not cordoned; nothing to do"
        return d
    refusal = uncordon_refusal(st, params)
    if refusal:
        d.answer = f"refused: {refusal}"
        return d
    if params.source is CordonSource.DIAGNOSTICS:
        if st.held_by(CordonSource.DIAGNOSTICS) is None:
            d.answer = "no diagnostics hold; nothing to do"
            return d
        _release(st, CordonSource.DIAGNOSTICS)
    else:
        had_operator = st.held_by(CordonSource.OPERATOR) is not None
        _release(st, CordonSource.OPERATOR, CordonSource.DIAGNOSTICS)
        if (had_operator and st.verdict is HealthResult.UNHEALTHY
                and not st.awaiting_repair):
            # The operator lets the repair that waited on their hold go on.
            st.awaiting_repair = True
            d.request_repair = (f"released by the operator{_who(params.by)}: "
                                f"rule {st.verdict_rule}")
    detail = said(params.reason, params.by)
    if st.holds:
        d.steps.append(Step(NodeState.CORDONED, TransitionReason.OPERATOR,
                            _then(detail, f"still held by {_others(st)}"),
                            report=d.request_repair is None))
        d.answer = f"hold lifted; still held by {_others(st)}"
        return d
    d.steps.append(Step(resting_state(st), TransitionReason.OPERATOR, detail))
    d.notify.append(("uncordon", params.reason or params.source.value))
    d.answer = "uncordoned"
    return d


def clear(status: NodeStatus, params: ClearInput, now: datetime) -> Decision:
    st = status.model_copy(deep=True)
    d = Decision(st)
    refusal = clear_refusal(st)
    if refusal:
        d.answer = f"refused: {refusal}"
        return d
    rule = st.verdict_rule
    st.verdict, st.verdict_rule, st.verdict_at = HealthResult.HEALTHY, None, None
    st.awaiting_repair = False
    _release(st, CordonSource.UNHEALTHY)
    detail = f"rule {rule} cleared" + (f": {params.reason}" if params.reason else "") + _who(
        params.by)
    if st.holds:
        detail += f"; still held by {_others(st)}"
    else:
        d.notify.append(("uncordon", f"verdict cleared: {params.reason or 'operator'}"))
    d.steps.append(Step(resting_state(st), TransitionReason.VERDICT_CLEARED, detail))
    d.answer = "verdict cleared" + (f"; still held by {_others(st)}" if st.holds else "")
    return d


@dataclass(frozen=True)
class Damping:
    """A pool's flap rule: more than `limit` turns to degraded within `window` and the node
    stays degraded until it has been quiet for a whole window. limit 0: no damping."""

    limit: int = 0
    window: timedelta = timedelta(0)


def apply_health(status: NodeStatus, health: HealthResult, rule: str | None,
                 now: datetime, *, repairs_allowed: bool = True,
                 damping: Damping = Damping()) -> Decision:
    """A health check's result (what the hardware says now) on the node's record."""
    st = status.model_copy(deep=True)
    d = Decision(st)
    was = st.health
    st.health, st.health_rule = health, rule
    if damping.limit and health is HealthResult.DEGRADED and was is HealthResult.HEALTHY:
        recent = [t for t in st.degraded_at if t > now - damping.window][-damping.limit:]
        st.degraded_at = [*recent, now]
    detail = f"rule {rule}" if rule else ""
    if health is HealthResult.UNHEALTHY:
        new_verdict = st.verdict is not HealthResult.UNHEALTHY
        if new_verdict:
            st.verdict, st.verdict_rule, st.verdict_at = health, rule, now
            d.fault_started = True
        was_held = bool(st.holds)
        _held(st, CordonSource.UNHEALTHY, detail, "", now)
        operator = st.held_by(CordonSource.OPERATOR)
        if not was_held:
            d.notify.append(("cordon", f"unhealthy: {detail}"))
        if operator is not None:
            # A person holds the node: the verdict is recorded and alerted on; the repair
            # waits for them (release the hold, or drain or terminate the node).
            d.steps.append(Step(NodeState.CORDONED, TransitionReason.UNHEALTHY,
                                f"{detail}; held by the operator, repair waits for them"))
            if new_verdict:
                d.notify.append(("cordon", f"unhealthy while held by an operator: {detail}"))
            return d
        d.steps.append(Step(NodeState.CORDONED, TransitionReason.UNHEALTHY, detail,
                            report=not was_held))
        if repairs_allowed and not st.awaiting_repair:
            st.awaiting_repair = True
            d.request_repair = detail
        return d
    reason = (TransitionReason.DEGRADED if health is HealthResult.DEGRADED
              else TransitionReason.HEALTHY)
    if st.verdict is HealthResult.UNHEALTHY:
        # The hardware looks fine now (an event expired, the agent restarted): the verdict
        # stands, and the node stays held, until a repair or an operator's clear.
        d.steps.append(Step(st.state, reason,
                            _then(detail, f"verdict unhealthy (rule {st.verdict_rule}) stands")))
        return d
    if health is HealthResult.DEGRADED:
        st.held_degraded_until = None  # degraded anyway; damping starts again when it passes
    elif damping.limit and len([t for t in st.degraded_at
                                if t > now - damping.window]) > damping.limit:
        st.held_degraded_until = max(st.degraded_at) + damping.window
        d.steps.append(Step(resting_state(st), reason, _then(detail, (
            f"held degraded: turned degraded {len(st.degraded_at)} times within "
            f"{damping.window}; until quiet at {st.held_degraded_until:%Y-%m-%d %H:%M:%S}"))))
        return d
    d.steps.append(Step(resting_state(st), reason, detail))
    return d


def quiet(status: NodeStatus, now: datetime) -> Decision:
    """The flap window passed without the node turning degraded: it is healthy again."""
    st = status.model_copy(deep=True)
    d = Decision(st)
    until = st.held_degraded_until
    if until is None or now < until or st.health is not HealthResult.HEALTHY:
        return d
    st.held_degraded_until, st.degraded_at = None, []
    d.steps.append(Step(resting_state(st), TransitionReason.HEALTHY,
                        "quiet for the whole flap window; no longer held degraded"))
    return d


def repaired(status: NodeStatus, detail: str) -> Decision:
    """An in-place repair (a reset or reboot) passed its validation: the verdict is lifted
    with the hold it set, and the node is back in service unless someone else holds it
    (an operator's hold stays: only they lift it)."""
    st = status.model_copy(deep=True)
    d = Decision(st)
    st.verdict, st.verdict_rule, st.verdict_at = HealthResult.HEALTHY, None, None
    st.health, st.health_rule = HealthResult.HEALTHY, None
    st.awaiting_repair = False
    _release(st, CordonSource.UNHEALTHY)
    if st.holds:
        detail = _then(detail, f"still held by {_others(st)}")
    else:
        d.notify.append(("uncordon", f"repaired: {detail}"))
    d.steps.append(Step(resting_state(st), TransitionReason.REPAIRED, detail))
    d.answer = "repaired"
    return d


def scheduler_hold(status: NodeStatus, foreign: str, now: datetime) -> Decision:
    """What the workload scheduler says about a drain Navarch did not set (`foreign`: who
    and why; "" when there is none). It holds the node (so the pool sees it out of
    service and an operator sees why) until the scheduler itself returns it; Navarch never
    lifts it, and never repairs the node for it."""
    st = status.model_copy(deep=True)
    d = Decision(st)
    held = st.held_by(CordonSource.SCHEDULER)
    if st.state.is_leaving() or (held is not None and foreign and held.reason == foreign):
        return d
    if foreign:
        _held(st, CordonSource.SCHEDULER, foreign, "", now)
        d.steps.append(Step(resting_state(st), TransitionReason.SCHEDULER,
                            f"held by the workload scheduler: {foreign}"))
    elif held is not None:
        _release(st, CordonSource.SCHEDULER)
        d.steps.append(Step(resting_state(st), TransitionReason.SCHEDULER,
                            "the workload scheduler returned the node"
                            + (f"; still held by {_others(st)}" if st.holds else "")))
    return d


# The parts of a pool's spec, by what a person calls them: those a running node takes up,
# and those only a new machine can (a running machine keeps its type and place).
_RUNNING_FIELDS: dict[str, tuple[str, ...]] = {
    "health policy": ("health_policy",), "health settings": ("health",),
    "health check interval": ("health_check_interval",),
    "heartbeat timeout": ("heartbeat_timeout",), "notifier": ("notifier",),
    "diagnostics": ("diagnostics",), "labels": ("labels",),
}
_NEW_NODE_FIELDS: dict[str, tuple[str, ...]] = {
    "instance type": ("instance_type",), "providers": ("providers",),
    "setup commands": ("setup_commands", "file_uploads"), "boot checks": (
        "required_services", "shape_check", "boot_deadline"),
    "installation id": ("cluster_id",),
}


def spec_changes(old: PoolSpec, new: PoolSpec) -> tuple[list[str], list[str]]:
    """What changed between two specs of a pool: (what running nodes adopt, what applies to
    new nodes only)."""
    def changed(groups: dict[str, tuple[str, ...]]) -> list[str]:
        return [name for name, fields in groups.items()
                if any(getattr(old, f) != getattr(new, f) for f in fields)]
    return changed(_RUNNING_FIELDS), changed(_NEW_NODE_FIELDS)


BOOT_PHASES = frozenset({NodeState.PROVISIONING, NodeState.BOOTING, NodeState.BOOT_CHECKING})


def tells_pool(state: NodeState, *, quiet_boot: bool, new_refusals: bool) -> bool:
    """Whether a node's change of state is reported to its pool as it happens. The pool
    started the node as provisioning and acts on its serving states and faults, not on
    each boot phase as it goes by (each report costs the node a workflow task and the pool
    a signal): a boot phase is told only when it brings capacity refusals the pool should
    steer other nodes away from. (The node also tells a boot phase that outlasts a look at
    its agent.) `quiet_boot` False: a run from before that rule, which reported every
    change."""
    return not quiet_boot or state not in BOOT_PHASES or new_refusals
