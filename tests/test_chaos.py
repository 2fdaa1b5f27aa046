"""The stress block's chaos — cascades by scope and depth, scheduled outages — against a
stand-in for the simulator's actions (the real-workflow runs are in test_simulate)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from navarch.sim.chaos import Chaos, racks
from navarch.sim.run import Run
from navarch.sim.scenario import ChaosConfig, Event, FleetNode, Scenario


class StandIn:
    """Records what the chaos asks the simulator to do."""

    def __init__(self) -> None:
        self.said: list[str] = []
        self.recovered: list[str] = []

    def say(self, line: str) -> None:
        self.said.append(line)

    async def act(self, run: Run, event: Event, cause: str = "scenario") -> str:
        if event.action == "inject_failure":
            run.injections.append({"node": event.target, "type": event.params.failure_type,
                                   "xid": event.params.xid_code, "cause": cause})
        else:
            self.recovered.append(event.target)
        return event.action


def _fleet(*zones: str, provider: str = "gcp") -> list[FleetNode]:
    return [FleetNode(id=f"n{i}", provider=provider, region="r1", zone=z,
                      instance_type="h100-8x") for i, z in enumerate(zones, 1)]


def _chaos(fleet: list[FleetNode], config: dict[str, Any],
           seed: int = 1) -> tuple[Chaos, Run, StandIn]:
    run = Run(Scenario(name="t", fleet=fleet))
    sim = StandIn()
    return Chaos(sim, run, ChaosConfig.model_validate(config), random.Random(seed)), run, sim  # type: ignore[arg-type]


def _hit(run: Run, cause: str) -> list[str]:
    return sorted(i["node"] for i in run.injections if i["cause"] == cause)


CASCADE = {"enabled": True, "probability": 1.0, "max_depth": 1, "min_delay": "10ms",
           "max_delay": "30ms", "max_affected_percent": 100}


async def test_a_cascade_stays_in_its_zone_and_stops_at_max_depth():
    chaos, run, _ = _chaos(_fleet("a", "a", "a", "b", "b"),
                           {"enabled": True, "cascading": {**CASCADE, "scope": "zone"}})
    for seed in range(20):  # 1..all neighbours, whatever the draw
        chaos.rng.seed(seed)
        run.injections.clear()
        chaos.failed.clear()
        await chaos.fail("n1", "xid_error", 13)
        await asyncio.sleep(0.2)
        cascaded = _hit(run, "cascade")
        assert cascaded and set(cascaded) <= {"n2", "n3"}, cascaded
    assert all(i["xid"] == 79 for i in run.injections if i["cause"] == "cascade")  # default


async def test_cascades_go_deeper_up_to_max_depth_and_never_hit_a_failed_node():
    chaos, run, _ = _chaos(_fleet(*"aaaaaa"), {
        "enabled": True, "xid_distribution": {13: 1},
        "cascading": {**CASCADE, "scope": "random", "max_depth": 3,
                      "max_affected_percent": 0.01}})  # one neighbour per step
    await chaos.fail("n1", "xid_error", 13)
    await asyncio.sleep(0.3)
    assert len(_hit(run, "cascade")) == 3  # depth 1, 2, 3: one node each
    assert len({i["node"] for i in run.injections}) == 4


async def test_cascade_scopes_rack_region_provider():
    fleet = [*_fleet(*"a" * 10), *_fleet("z", provider="aws")]
    fleet[-1] = fleet[-1].model_copy(update={"id": "other"})
    by_node = racks(fleet)
    assert by_node["n1"] == by_node["n8"] != by_node["n9"]  # blocks of 8 in a zone
    chaos, run, _ = _chaos(fleet, {"enabled": True, "cascading": {**CASCADE, "scope": "rack"}})
    await chaos.fail("n9", "xid_error", 13)
    await asyncio.sleep(0.2)
    assert _hit(run, "cascade") == ["n10"]
    chaos, run, _ = _chaos(fleet, {"enabled": True,
                                   "cascading": {**CASCADE, "scope": "provider"}})
    await chaos.fail("other", "xid_error", 13)
    await asyncio.sleep(0.2)
    assert _hit(run, "cascade") == []  # alone on its provider


async def test_no_cascade_when_probability_is_zero_or_disabled():
    for cascading in ({**CASCADE, "probability": 0.0}, {**CASCADE, "enabled": False}):
        chaos, run, _ = _chaos(_fleet("a", "a"), {"enabled": True, "cascading": cascading})
        await chaos.fail("n1", "xid_error", 13)
        await asyncio.sleep(0.1)
        assert _hit(run, "cascade") == []


async def test_scheduled_outage_hits_its_scope_then_clears_it():
    chaos, run, sim = _chaos(_fleet("a", "b", "a"), {"enabled": True, "scheduled_outages": [
        {"name": "zone-a", "start_time": "0s", "duration": "50ms", "scope": "zone",
         "target": "a", "failure_type": "xid_error"}]})
    await chaos.outage(chaos.config.scheduled_outages[0])
    assert _hit(run, "outage") == ["n1", "n3"]
    assert all(i["xid"] == 79 for i in run.injections)  # an outage's Xid is 79
    assert sorted(sim.recovered) == ["n1", "n3"] and not chaos.failed
    assert any("outage zone-a: 2 node(s)" in line for line in sim.said)


async def test_percentage_outage_takes_about_that_share():
    chaos, run, _ = _chaos(_fleet(*"a" * 200), {"enabled": True, "scheduled_outages": [
        {"start_time": "0s", "duration": "1ms", "scope": "percentage", "target": "25",
         "failure_type": "network"}]})
    await chaos.outage(chaos.config.scheduled_outages[0])
    assert 30 <= len(_hit(run, "outage")) <= 70
    assert {i["type"] for i in run.injections} == {"network"}


async def test_an_outage_ending_on_a_replaced_node_is_not_a_recovery():
    chaos, run, sim = _chaos(_fleet("a", "a"), {"enabled": True, "scheduled_outages": [
        {"name": "zone-a", "start_time": "0s", "duration": "50ms", "scope": "zone",
         "target": "a"}]})
    chaos.replaced.add("n1")  # approved for repair, left, a replacement started
    await chaos.outage(chaos.config.scheduled_outages[0])
    assert sorted(sim.recovered) == ["n1", "n2"] and not chaos.failed  # faults cleared anyway
    recovered = [e["target"] for e in run.log if e["action"] == "recover_failure"]
    assert recovered == ["n2"]
    (ended,) = [e for e in run.log if e["action"] == "failure_cleared"]
    assert ended["target"] == "n1" and "already replaced" in ended["outcome"]
