"""The node's and the pool's decisions as tables: who holds a cordon, what sticks, what a
command or a health result does, which node a shrinking pool retires. Pure functions, so
each row runs in microseconds; the dev-server tests keep only the wiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from navarch.contracts.node import (
    ClearInput,
    CordonInput,
    CordonSource,
    Hold,
    NodeState,
    NodeStatus,
    RepairAttempt,
    TransitionReason,
    UncordonInput,
)
from navarch.contracts.pool import PoolNode
from navarch.contracts.spec import PoolSpec
from navarch.contracts.sweep import Orphan
from navarch.decisions import node as decide
from navarch.decisions import pool as pool_rules
from navarch.decisions import repair as repair_rules
from navarch.decisions import sweep as sweep_rules
from navarch.health.events import HealthEvent, HealthResult
from navarch.health.policy import builtin_policy
from navarch.health.remedy import Attempts, Remedy, catalog_rung

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OP, SICK, DIAG = CordonSource.OPERATOR, CordonSource.UNHEALTHY, CordonSource.DIAGNOSTICS
H, D, U = HealthResult.HEALTHY, HealthResult.DEGRADED, HealthResult.UNHEALTHY
RULE = "xid-needs-reset-or-reboot"


def node(state: NodeState = NodeState.READY, *, holds: tuple[CordonSource, ...] = (),
         health: HealthResult = H, verdict: HealthResult = H,
         awaiting_repair: bool = False) -> NodeStatus:
    return NodeStatus(
        node_id="n1", pool="p", state=state, health=health, verdict=verdict,
        health_rule=RULE if health is U else None,
        verdict_rule=RULE if verdict is U else None,
        holds=[Hold(owner=o, at=NOW - timedelta(minutes=5)) for o in holds],
        cordoned=bool(holds), awaiting_repair=awaiting_repair)


CORDONED = NodeState.CORDONED

# (name, node before, command, answer, state after, owners after, steps recorded)
COMMANDS = [
    ("cordon a ready node", node(), CordonInput(reason="RMA", by="ana"),
     "cordoned", CORDONED, [OP], [(CORDONED, "operator", "RMA (by ana)")]),
    ("operator cordon on an unhealthy node adds the hold and records it",
     node(CORDONED, holds=(SICK,), health=U, verdict=U), CordonInput(reason="RMA hold"),
     "cordoned; also held by unhealthy", CORDONED, [SICK, OP],
     [(CORDONED, "operator", "RMA hold; also held by unhealthy")]),
    ("who without why", node(), CordonInput(by="ana"), "cordoned", CORDONED, [OP],
     [(CORDONED, "operator", "by ana")]),
    ("a second operator cordon is a no-op", node(CORDONED, holds=(OP,)), CordonInput(),
     "already cordoned (operator)", CORDONED, [OP], []),
    ("cordon while draining", node(NodeState.DRAINING), CordonInput(),
     "not cordoned: node is draining", NodeState.DRAINING, [], []),
    ("uncordon returns a held, healthy node", node(CORDONED, holds=(OP,)), UncordonInput(),
     "uncordoned", NodeState.READY, [], [(NodeState.READY, "operator", "")]),
    ("uncordon returns a degraded node to degraded", node(CORDONED, holds=(OP,), health=D),
     UncordonInput(), "uncordoned", NodeState.DEGRADED, [], [(NodeState.DEGRADED, "operator",
                                                               "")]),
    ("uncordon under a verdict alone is refused with the rule",
     node(CORDONED, holds=(SICK,), health=H, verdict=U), UncordonInput(),
     f"refused: node is unhealthy (rule {RULE})", CORDONED, [SICK], []),
    ("the operator releases their hold: the verdict's hold stays, the repair goes on",
     node(CORDONED, holds=(OP, SICK), health=U, verdict=U), UncordonInput(reason="go"),
     "hold lifted; still held by unhealthy", CORDONED, [SICK],
     [(CORDONED, "operator", "go; still held by unhealthy")]),
    ("a passing diagnostic lifts only its own hold",
     node(CORDONED, holds=(OP, DIAG)), UncordonInput(source=DIAG),
     "hold lifted; still held by operator", CORDONED, [OP],
     [(CORDONED, "operator", "still held by operator")]),
    ("a passing diagnostic on a node only it held returns it",
     node(CORDONED, holds=(DIAG,)), UncordonInput(source=DIAG), "uncordoned",
     NodeState.READY, [], [(NodeState.READY, "operator", "")]),
    ("a diagnostic's uncordon without its hold does nothing",
     node(CORDONED, holds=(OP,)), UncordonInput(source=DIAG),
     "no diagnostics hold; nothing to do", CORDONED, [OP], []),
    ("uncordon of a node nobody holds", node(), UncordonInput(),
     "not cordoned; nothing to do", NodeState.READY, [], []),
    ("clear a verdict once the hardware is fine: back in service",
     node(CORDONED, holds=(SICK,), health=H, verdict=U), ClearInput(reason="reseated"),
     "verdict cleared", NodeState.READY, [],
     [(NodeState.READY, "verdict_cleared", f"rule {RULE} cleared: reseated")]),
    ("clear with the operator still holding: stays cordoned",
     node(CORDONED, holds=(SICK, OP), health=H, verdict=U), ClearInput(by="ana"),
     "verdict cleared; still held by operator", CORDONED, [OP],
     [(CORDONED, "verdict_cleared", f"rule {RULE} cleared (by ana); still held by operator")]),
    ("clear while the hardware still reports the fault is refused",
     node(CORDONED, holds=(SICK,), health=U, verdict=U), ClearInput(),
     f"refused: the hardware still reports unhealthy (rule {RULE}); clear it once the fault "
     "is gone, or drain or terminate the node", CORDONED, [SICK], []),
    ("clear without a verdict", node(), ClearInput(),
     "refused: the node has no unhealthy verdict to clear", NodeState.READY, [], []),
]


@pytest.mark.parametrize(("before", "command", "answer", "state", "owners", "steps"),
                         [row[1:] for row in COMMANDS], ids=[row[0] for row in COMMANDS])
def test_commands(before, command, answer, state, owners, steps):
    if isinstance(command, CordonInput):
        decision = decide.cordon(before, command, NOW)
    elif isinstance(command, UncordonInput):
        decision = decide.uncordon(before, command, NOW)
    else:
        decision = decide.clear(before, command, NOW)
    after = decision.status
    assert decision.answer == answer
    assert [(s.state, s.reason.value, s.detail) for s in decision.steps] == steps
    assert after.owners() == owners and after.cordoned == bool(owners)
    assert (decision.steps[-1].state if decision.steps else before.state) == state
    assert before.owners() == [h.owner for h in before.holds]  # the input is left alone


def test_an_operator_release_of_an_unhealthy_node_asks_for_the_repair_it_held_back():
    before = node(CORDONED, holds=(OP, SICK), health=H, verdict=U)
    decision = decide.uncordon(before, UncordonInput(by="ana"), NOW)
    assert decision.request_repair == f"released by the operator (by ana): rule {RULE}"
    assert decision.status.awaiting_repair
    assert decision.steps[0].report is False  # the repair request reports it
    assert decide.uncordon(node(CORDONED, holds=(OP, SICK), verdict=U, awaiting_repair=True),
                           UncordonInput(), NOW).request_repair is None


def test_cleared_verdict_takes_the_pending_repair_with_it():
    decision = decide.clear(node(CORDONED, holds=(SICK,), verdict=U, awaiting_repair=True),
                            ClearInput(), NOW)
    assert not decision.status.awaiting_repair
    assert decision.notify == [("uncordon", "verdict cleared: operator")]


# (name, node before, health now, state after, owners after, verdict after, repair asked,
#  transition recorded)
HEALTH = [
    ("a fatal fault cordons and asks for repair", node(), U,
     CORDONED, [SICK], U, True, (CORDONED, "unhealthy", f"rule {RULE}")),
    ("a fault on an operator-held node: recorded, repair waits for the operator",
     node(CORDONED, holds=(OP,)), U, CORDONED, [OP, SICK], U, False,
     (CORDONED, "unhealthy", f"rule {RULE}; held by the operator, repair waits for them")),
    ("a fault under diagnostics: the verdict holds it too, the repair goes on",
     node(CORDONED, holds=(DIAG,)), U, CORDONED, [DIAG, SICK], U, True,
     (CORDONED, "unhealthy", f"rule {RULE}")),
    ("the fault passes: health is healthy, the verdict stands",
     node(CORDONED, holds=(SICK,), health=U, verdict=U, awaiting_repair=True), H,
     CORDONED, [SICK], U, False,
     (CORDONED, "healthy", f"verdict unhealthy (rule {RULE}) stands")),
    ("an agent restart forgets the event: the same",
     node(CORDONED, holds=(OP, SICK), health=U, verdict=U), H, CORDONED, [OP, SICK], U, False,
     (CORDONED, "healthy", f"verdict unhealthy (rule {RULE}) stands")),
    ("degraded is recorded, never held", node(), D, NodeState.DEGRADED, [], H, False,
     (NodeState.DEGRADED, "degraded", f"rule {RULE}")),
    ("degraded clears to ready", node(NodeState.DEGRADED, health=D), H, NodeState.READY, [],
     H, False, (NodeState.READY, "healthy", "")),
    ("degraded while an operator holds: stays cordoned", node(CORDONED, holds=(OP,)), D,
     CORDONED, [OP], H, False, (CORDONED, "degraded", f"rule {RULE}")),
]


@pytest.mark.parametrize(("before", "health", "state", "owners", "verdict", "repair", "step"),
                         [row[1:] for row in HEALTH], ids=[row[0] for row in HEALTH])
def test_health_results(before, health, state, owners, verdict, repair, step):
    decision = decide.apply_health(before, health, RULE if health is not H else None, NOW)
    after = decision.status
    assert after.owners() == owners
    assert after.verdict is verdict and after.health is health
    assert (decision.request_repair is not None) is repair
    last = decision.steps[-1]
    assert (last.state, last.reason.value, last.detail) == step
    assert last.state is state


def test_a_new_fault_episode_starts_once_and_notifies_the_cordon_once():
    first = decide.apply_health(node(), U, RULE, NOW)
    assert first.fault_started and first.notify == [("cordon", f"unhealthy: rule {RULE}")]
    again = decide.apply_health(first.status, U, RULE, NOW + timedelta(minutes=1))
    assert not again.fault_started and again.notify == []
    assert again.request_repair is None  # already asked
    held = decide.apply_health(node(CORDONED, holds=(OP,)), U, RULE, NOW)
    assert held.notify == [("cordon", f"unhealthy while held by an operator: rule {RULE}")]


def test_a_node_that_flaps_stays_degraded_until_quiet():
    """Limit 2 within an hour: the third turn to degraded within the hour holds the node
    degraded when its checks pass, until an hour after that turn."""
    damping = decide.Damping(limit=2, window=timedelta(hours=1))
    st, t = node(), NOW

    def health(result: HealthResult, minutes: int) -> decide.Decision:
        nonlocal st
        d = decide.apply_health(st, result, RULE if result is D else None,
                                t + timedelta(minutes=minutes), damping=damping)
        st = d.status
        return d

    for minute in (0, 10):  # two flaps: back to ready each time
        assert health(D, minute).steps[-1].state is NodeState.DEGRADED
        assert health(H, minute + 1).steps[-1].state is NodeState.READY
    health(D, 20)  # the third within the hour
    held = health(H, 21)
    assert held.steps[-1].state is NodeState.DEGRADED
    assert held.steps[-1].detail == ("held degraded: turned degraded 3 times within 1:00:00; "
                                     "until quiet at 2026-12-01 13:20:00")
    assert st.health is H and st.held_degraded_until == t + timedelta(minutes=80)
    assert decide.quiet(st, t + timedelta(minutes=79)).steps == []  # not yet
    over = decide.quiet(st, t + timedelta(minutes=80))
    assert [(s.state, s.detail) for s in over.steps] == [
        (NodeState.READY, "quiet for the whole flap window; no longer held degraded")]
    assert over.status.held_degraded_until is None and over.status.degraded_at == []


def test_flaps_outside_the_window_do_not_count_and_no_damping_means_none():
    damping = decide.Damping(limit=2, window=timedelta(minutes=30))
    st = node()
    for minute in (0, 40, 80):  # each 40 minutes apart: never more than one in the window
        st = decide.apply_health(st, D, RULE, NOW + timedelta(minutes=minute),
                                 damping=damping).status
        ready = decide.apply_health(st, H, None, NOW + timedelta(minutes=minute + 1),
                                    damping=damping)
        assert ready.steps[-1].state is NodeState.READY
        st = ready.status
    st = node()
    for minute in range(10):
        st = decide.apply_health(st, D, RULE, NOW + timedelta(minutes=minute)).status
        st = decide.apply_health(st, H, None, NOW + timedelta(minutes=minute)).status
        assert st.held_degraded_until is None and st.degraded_at == []


def test_resting_state():
    assert decide.resting_state(node(health=D)) is NodeState.DEGRADED
    assert decide.resting_state(node(holds=(DIAG,))) is CORDONED
    assert decide.resting_state(node()) is NodeState.READY


def test_spec_changes_say_what_reaches_running_nodes_and_what_only_new_ones():
    spec = PoolSpec.model_validate({"name": "p", "instance_type": "h100-8x", "max_nodes": 4,
                                    "providers": [
        {"name": "sim", "type": "fake", "instance_type": "h100-8x"}]})
    assert decide.spec_changes(spec, spec) == ([], [])
    changed = spec.model_copy(update={"heartbeat_timeout": timedelta(minutes=3),
                                      "labels": {"team": "ml"}, "instance_type": "a100-8x",
                                      "min_nodes": 3})
    assert decide.spec_changes(spec, changed) == (["heartbeat timeout", "labels"],
                                                  ["instance type"])


# ----------------------------------------------------------------------------- the pool


def pool_node(name: str, state: NodeState = NodeState.READY, *, age: int = 0,
              holds: tuple[CordonSource, ...] = (), retiring: bool = False) -> PoolNode:
    return PoolNode(node_id=name, state=state, since=NOW, created_at=NOW - timedelta(hours=age),
                    holds=list(holds), cordon_source=holds[0] if holds else None,
                    retiring=retiring)


REMOVALS = [
    ("cordoned first, then booting, idle, degraded, busy (newest first within each)",
     [pool_node("busy-old", age=9), pool_node("busy-new", age=1),
      pool_node("degraded", NodeState.DEGRADED), pool_node("idle", age=5),
      pool_node("booting", NodeState.BOOTING), pool_node("sick", CORDONED, holds=(SICK,)),
      pool_node("gone", NodeState.UNREACHABLE)],
     {"idle"}, 7, ["sick", "gone", "booting", "idle", "degraded", "busy-new", "busy-old"]),
    ("never a node an operator holds", [pool_node("held", CORDONED, holds=(OP,)),
                                        pool_node("a")], set(), 2, ["a"]),
    ("never a node under diagnostics", [pool_node("checked", CORDONED, holds=(DIAG,)),
                                        pool_node("a")], set(), 2, ["a"]),
    ("never one already retiring or gone", [pool_node("r", retiring=True),
                                            pool_node("t", NodeState.TERMINATED),
                                            pool_node("a")], set(), 3, ["a"]),
    ("asked for none", [pool_node("a")], set(), 0, []),
]


@pytest.mark.parametrize(("nodes", "idle", "count", "expected"),
                         [row[1:] for row in REMOVALS], ids=[row[0] for row in REMOVALS])
def test_removal_order(nodes, idle, count, expected):
    assert [n.node_id for n in pool_rules.removal_order(nodes, idle, count)] == expected


def test_held_nodes_sit_outside_the_count_and_diagnostics_still_serve():
    nodes = [pool_node("held", CORDONED, holds=(OP,)), pool_node("checked", CORDONED,
                                                                  holds=(DIAG,)),
             pool_node("sick", CORDONED, holds=(SICK,)), pool_node("a"),
             pool_node("draining", NodeState.DRAINING), pool_node("r", retiring=True)]
    assert [n.node_id for n in nodes if pool_rules.in_count(n)] == [
        "checked", "sick", "a", "draining"]
    assert pool_rules.not_serving(nodes) == 2  # sick and draining


@pytest.mark.parametrize(("requests", "size", "share", "kept", "closes"), [
    ({"a": 0}, 10, 0.2, {"a"}, False),  # 1 of 10, 2 allowed
    ({"a": 0, "b": 1, "c": 2}, 10, 0.2, {"a", "b", "c"}, True),
    ({"a": 0, "b": 1}, 1, 0.2, {"a", "b"}, True),  # at least one is always allowed
    ({"old": 120, "a": 0, "b": 1}, 10, 0.2, {"a", "b"}, False),  # outside the window
])
def test_repair_valve(requests, size, share, kept, closes):
    stamped = {k: NOW - timedelta(minutes=m) for k, m in requests.items()}
    recent, too_many = pool_rules.valve_closes(stamped, NOW, timedelta(hours=1), size, share)
    assert set(recent) == kept and too_many is closes


@pytest.mark.parametrize(("streak", "seconds"), [(0, 10), (1, 10), (2, 20), (4, 80),
                                                  (10, 600)])
def test_provision_backoff(streak, seconds):
    assert pool_rules.provision_backoff(streak) == timedelta(seconds=seconds)


def test_the_reasons_a_step_records_are_the_contract_s():
    assert {r.value for r in TransitionReason} >= {"verdict_cleared", "spec_adopted"}


# ------------------------------------------------------------------ orphan sweep

GRACE = timedelta(minutes=10)


def orphan(created_min_ago: float | None, instance_id: str = "i-1") -> Orphan:
    created = NOW - timedelta(minutes=created_min_ago) if created_min_ago is not None else None
    return Orphan(provider="aws", region="us-west-2", instance_id=instance_id,
                  created_at=created, why="no workflow")


@pytest.mark.parametrize(("created_min_ago", "seen_min_ago", "mode", "outcome"), [
    (30, None, "terminate", "terminate"),  # old at the cloud, first seen now: its age counts
    (5, None, "terminate", "waiting"),  # younger than the grace: a launch on its way
    (None, None, "terminate", "waiting"),  # the cloud gives no launch time: from first sight
    (None, 9, "terminate", "waiting"),
    (None, 10, "terminate", "terminate"),
    (-60, 11, "terminate", "terminate"),  # a creation time in the future: from first sight
    (30, None, "report", "report"),
    (5, None, "report", "waiting"),
])
def test_an_orphan_is_acted_on_only_past_the_grace(created_min_ago, seen_min_ago, mode,
                                                   outcome):
    o = orphan(created_min_ago)
    seen = {o.key(): NOW - timedelta(minutes=seen_min_ago)} if seen_min_ago is not None else {}
    plan = sweep_rules.plan_orphans([o], seen, set(), NOW, GRACE, mode)
    got = {"terminate": plan.terminate, "report": plan.report, "waiting": plan.waiting}
    assert [x.instance_id for x in got[outcome]] == ["i-1"]
    assert sum(len(v) for v in got.values()) == 1
    assert plan.first_seen[o.key()] == seen.get(o.key(), NOW)


def test_a_reported_orphan_is_reported_once_and_a_vanished_one_is_forgotten():
    kept, vanished = orphan(30, "i-kept"), orphan(30, "i-gone")
    seen = {kept.key(): NOW - GRACE, vanished.key(): NOW - GRACE}
    plan = sweep_rules.plan_orphans([kept], seen, {kept.key()}, NOW, GRACE, "report")
    assert plan.report == [] and [o.instance_id for o in plan.waiting] == ["i-kept"]
    assert set(plan.first_seen) == {kept.key()}


# ------------------------------------------------------------------ a scheduler's own drain

SCHED = CordonSource.SCHEDULER


@pytest.mark.parametrize(("before", "foreign", "state", "owners", "detail"), [
    (node(), "bad fan (set by root in slurm)", CORDONED, [SCHED],
     "held by the workload scheduler: bad fan (set by root in slurm)"),
    (node(CORDONED, holds=(SCHED,)), "", NodeState.READY, [],
     "the workload scheduler returned the node"),
    (node(CORDONED, holds=(OP, SCHED)), "", CORDONED, [OP],
     "the workload scheduler returned the node; still held by operator"),
    (node(), "", None, [], None),  # nothing foreign, nothing held: nothing to do
    (node(NodeState.DRAINING), "admin drain", None, [], None),  # leaving: not held anew
])
def test_a_drain_navarch_did_not_set_holds_the_node_until_the_scheduler_returns_it(
        before, foreign, state, owners, detail):
    d = decide.scheduler_hold(before, foreign, NOW)
    assert d.status.owners() == owners
    assert [(s.state, s.detail) for s in d.steps] == ([] if detail is None else [
        (state, detail)])
    assert d.request_repair is None and not d.notify  # never repaired, nothing sent back


def test_a_node_a_schedulers_administrator_holds_is_outside_the_pools_count():
    held = PoolNode(node_id="n1", state=CORDONED, reason=TransitionReason.SCHEDULER,
                    since=NOW, created_at=NOW, holds=[SCHED])
    assert not pool_rules.in_count(held)


# ----------------------------------------------------------------------------- repair ladder

LADDER = ["reset", "reboot", "replace"]
WINDOW = timedelta(hours=24)


def tries(*rows: tuple[str, str, str, int]) -> list[RepairAttempt]:
    """(rung, fault, outcome, minutes ago) per attempt."""
    return [RepairAttempt(at=NOW - timedelta(minutes=ago), rung=rung, fault=fault,
                          outcome=outcome) for rung, fault, outcome, ago in rows]


# (name, remedy, allowed rungs, attempts so far, a rung that just failed, chosen rung)
RUNG_TABLE = [
    ("a reset-class fault resets", Remedy(rung="reset", fault="xid 119"), LADDER, [], None,
     "reset"),
    ("a reboot-class fault reboots", Remedy(rung="reboot", fault="xid 151"), LADDER, [], None,
     "reboot"),
    ("a hardware fault is replaced at once", Remedy(rung="replace", fault="xid 79"), LADDER,
     [], None, "replace"),
    ("a Go config (replace only) replaces", Remedy(rung="reset", fault="xid 119"),
     ["replace"], [], None, "replace"),
    ("a rung the pool does not allow is passed over", Remedy(rung="reset", fault="xid 119"),
     ["reboot", "replace"], [], None, "reboot"),
    ("a failed reset moves up", Remedy(rung="reset", fault="xid 119"), LADDER,
     tries(("reset", "xid 119", "failed", 1)), "reset", "reboot"),
    ("a reboot whose agent never came back replaces", Remedy(rung="reboot", fault="xid 151"),
     LADDER, tries(("reboot", "xid 151", "no_return", 1)), "reboot", "replace"),
    ("the same fault after a reset: reboot", Remedy(rung="reset", fault="xid 119"), LADDER,
     tries(("reset", "xid 119", "returned", 30)), None, "reboot"),
    ("the same fault after one reboot: reboot again",
     Remedy(rung="reboot", fault="xid 151"), LADDER,
     tries(("reboot", "xid 151", "returned", 30)), None, "reboot"),
    ("the same fault after two reboots: replace", Remedy(rung="reboot", fault="xid 151"),
     LADDER, tries(("reboot", "xid 151", "returned", 90), ("reboot", "xid 151", "returned",
                                                            30)), None, "replace"),
    ("a rule's own limit: one reboot", Remedy(rung="reboot", fault="xid 151",
                                                attempts=Attempts(reboot=1)),
     LADDER, tries(("reboot", "xid 151", "returned", 30)), None, "replace"),
    ("another fault class starts at its own rung", Remedy(rung="reset", fault="xid 62"),
     LADDER, tries(("reset", "xid 119", "returned", 30)), None, "reset"),
    ("attempts outside the window are forgotten", Remedy(rung="reboot", fault="xid 151"),
     LADDER, tries(("reboot", "xid 151", "returned", 25 * 60),
                   ("reboot", "xid 151", "returned", 26 * 60)), None, "reboot"),
    ("a try an operator stopped does not count", Remedy(rung="reset", fault="xid 119"),
     LADDER, tries(("reset", "xid 119", "stopped", 5)), None, "reset"),
    ("no rung left without replace: held for an operator",
     Remedy(rung="reboot", fault="xid 151"), ["reset", "reboot"],
     tries(("reboot", "xid 151", "returned", 90), ("reboot", "xid 151", "returned", 30)),
     None, None),
]


@pytest.mark.parametrize(("remedy", "allowed", "attempts", "above", "rung"),
                         [row[1:] for row in RUNG_TABLE], ids=[row[0] for row in RUNG_TABLE])
def test_the_ladder_picks_the_cheapest_rung_left(remedy, allowed, attempts, above, rung):
    choice = repair_rules.next_rung(remedy, allowed, attempts, NOW, WINDOW, above=above)
    assert choice.rung == rung
    assert remedy.fault in choice.why
    if rung is None:
        assert "held for an operator" in choice.why


def test_an_operators_hold_stops_the_ladder_and_a_verdicts_does_not():
    assert repair_rules.ladder_stopped(node(CORDONED, holds=(SICK,), verdict=U)) is None
    assert "operator" in (repair_rules.ladder_stopped(
        node(CORDONED, holds=(SICK, OP), verdict=U)) or "")
    assert "scheduler" in (repair_rules.ladder_stopped(
        node(CORDONED, holds=(SICK, CordonSource.SCHEDULER), verdict=U)) or "")


@pytest.mark.parametrize(("before", "owners", "state", "notified"), [
    (node(NodeState.REPAIRING, holds=(SICK,), health=U, verdict=U), [], NodeState.READY, True),
    (node(NodeState.REPAIRING, holds=(SICK, OP), health=U, verdict=U), [OP], CORDONED, False),
])
def test_a_repaired_node_loses_its_verdict_but_never_an_operators_hold(before, owners, state,
                                                                      notified):
    d = decide.repaired(before, "reset fixed xid 119")
    assert (d.status.verdict, d.status.owners(), d.status.awaiting_repair) == (H, owners, False)
    assert d.steps[-1].state is state and d.steps[-1].reason is TransitionReason.REPAIRED
    assert bool(d.notify) is notified


# (an Xid code, its message) → the catalog's first rung
@pytest.mark.parametrize(("code", "message", "rung"), [
    (119, "", "reset"),  # GSP RPC timeout: RESET_GPU
    (48, "", "reset"),  # a DBE: reset to remap the row
    (74, "", "reset"),  # NVLink: the workflow starts with a reset
    (145, "", "reset"),  # NVLink5
    (151, "", "reboot"),  # RESTART_VM
    (79, "", "replace"),  # fallen off the bus: hardware, whatever the catalog's first step
    (64, "", "replace"),  # row remap failed
    (140, "", "replace"),  # ECC escaped remapping
    (54, "", "replace"),  # CHECK_MECHANICALS
    (154, "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)",
     "reboot"),
    (154, "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)", "reset"),
    (999_999, "", "replace"),  # unknown code: the safe answer
])
def test_the_catalog_names_each_xids_first_rung(code, message, rung):
    assert catalog_rung(code, message) == rung


def test_the_default_policy_gives_each_verdict_its_remedy():
    policy = builtin_policy("default")

    def remedy(**event: object) -> Remedy | None:
        return policy.remedy(policy.evaluate([HealthEvent.model_validate(event)]))

    xid = remedy(event_type="xid", gpu_index=2, metrics={"xid_code": 119})
    assert xid is not None and (xid.rung, xid.fault, xid.gpus) == ("reset", "xid 119", [2])
    lost = remedy(event_type="driver_error", gpu_index=-1, message="GPU is lost")
    assert lost is not None and (lost.rung, lost.fault, lost.gpus) == ("reboot", "gpu-lost", [])
    sxid = remedy(event_type="sxid", metrics={"sxid_code": 12028, "fatal": True})
    assert sxid is not None and (sxid.rung, sxid.fault) == ("reboot", "sxid 12028")
    assert remedy(event_type="ecc_dbe", gpu_index=0).rung == "replace"  # type: ignore[union-attr]
    assert remedy(event_type="xid", metrics={"xid_code": 13}) is None  # degraded: no repair
