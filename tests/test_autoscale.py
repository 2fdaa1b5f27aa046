"""The autoscalers as pure functions: the Go Navarch's semantics, table-driven, plus what
Navarch fixes (cooldown from the last scale, bounds always enforced, serving minimum)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from navarch.config.loader import load_config
from navarch.config.schema import AutoscalingConfig
from navarch.decisions.autoscale import PoolSnapshot, evaluate, needs, recommend, window_for
from navarch.validation import ValidationFailed

MONDAY_10 = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)  # a Monday


def snap(**kw: Any) -> PoolSnapshot:
    values: dict[str, Any] = {"current": 4, "serving": 4, "min_nodes": 1, "max_nodes": 10,
                              "now": MONDAY_10}
    values.update(kw)
    return PoolSnapshot(**values)


def cfg(**kw: Any) -> AutoscalingConfig:
    return AutoscalingConfig.model_validate(kw)


REACTIVE = cfg(type="reactive", scale_up_at=80, scale_down_at=20)


@pytest.mark.parametrize(("state", "target", "reason"), [
    ({"utilization": 90}, 5, "utilization 90.0% > 80%"),
    ({"utilization": 10}, 3, "utilization 10.0% < 20%"),
    ({"utilization": 50}, 4, "within 20-80%"),
    ({"utilization": 90, "current": 10, "serving": 10}, 10, "> 80% but at maximum 10"),
    ({"utilization": 10, "current": 1, "serving": 1}, 1, "< 20% but at minimum 1"),
    ({"utilization": None}, 4, "no utilization reported yet"),
    ({"utilization": 50, "min_nodes": 6}, 6, "4 serving < minimum 6"),
    # At the minimum with one node cordoned: one more, so min_nodes keep serving.
    ({"utilization": 50, "min_nodes": 4, "serving": 3}, 5, "3 serving < minimum 4 (1 not"),
])
def test_reactive(state, target, reason):
    decision = evaluate(REACTIVE, snap(**state))
    assert decision.target == target
    assert reason in decision.reason


@pytest.mark.parametrize(("depth", "target"), [(0, 1), (1, 1), (10, 1), (11, 2), (25, 3),
                                               (100, 10), (500, 10), (None, 4)])
def test_queue(depth, target):
    decision = evaluate(cfg(type="queue", jobs_per_node=10), snap(queue_depth=depth))
    assert decision.target == target


def test_queue_reason_and_default_jobs_per_node():
    decision = recommend(cfg(type="queue"), snap(queue_depth=25), MONDAY_10)
    assert (decision.target, decision.reason) == (3, "queue depth 25 needs 3 node(s) at "
                                                     "10 jobs/node")


SCHEDULED = cfg(type="scheduled", timezone="Europe/Berlin", schedule=[
    {"days": ["monday", "tuesday", "wednesday", "thursday", "friday"], "start": 9, "end": 18,
     "min_nodes": 6, "max_nodes": 10},
    {"start": 22, "end": 6, "min_nodes": 0, "max_nodes": 2},
], fallback={"type": "reactive"})


@pytest.mark.parametrize(("when", "state", "target", "reason"), [
    # 10:30 UTC is 11:30 in Berlin, Monday: the work-hours window raises the minimum.
    (MONDAY_10, {"utilization": 50}, 6,
     "window mon,tue,wed,thu,fri 09-18h: 6-10 nodes: 4 serving < minimum 6"),
    # Saturday 11:30 Berlin: no window, the fallback decides within the pool's bounds.
    (MONDAY_10 + timedelta(days=5), {"utilization": 50}, 4, "within 20-80%"),
    # 23:30 Berlin (22:30 UTC): the overnight window caps the pool at 2.
    (MONDAY_10 + timedelta(hours=12), {"utilization": 50}, 2, "above maximum 2"),
    # Inside the work-hours window the fallback still scales up.
    (MONDAY_10, {"utilization": 95, "current": 7, "serving": 7}, 8,
     "window mon,tue,wed,thu,fri 09-18h: 6-10 nodes: utilization 95.0% > 80%"),
])
def test_scheduled(when, state, target, reason):
    decision = evaluate(SCHEDULED, snap(now=when, **state))
    assert decision.target == target
    assert reason in decision.reason


def test_scheduled_without_fallback_holds_within_window():
    only = cfg(type="scheduled", schedule=[{"start": 0, "end": 24, "min_nodes": 2,
                                            "max_nodes": 3}])
    assert evaluate(only, snap(current=5, serving=5)).target == 3
    assert window_for(only, MONDAY_10) is not None


PREDICTIVE = cfg(type="predictive", lookback_window=3, growth_factor=1.5,
                 fallback={"type": "reactive"})


@pytest.mark.parametrize(("history", "util", "target", "reason"), [
    ([], None, 4, "0 of 3 samples; no utilization"),
    ([40, 50], 50, 4, "2 of 3 samples; utilization 50.0% within"),
    # trend +30 over 3 samples, x1.5 -> predicted 115%: 4 * 115 / 70 = 6.57 -> 6 nodes.
    ([40, 55, 70], 70, 6, "predicted utilization 115.0% (trend +30.0 over 3 samples)"),
    # flat: prediction 60% is under the high mark, the fallback decides.
    ([60, 60, 60], 60, 4, "predicted 60.0% ≤ 80%; utilization 60.0% within"),
    # falling: the fallback scales down.
    ([30, 20, 10], 10, 3, "utilization 10.0% < 20%"),
])
def test_predictive(history, util, target, reason):
    decision = evaluate(PREDICTIVE, snap(history=history, utilization=util))
    assert decision.target == target
    assert reason in decision.reason


@pytest.mark.parametrize(("mode", "target"), [("max", 5), ("min", 3), ("avg", 4)])
def test_composite(mode, target):
    both = cfg(type="composite", mode=mode, autoscalers=[
        {"type": "reactive"}, {"type": "queue", "jobs_per_node": 10}])
    # reactive: 90% -> 5; queue: 30 jobs -> 3; avg (5+3)//2 = 4
    decision = evaluate(both, snap(utilization=90, queue_depth=30))
    assert decision.target == target
    assert decision.reason.startswith(f"{mode} of [reactive: 5")


def test_cooldown_holds_the_autoscaler_but_not_the_bounds():
    recent = MONDAY_10 - timedelta(seconds=100)
    held = evaluate(REACTIVE, snap(utilization=95, last_scale_at=recent,
                                   cooldown=timedelta(minutes=5)))
    assert (held.target, held.reason) == (4, "cooldown (200s left)")
    over = evaluate(REACTIVE, snap(utilization=95, last_scale_at=recent,
                                   cooldown=timedelta(minutes=5), min_nodes=6))
    assert (over.target, over.reason) == (6, "below minimum 6")
    after = evaluate(REACTIVE, snap(utilization=95, last_scale_at=recent,
                                    cooldown=timedelta(seconds=60)))
    assert after.target == 5


def test_min_is_enforced_without_an_autoscaler_and_min_equals_max():
    assert evaluate(None, snap(current=0, serving=0, min_nodes=3)).target == 3
    assert evaluate(None, snap(current=5, serving=5, max_nodes=4)).target == 4
    fixed = snap(min_nodes=4, max_nodes=4, utilization=99)
    assert evaluate(REACTIVE, fixed).target == 4


def test_needs():
    assert needs(None) == set()
    assert needs(SCHEDULED) == {"utilization"}
    assert needs(cfg(type="composite", autoscalers=[{"type": "queue"},
                                                   {"type": "predictive"}])) == {
        "queue", "utilization"}


@pytest.mark.parametrize(("block", "message"), [
    ("{type: reactive, scale_up_at: 20, scale_down_at: 50}", "must be below scale_up_at"),
    ("{type: scheduled}", "needs at least one `schedule` window"),
    ("{type: composite}", "needs a non-empty `autoscalers` list"),
    ("{type: queue, jobs_per_node: 0}", "jobs_per_node"),
    ("{type: predictive, lookback_window: 1}", "lookback_window"),
    ("{type: reactive, timezone: Mars/Base}", "unknown time zone 'Mars/Base'"),
    ("{type: scheduled, schedule: [{start: 9, end: 9, min_nodes: 1, max_nodes: 2}]}",
     "the window is empty"),
    ("{type: scheduled, schedule: [{days: [mondy], start: 9, end: 17, min_nodes: 1, "
     "max_nodes: 2}]}", "did you mean 'monday'"),
    ("{type: queue, metrics: {queue: {source: http}}}", "needs `url`"),
    ("{type: reactive, metrics: {utilization: {source: prometheus, url: 'http://p:9090'}}}",
     "needs `url` and `query`"),
])
def test_invalid_parameters_rejected_at_load(tmp_path, block, message):
    path = tmp_path / "navarch.yaml"
    path.write_text(f"""
providers:
  sim: {{type: fake}}
pools:
  p:
    provider: sim
    instance_type: h100-8x
    max_nodes: 4
    autoscaling: {block}
""")
    with pytest.raises(ValidationFailed) as err:
        load_config(path)
    text = str(err.value)
    assert "pools.p.autoscaling" in text and message in text
