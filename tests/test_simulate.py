"""Scenario files (the Go Navarch format) and `navarch simulate`: validation with every error
located, and runs on the real workflows that check the fleet's behaviour."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from navarch.cli.simulate import go_report_files, with_worker_process
from navarch.sim.chaos import zone_notes
from navarch.sim.fakeworld import FakeWorld
from navarch.sim.fleet import cold_start, generate_fleet, longest_cold_start
from navarch.sim.report import render_html
from navarch.sim.run import Run
from navarch.sim.runner import Simulator, node_spec
from navarch.sim.scenario import Event, FleetNode, Scenario, StressConfig, load_scenario
from navarch.validation import ValidationFailed

from lifecycle_helpers import control_plane

SCENARIOS = Path(__file__).parent / "fixtures" / "scenarios"


def navarch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "navarch.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def _run(scenario: Path, out: Path, *options: str) -> tuple[subprocess.CompletedProcess[str],
                                                            Path, dict[str, Any]]:
    """`navarch simulate run` that succeeded: its output, run folder and report."""
    result = navarch("simulate", "run", str(scenario), "--out", str(out), *options)
    assert result.returncode == 0, result.stdout + result.stderr
    (folder,) = out.iterdir()
    return result, folder, json.loads((folder / "report.json").read_text())


def test_fixtures_and_a_go_stress_file_validate():
    """go-*.yaml are the Go simulator's documented example scenarios, written out here."""
    for path in SCENARIOS.glob("*.yaml"):
        load_scenario(path)
    assert len(list(SCENARIOS.glob("go-*.yaml"))) == 5
    examples = list((Path(__file__).parents[1] / "docs" / "scenarios").glob("*.yaml"))
    assert len(examples) >= 2
    for path in examples:  # the large ones documented for users
        load_scenario(path)


BAD = """name: bad
fleet:
  - {id: n1}
  - {id: n1}
events:
  - {at: 0s, action: start_fleet}
  - {at: 1s, action: explode}
  - {at: 2s, action: inject_failure, target: n2, params: {failure_type: xid_error}}
  - {at: 3s, action: issue_command, target: n1, params: {command_type: reboot}}
  - {at: 4s, action: wait_for_status, target: n1, params: {expected_status: sad}}
  - {at: soon, action: log}
  - {at: 5s, action: inject_failure, params: {failure_type: lightning}}
assertions:
  - {type: node_status, target: n1, expected: happy}
  - {type: node_count, expected: many}
stress:
  correlated_failures: [{scope: rack}]
"""


def test_every_error_with_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(ValidationFailed) as err:
        load_scenario(path)
    text = str(err.value)
    for expected in ("bad.yaml:7: events[1].action", "explode",
                     "bad.yaml:11: events[5].at", "bad.yaml:12: events[6].params.failure_type",
                     "lightning", "bad.yaml:14: assertions[0]", "happy",
                     "assertions[1]", "many", "stress.correlated_failures",
                     "belongs under stress.chaos"):
        assert expected in text, (expected, text)
    path.write_text(BAD.replace("  - {at: 1s, action: explode}\n", "")
                    .replace("  - {at: soon, action: log}\n", "")
                    .replace("  - {at: 5s, action: inject_failure, params: {failure_type: "
                             "lightning}}\n", "")
                    .replace("expected: happy", "expected: active")
                    .replace("expected: many", 'expected: "1"')
                    .replace("stress:\n  correlated_failures: [{scope: rack}]\n", ""))
    with pytest.raises(ValidationFailed) as err:
        load_scenario(path)
    text = str(err.value)
    for expected in ("fleet[1].id: duplicate node id 'n1'", "events[1].target: no fleet node "
                     "'n2'", "events[1].params.xid_code: an xid_error needs "
                     "xid_code", "events[2].params.command_type", "reboot",
                     "events[3].params.expected_status", "sad"):
        assert expected in text, (expected, text)


def test_correlated_failures_are_checked_where_go_puts_them(tmp_path):
    path = tmp_path / "cf.yaml"
    path.write_text("""name: cf
stress:
  fleet_gen: {total_nodes: 2, templates: [{name: a, weight: 1, gpu_count: 8}]}
  chaos:
    enabled: true
    correlated_failures:
      - {trigger: "79", response: nvlink_error, scope: same_zone}
      - {trigger: meltdown, response: "48", scope: same_planet}
""")
    with pytest.raises(ValidationFailed) as err:
        load_scenario(path)
    text = str(err.value)
    assert "cf.yaml:8" in text and "'meltdown' is neither an Xid code nor a failure type" in text
    assert "same_planet" in text
    assert "correlated_failures[0]" not in text


def test_zone_scoped_chaos_in_a_fleet_without_zones_is_said(tmp_path):
    """Valid (Go files do this), but the blast radius is a whole region: the run says so at
    its start and in its report; with zones listed there is nothing to say."""
    path = tmp_path / "zones.yaml"
    path.write_text("""name: zones
stress:
  fleet_gen:
    total_nodes: 4
    templates: [{name: a, weight: 1, gpu_count: 8}]
    regions: {us-central1: 100}
  chaos:
    enabled: true
    cascading: {enabled: true, probability: 0.5, scope: zone}
    correlated_failures:
      - {trigger: "79", response: nvlink_error, scope: same_node}
      - {trigger: "48", response: "79", scope: same_zone}
""")
    scenario = load_scenario(path)
    assert scenario.stress is not None and scenario.stress.fleet_gen is not None
    fleet = generate_fleet(scenario.stress.fleet_gen, random.Random(1))
    notes = zone_notes(scenario.stress.chaos, fleet)
    assert len(notes) == 1
    assert notes[0].startswith("chaos.cascading.scope: zone; "
                               "chaos.correlated_failures[1].scope: same_zone: no generated "
                               "node has a zone")
    zoned = [n.model_copy(update={"zone": "us-central1-a"}) for n in fleet]
    assert zone_notes(scenario.stress.chaos, zoned) == []
    html = render_html({"scenario": "zones", "description": "", "passed": True,
                        "duration_s": 1.0, "clock": "wall", "failures": [], "notes": notes,
                        "assertions": [], "events": [], "fault_to_cordon": [],
                        "fault_to_replacement": [], "rules_fired": {}, "timeline": []})
    assert "note: chaos.cascading.scope: zone" in html


def test_an_outage_must_hit_something_the_fleet_has(tmp_path):
    path = tmp_path / "outage.yaml"
    path.write_text("""name: outage
stress:
  fleet_gen:
    total_nodes: 4
    templates: [{name: a, weight: 1, gpu_count: 8}]
    providers: {gcp: 100}
    regions: {us-central1: 100}
    zones: {us-central1: [us-central1-a, us-central1-b]}
  chaos:
    enabled: true
    scheduled_outages:
      - {start_time: 1s, duration: 5s, scope: zone, target: us-central1-c}
      - {start_time: 1s, duration: 5s, scope: region, target: us-central1}
      - {start_time: 1s, duration: 5s, scope: provider, target: aws}
      - {start_time: 1s, duration: 5s, scope: percentage, target: lots}
      - {start_time: 1s, duration: 5s, scope: percentage, target: 30%}
""")
    with pytest.raises(ValidationFailed) as err:
        load_scenario(path)
    text = str(err.value)
    assert ("outage.yaml:12: stress.chaos.scheduled_outages[0].target: no generated node is "
            "in zone 'us-central1-c' (fleet_gen.zones: us-central1-a, us-central1-b)") in text
    assert "scheduled_outages[2].target: no generated node is in provider 'aws' " in text
    assert "scheduled_outages[3].target: a percentage such as 10 or 10%" in text
    assert "'lots'" in text
    assert "scheduled_outages[1]" not in text and "scheduled_outages[4]" not in text
    path.write_text(path.read_text().replace("    zones: {us-central1: [us-central1-a, "
                                             "us-central1-b]}\n", ""))
    with pytest.raises(ValidationFailed) as err:
        load_scenario(path)
    assert "(fleet_gen.zones: none; list each region's zones there)" in str(err.value)


def test_go_startup_and_recovery_keys(tmp_path):
    path = tmp_path / "go.yaml"
    base = """name: go
stress:
  fleet_gen:
    total_nodes: 2
    templates: [{name: a, weight: 1, gpu_count: 8}]
    startup: {pattern: wave, STARTUP}
  chaos:
    enabled: true
    cascading: {enabled: true, max_affected_percent: 0.1}
    recovery: {enabled: true, probability: 0.7, replace_fatal: true, replace_cold_start: 45s}
"""
    path.write_text(base.replace("STARTUP", "cold_start_min: 30s, cold_start_max: 2m"))
    scenario = load_scenario(path)
    assert scenario.stress and scenario.stress.chaos and scenario.stress.chaos.replaces_fatal()
    cascading = scenario.stress.chaos.cascading
    assert cascading and cascading.max_affected_share() == pytest.approx(0.1)  # Go: 10%
    assert cascading.model_copy(update={"max_affected_percent": 25}).max_affected_share() \
        == pytest.approx(0.25)
    startup = scenario.stress.fleet_gen and scenario.stress.fleet_gen.startup
    assert startup
    rng = random.Random(1)
    draws = [cold_start(startup, rng) or 0.0 for _ in range(200)]
    assert 30 <= min(draws) < 40 and 110 < max(draws) <= 120  # uniform over 30 s..2 min
    normal = startup.model_copy(update={"cold_start_mean": timedelta(seconds=60),
                                        "cold_start_stddev": timedelta(seconds=40)})
    draws = [cold_start(normal, rng) or 0.0 for _ in range(500)]
    assert min(draws) == 30 and max(draws) == 120  # clamped to min and max
    assert 55 < statistics.median(draws) < 65
    assert cold_start(startup.model_copy(update={"cold_start_min": None,
                                                 "cold_start_max": None}), rng) is None
    assert longest_cold_start(scenario) == 120
    assert node_spec(scenario.model_copy(update={"fleet": [FleetNode(id="n1")]}),
                     "n1").boot_deadline == timedelta(seconds=180)  # 1 min + the longest
    for startup_text, message in (
            ("cold_start_min: 2m, cold_start_max: 30s", "cold_start_min (0:02:00) is above "
                                                        "cold_start_max (0:00:30)"),
            ("cold_start_stddev: 5s", "cold_start_stddev needs cold_start_mean")):
        path.write_text(base.replace("STARTUP", startup_text))
        with pytest.raises(ValidationFailed) as err:
            load_scenario(path)
        assert "go.yaml:6: stress.fleet_gen.startup" in str(err.value)
        assert message in str(err.value), str(err.value)


def test_go_report_file_keys_get_copies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "report.json").write_text("{}")
    (folder / "report.html").write_text("<html>")
    stress = StressConfig(report_file="out/r.json", html_report_file="r.html",
                          log_file="r.log")
    written = go_report_files(stress, folder, ["line one", "PASSED"])
    assert written == [Path("out/r.json"), Path("r.html"), Path("r.log")]
    assert (tmp_path / "out/r.json").read_text() == "{}"
    assert (tmp_path / "r.html").read_text() == "<html>"
    assert (tmp_path / "r.log").read_text() == "line one\nPASSED\n"


def test_validate_command(tmp_path):
    ok = navarch("simulate", "validate", str(SCENARIOS / "xid-repair.yaml"), "-o", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["nodes"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = navarch("simulate", "validate", str(bad))
    assert result.returncode == 1 and "explode" in result.stderr
    no_fleet = tmp_path / "no-fleet.yaml"
    no_fleet.write_text("name: x\nstress:\n  duration: 1s\n")
    stress = navarch("simulate", "run", str(no_fleet))
    assert stress.returncode == 1
    assert "no-fleet.yaml:1: fleet: a scenario needs `fleet`" in stress.stderr


@pytest.mark.parametrize("name", ["xid-repair", "network-drain", "diagnostic",
                                  "go-xid-classification", "go-gpu-failure-passes"])
def test_run_on_the_real_workflows(tmp_path, name):
    verbose = ("-v",) if name == "network-drain" else ()  # the Go simulator's flag
    result, folder, report = _run(SCENARIOS / f"{name}.yaml", tmp_path, *verbose)
    assert (" INFO navarch." in result.stderr) == bool(verbose), result.stderr[-2000:]
    assert "PASSED" in result.stdout
    assert report["passed"] and all(a["passed"] for a in report["assertions"])
    assert (folder / "scenario.yaml").read_text() == (SCENARIOS / f"{name}.yaml").read_text()
    html = (folder / "report.html").read_text()
    assert "<svg" in html and "Node states over time" in html
    if name == "diagnostic":  # the policy's verdict on the failed diagnostic, not a guess
        assert report["rules_fired"] == {"interconnect-or-power": 1,  # degraded first
                                         "diagnostic-failed": 1}, report["rules_fired"]
        outcomes = {e["target"]: e["outcome"] for e in report["events"]
                    if e["action"] == "diagnostic"}
        assert outcomes["good"].startswith("pass: ") or outcomes["good"] == "pass", outcomes
        assert outcomes["flaky"] == "fail: dcgmi diag -r 2 (simulated): GPU 5 pcie", outcomes
    if name == "xid-repair":
        assert report["rules_fired"] == {"xid-needs-reset-or-reboot": 1}
        assert report["fault_to_cordon"][0]["node"] == "node-1"
        assert 0 < report["fault_to_cordon"][0]["seconds"] < 5


def test_a_run_whose_assertion_fails_exits_1(tmp_path):
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text((SCENARIOS / "xid-repair.yaml").read_text().replace(
        "    target: node-2\n    expected: healthy", "    target: node-2\n    expected: degraded"))
    result = navarch("simulate", "run", str(scenario), "--out", str(tmp_path / "runs"))
    assert result.returncode == 1
    assert "assertion health_status node-2: expected degraded, got healthy" in result.stderr


def test_stress_run_generates_the_fleet_and_injects_chaos(tmp_path):
    _, _, report = _run(SCENARIOS / "stress-chaos.yaml", tmp_path)
    assert report["stress"] and report["seed"] == 7
    assert len(report["nodes"]) == 8 and "node-0008" in report["nodes"]
    injected = sum(report["failures_by_type"].values())
    assert injected >= 3, report["failures_by_type"]
    assert set(report["failures_by_type"]) <= {"xid_error", "network"}
    # Seed 7 injects fatal Xids; they were judged by the real policy and their nodes
    # cordoned (one that lands while its node is still booting or silenced fails the boot
    # or goes unjudged instead, so: at least one, at most one per Xid 79).
    fatal = report["failures_by_xid"].get("79", 0)
    fired = report["rules_fired"].get("xid-needs-reset-or-reboot", 0)
    assert fatal >= 1, report["failures_by_xid"]
    assert 1 <= fired <= fatal, (fired, fatal)
    assert len(report["fault_to_cordon"]) >= fired
    times = [sample["t"] for sample in report["timeline"]]  # one per metrics_interval
    assert len(times) >= 6 and all(b - a >= 2 for a, b in itertools.pairwise(times)), times
    # `target: all` is the whole fleet, and the count a minimum of responsive nodes.
    [count] = report["assertions"]
    assert (count["target"], count["expected"], count["passed"]) == ("all", "4", True), count
    assert 4 <= int(count["actual"]) <= 8


def test_scheduled_outages_and_cascades_on_the_real_workflows(tmp_path):
    _, _, report = _run(SCENARIOS / "stress-outage.yaml", tmp_path)
    zone = {n: v["zone"] for n, v in report["nodes"].items()}
    zone_a = [n for n, z in zone.items() if z == "us-central1-a"]
    zone_b = [n for n, z in zone.items() if z == "us-central1-b"]
    assert zone_a and zone_b, zone
    outages = {o["target"]: o["outcome"] for o in report["outages"]}
    assert outages["zone-a-network"].startswith(f"{len(zone_a)} node(s)")
    assert outages["one-xid"].startswith(f"{len(zone_b)} node(s)")
    for node_id in zone_a:  # cut off longer than the heartbeat timeout, back in time
        states = [(t["to_state"], t["reason"]) for t in report["nodes"][node_id]["transitions"]]
        assert ("unreachable", "unreachable") in states, (node_id, states)
        assert states.index(("unreachable", "unreachable")) < len(states) - 1
        assert any(r == "reachable_again" for _, r in states), (node_id, states)
    cordoned = {c["node"] for c in report["fault_to_cordon"] if c["type"] == "xid_error"}
    assert set(zone_b) <= cordoned  # the Xid 79 outage, judged by the real policy
    # Random Xid 13s (two a second expected) cascade to the rest of their zone.
    assert report["cascaded"] >= 1, report["failures_by_type"]
    assert any("cascade from" in e["outcome"] for e in report["events"])


def test_correlated_failures_and_replace_fatal(tmp_path):
    """On shared simulated hosts: the real navarch-worker runs them, as its own process."""
    result, folder, report = _run(SCENARIOS / "stress-replace.yaml", tmp_path,
                                  "--hosts", "shared")
    assert "shared simulated hosts" in result.stdout and report["hosts"] == "shared"
    assert (folder / "worker.log").exists()
    originals = ["node-0001", "node-0002", "node-0003"]
    correlated = [e for e in report["events"] if "correlated xid79-nvlink" in e["outcome"]]
    assert len(correlated) == 3  # one NVLink error after each Xid 79, on the same node
    replaced = {r["node"]: r for r in report["fault_to_replacement"]}
    assert set(replaced) == set(originals), report["fault_to_replacement"]
    for node_id in originals:
        assert report["nodes"][node_id]["state"] == "terminated"
        new = replaced[node_id]["replacement"]
        assert new == f"{node_id}-r1" and report["nodes"][new]["state"] == "ready"
        assert 0 < replaced[node_id]["seconds"] < 15
    html = (folder / "report.html").read_text()
    assert "Fault → replacement ready" in html and "median" in html
    # Cold starts: the machines took as long to come up as the file says
    assert len(report["cold_starts"]) == 6 and "Cold starts drawn" in html
    booted = {i.node_id: i.boot_at - i.created_at
              for i in FakeWorld(folder / "fake-cloud.db").instances(None)}
    for node_id in originals:
        assert 1.0 <= booted[node_id] <= 2.0, booted
        assert booted[f"{node_id}-r1"] == pytest.approx(2.5), booted


async def test_large_fleet_sampling_reads_search_attributes(dev_env, tmp_path):
    """The sampler for large fleets (one listing, not a query per node), here forced on a
    small one, on shared simulated hosts; replace_fatal still finds nodes awaiting repair."""
    scenario = load_scenario(SCENARIOS / "stress-replace.yaml")
    scenario = scenario.model_copy(update={"name": f"visibility-{uuid.uuid4().hex[:6]}"})
    async with control_plane(dev_env.client, tmp_path, host_mode="shared") as plane:
        sim = Simulator(dev_env.client, plane.world, plane.task_queue, say=lambda _: None,
                        by_visibility=True)
        report = await sim.run_stress(scenario, seed=5)
    words = {k for sample in report["timeline"] for k in sample if k != "t"}
    assert {"active", "terminated"} <= words, report["timeline"]
    assert len(report["fault_to_replacement"]) == 3, report["fault_to_replacement"]
    assert all(report["nodes"][f"node-000{i}-r1"]["state"] == "ready" for i in (1, 2, 3))


async def test_recover_failure_clears_only_the_type_it_names(tmp_path):
    world = FakeWorld(tmp_path / "w.db")
    world.provision(node_id="a", pool="p", provider="fake", instance_type="h100-8x",
                    region="", zone="", gpu_count=8, gpu_model="H100")
    sim = Simulator(None, world, "q", say=lambda _: None)  # type: ignore[arg-type]
    run = Run(Scenario(name="r", fleet=[FleetNode(id="a")]))

    async def act(action: str, **params: Any) -> str:
        return await sim.act(run, Event.model_validate(
            {"at": "0s", "action": action, "target": "a", "params": params}))

    def agent_on() -> bool:
        return world.instances(None)[0].agent_enabled

    await act("inject_failure", failure_type="xid_error", xid_code=79)
    await act("inject_failure", failure_type="temperature")
    await act("inject_failure", failure_type="network")
    assert await act("recover_failure", failure_type="xid_error") == \
        "a: 1 xid_error fault(s) cleared"
    assert [f.kind for f in world.faults("a")] == ["temperature"] and not agent_on()
    assert await act("recover_failure", failure_type="network") == "a: agent on (network over)"
    assert agent_on() and [f.kind for f in world.faults("a")] == ["temperature"]
    await act("inject_failure", failure_type="boot_failure")
    assert await act("recover_failure") == "a: 1 fault(s) cleared, agent on"
    assert agent_on() and world.faults("a") == []


def test_command_args_are_checked(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("""name: d
fleet: [{id: a}]
events:
  - {at: 0s, action: issue_command, target: a, params: {command_type: drain, command_args: {grace_seconds: soon}}}
  - {at: 0s, action: issue_command, target: a, params: {command_type: run_diagnostic, command_args: {kind: xray, level: 9}}}
  - {at: 0s, action: issue_command, target: a, params: {command_type: run_diagnostic, command_args: {kind: nccl, grace_seconds: 5}}}
  - {at: 0s, action: issue_command, target: a, params: {command_type: drain, command_args: {grace_seconds: 30}}}
""")
    with pytest.raises(ValidationFailed) as err:
        load_scenario(path)
    text = str(err.value)
    assert "d.yaml:4: events[0].params.command_args.grace_seconds: seconds the drain waits" \
        in text and "'soon'" in text
    assert "d.yaml:5: events[1].params.command_args.kind: run_diagnostic: Input should be" \
        in text and "'xray'" in text
    assert "events[1].params.command_args.level: run_diagnostic: Input should be less" in text
    assert "events[2].params.command_args.grace_seconds: run_diagnostic: Extra inputs" in text
    assert "events[3]" not in text


async def test_a_worker_process_that_dies_ends_the_run(tmp_path):
    async def forever() -> dict[str, Any]:
        await asyncio.sleep(120)
        return {}

    log = tmp_path / "worker.log"
    with pytest.raises(RuntimeError, match="the worker process exited"):
        await with_worker_process(forever(), "127.0.0.1:1", FakeWorld(tmp_path / "w.db"),
                                   "q", 1000, log, "ERROR")  # nothing listens on port 1
    assert log.read_text().strip()  # why it died is in its log


def test_a_scenario_with_the_repair_ladder_reboots_and_returns_its_nodes(tmp_path):
    """`repair:` gives the scenario's nodes the ladder: a reboot-class Xid on every node is
    fixed by a reboot of each machine (validated, then back in service), not replaced."""
    _, folder, report = _run(SCENARIOS / "stress-repair-ladder.yaml", tmp_path)
    assert len(report["nodes"]) == 3 and not report["fault_to_replacement"]
    for node_id, node in report["nodes"].items():
        reasons = [t["reason"] for t in node["transitions"]]
        assert reasons[-1] == "repaired" and node["state"] == "ready", (node_id, reasons)
    assert FakeWorld(folder / "fake-cloud.db").counter("reboots") == 3
