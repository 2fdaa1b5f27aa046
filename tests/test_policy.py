"""Health policies: Go-format files, Go semantics, Navarch's catalog-grounded default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from navarch.health import xid
from navarch.health.events import EventType, HealthEvent, HealthResult
from navarch.health.policy import builtin_policy, load_policy
from navarch.validation import ValidationFailed

H, D, U = HealthResult.HEALTHY, HealthResult.DEGRADED, HealthResult.UNHEALTHY


def ev(event_type: str, message: str = "", system: str = "", **metrics) -> HealthEvent:
    return HealthEvent(event_type=EventType(event_type), system=system, metrics=metrics,
                       message=message, gpu_index=0)


# What the Go Navarch's default policy decided, event by event.
GO_DEFAULT_CASES = [
    (ev("xid", xid_code=79), U, "fatal-xid"),
    (ev("xid", xid_code=48), U, "fatal-xid"),
    (ev("xid", xid_code=13), U, "fatal-xid"),
    (ev("xid", xid_code=31), U, "fatal-xid"),
    (ev("xid", xid_code=8), D, "recoverable-xid"),
    (ev("xid", xid_code=154), D, "recoverable-xid"),
    (ev("ecc_dbe", ecc_dbe_count=1), U, "ecc-dbe"),
    (ev("memory", system="DCGM_HEALTH_WATCH_MEM", ecc_dbe_count=2), U, "ecc-dbe"),
    (ev("memory", system="DCGM_HEALTH_WATCH_MEM", ecc_dbe_count=0), H, "default"),
    (ev("ecc_sbe", ecc_sbe_count=101), D, "ecc-sbe-high"),
    (ev("ecc_sbe", ecc_sbe_count=100), H, "default"),
    (ev("thermal", temperature=95), U, "thermal-critical"),
    (ev("thermal", temperature=96.5), U, "thermal-critical"),
    (ev("thermal", temperature=85), D, "thermal-warning"),
    (ev("thermal", temperature=84), H, "default"),
    (ev("thermal"), H, "default"),
    (ev("nvlink"), D, "nvlink-error"),
    (ev("pcie", system="DCGM_HEALTH_WATCH_PCIE"), D, "pcie-error"),
    (ev("power"), D, "power-warning"),
    (ev("driver_error", system="DCGM_HEALTH_WATCH_POWER"), D, "power-warning"),
]


@pytest.mark.parametrize(("event", "result", "rule"), GO_DEFAULT_CASES)
def test_go_default_policy_gives_the_go_results(event, result, rule):
    verdict = builtin_policy("go-default").evaluate_event(event)
    assert (verdict.result, verdict.rule) == (result, rule)


def test_go_policy_file_loads_from_disk_unchanged(tmp_path):
    text = (
        "version: v1\nmetadata:\n  name: mine\n  description: x\nrules:\n"
        "  - name: fatal-xid\n    description: d\n    condition: |\n"
        "      event.event_type == \"xid\" && event.metrics.xid_code in [\n"
        "        48,   // Double Bit ECC Error\n        79    // fallen off the bus\n      ]\n"
        "    result: unhealthy\n"
        "  - name: gpu0-strict\n    condition: event.gpu_index == 0 && event.event_type == \"xid\"\n"
        "    result: degraded\n"
        "  - name: default\n    condition: \"true\"\n    result: healthy\n"
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    policy = load_policy(path)
    assert policy.name == "mine"
    assert policy.evaluate_event(ev("xid", xid_code=79)).result is U
    assert policy.evaluate_event(ev("xid", xid_code=13)).rule == "gpu0-strict"


def test_node_result_is_worst_over_events_and_first_match_wins():
    policy = builtin_policy("go-default")
    verdict = policy.evaluate([ev("thermal", temperature=86), ev("xid", xid_code=79), ev("nvlink")])
    assert verdict.result is U and verdict.rule == "fatal-xid"
    assert [v.rule for v in verdict.events] == ["thermal-warning", "fatal-xid", "nvlink-error"]
    assert policy.evaluate([]).result is H


def test_rule_that_errors_is_skipped_and_counted_not_raised(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: needs-metric, condition: 'event.metrics.temperature > 90', result: unhealthy}\n"
        "  - {name: not-bool, condition: 'event.gpu_index', result: unhealthy}\n"
        "  - {name: type-clash, condition: 'event.gpu_index + \"x\" == \"y\"', result: unhealthy}\n"
        "  - {name: xid, condition: 'event.event_type == \"xid\"', result: degraded}\n"
    )
    policy = load_policy(path)
    verdict = policy.evaluate_event(ev("xid", xid_code=1))
    assert (verdict.result, verdict.rule) == (D, "xid")
    assert [rule for rule, _ in verdict.errors] == ["needs-metric", "not-bool", "type-clash"]
    assert "no 'temperature'" in verdict.errors[0][1]
    assert policy.evaluation_errors == 3
    # No rule matches: healthy, with the errors still reported.
    nothing = policy.evaluate_event(ev("thermal"))
    assert nothing.result is H and nothing.rule is None


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("  - {name: r, condition: 'event.event_type == ', result: healthy}\n",
         "rules[0].condition: rule 'r': CEL syntax error at line 1, column"),
        ("  - {name: r, condition: 'evnt.event_type == \"xid\"', result: healthy}\n",
         "rule 'r': unknown variable 'evnt' in the condition; conditions see only `event`; "
         "did you mean 'event'?"),
        ("  - {name: r, condition: 'event.gpu_idx == 1', result: healthy}\n",
         "rule 'r': event has no field 'gpu_idx'; did you mean 'gpu_index'?"),
        ("  - {name: r, condition: 'true', result: broken}\n",
         "rules[0].result: expected one of 'healthy', 'degraded' or 'unhealthy'"),
        ("  - {name: r, condition: 'true', result: healthy}\n"
         "  - {name: r, condition: 'false', result: healthy}\n",
         "rules[1].name: duplicate rule name 'r'"),
        ("  - {name: r, result: healthy}\n", "rules[0].condition: this key is required"),
        ("  - {name: r, condition: 'true', result: healthy, priority: 3}\n",
         "rules[0].priority: unknown key 'priority'"),
    ],
)
def test_bad_rules_are_named_with_position(tmp_path, rules, message):
    path = tmp_path / "p.yaml"
    path.write_text("version: v1\nrules:\n" + rules)
    with pytest.raises(ValidationFailed) as info:
        load_policy(path)
    text = "\n".join(str(p) for p in info.value.problems)
    assert message in text
    assert str(path) in text


def test_multiline_condition_error_reports_line_inside_condition(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "rules:\n  - name: multi\n    condition: |\n      event.event_type == \"xid\" &&\n"
        "      event.metrics.xid_code in [1, 2\n    result: unhealthy\n"
    )
    with pytest.raises(ValidationFailed) as info:
        load_policy(path)
    assert "CEL syntax error at line 3" in str(info.value)
    assert info.value.problems[0].line == 3


def test_wrong_version_and_empty_rules_are_rejected(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("version: v2\nrules: []\n")
    with pytest.raises(ValidationFailed) as info:
        load_policy(path)
    text = str(info.value)
    assert "version: expected one of 'v1'" in text
    assert "rules: must not be empty" in text


# ---- Navarch's own default, grounded in the Xid catalog

def test_default_policy_unhealthy_xids_are_exactly_the_catalog_reset_or_reboot_codes():
    policy = builtin_policy("default")
    unhealthy = [c for c in xid.catalog()
                 if policy.evaluate_event(ev("xid", xid_code=c)).result is U]
    assert unhealthy == xid.unhealthy_codes()
    assert 79 in unhealthy and 48 in unhealthy and 95 in unhealthy


@pytest.mark.parametrize("code", [13, 31, 43, 45, 63, 94, 92])
def test_default_policy_application_level_xids_only_degrade(code):
    verdict = builtin_policy("default").evaluate_event(ev("xid", xid_code=code))
    assert verdict.result is D


def test_every_catalog_code_is_judged_without_errors():
    policy = builtin_policy("default")
    for code in xid.catalog():
        verdict = policy.evaluate_event(ev("xid", xid_code=code))
        assert verdict.result in (D, U)
        assert verdict.errors == (), (code, verdict.errors)


@pytest.mark.parametrize(
    ("message", "result"),
    [
        ("GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)", U),
        ("GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)", U),
        ("GPU recovery action changed from 0x0 (None) to 0x3 (Drain and Reset)", U),
        ("GPU recovery action changed from 0x1 (GPU Reset Required) to 0x0 (None)", D),
        ("GPU recovery action changed from 0x0 (None) to 0x4 (Drain P2P)", D),
    ],
)
def test_default_policy_xid_154_follows_the_recovery_action(message, result):
    verdict = builtin_policy("default").evaluate_event(ev("xid", message=message, xid_code=154))
    assert verdict.result is result


@pytest.mark.parametrize(
    ("event", "result"),
    [
        (ev("sxid", sxid_code=20034, fatal=True), U),
        (ev("sxid", sxid_code=12028, fatal=False), D),
        (ev("driver_error", message="GPU is lost"), U),
        (ev("memory", row_remap_failure=True), U),
        (ev("memory", row_remap_pending=True), D),
        (ev("diagnostic", passed=False, level=2), U),
        (ev("diagnostic", passed=True), H),
        (ev("thermal", temperature=90), D),
        (ev("power", system="DCGM_HEALTH_WATCH_POWER"), D),
        (ev("xid"), D),  # an xid event with no code: the code rules error, xid-other decides
    ],
)
def test_default_policy_other_events(event, result):
    assert builtin_policy("default").evaluate_event(event).result is result


T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def xid_at(code: int, minutes: float, gpu: int = 0) -> HealthEvent:
    return HealthEvent(event_type=EventType.XID, gpu_index=gpu, metrics={"xid_code": code},
                       timestamp=T0 + timedelta(minutes=minutes))


@pytest.mark.parametrize(("seen", "event", "result", "rule"), [
    ({}, xid_at(13, 0), "degraded", "xid-other"),  # the first: degraded only
    ({("xid-app-repeated", 0): [T0 + timedelta(minutes=m) for m in (1, 2, 3, 4)]},
     xid_at(13, 5), "unhealthy", "xid-app-repeated"),  # the fifth within the hour
    ({("xid-app-repeated", 0): [T0 + timedelta(minutes=m) for m in (1, 2, 3)]},
     xid_at(31, 5), "degraded", "xid-other"),  # the fourth
    ({("xid-app-repeated", 0): [T0 - timedelta(minutes=m) for m in (61, 62, 63, 64)]},
     xid_at(13, 0), "degraded", "xid-other"),  # the others are over an hour old
    ({("xid-app-repeated", 1): [T0 + timedelta(minutes=m) for m in (1, 2, 3, 4)]},
     xid_at(13, 5, gpu=0), "degraded", "xid-other"),  # counted on another GPU
    ({("xid-app-repeated", 0): [T0 + timedelta(minutes=5)] * 1
      + [T0 + timedelta(minutes=m) for m in (1, 2, 3)]},
     xid_at(13, 5), "degraded", "xid-other"),  # the same event is counted once
    ({("xid-contained-ecc-repeated", 0): [T0 - timedelta(hours=h) for h in (20, 10)]},
     xid_at(94, 0), "unhealthy", "xid-contained-ecc-repeated"),
    ({("xid-app-repeated", 0): [T0 + timedelta(minutes=m) for m in (1, 2, 3, 4)]},
     xid_at(43, 5), "degraded", "xid-other"),  # 43 is not counted at all
])
def test_repeats_rules_count_distinct_events_per_gpu_within_their_window(seen, event, result,
                                                                         rule):
    verdict = builtin_policy("default").evaluate_event(event, seen)
    assert (verdict.result.value, verdict.rule) == (result, rule)
    counted = {13: ("xid-app-repeated",), 31: ("xid-app-repeated",),
               94: ("xid-contained-ecc-repeated",)}.get(event.metrics["xid_code"], ())
    assert verdict.counted == counted


@pytest.mark.parametrize(("repeats", "message"), [
    ("{count: 1, window: 1h}", "rules[0].repeats.count: expected a number at least 2 (got 1)"),
    ("{count: 3}", "rules[0].repeats.window: this key is required"),
    ("{count: 3, window: soon}", "rules[0].repeats.window: 'soon' is not a duration"),
])
def test_bad_repeats_are_named(tmp_path, repeats, message):
    path = tmp_path / "p.yaml"
    path.write_text("version: v1\nrules:\n  - name: r\n    condition: 'true'\n"
                    f"    repeats: {repeats}\n    result: unhealthy\n")
    with pytest.raises(ValidationFailed) as info:
        load_policy(path)
    assert f"{path}:5: {message}" in "\n".join(str(p) for p in info.value.problems)
