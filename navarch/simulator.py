"""Runs a scenario's fleet and events on the real Navarch workflows: every fleet node is a
production NodeWorkflow on the fake cloud, served by a simulated host (the real agent
activities over a fake GPU backend); failures are injected into the fake world the agents
read. Clock: the wall clock of a real Temporal dev server (a time-skipping server never
finds an idle moment: every node's health watch is always in flight).

A scenario fleet is a list of nodes, not a pool: nodes are not replaced, and an unhealthy
node stays cordoned awaiting a repair nobody approves — which is what the Go scenarios
check. (Pools, autoscaling and replacement are exercised through `navarch pool apply`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.service import RPCError

from navarch.config import DiagnosticCheck, HealthConfig
from navarch.fakeworld import FakeWorld
from navarch.ids import SA_HEALTH, SA_NODE_STATE, SA_POOL, node_workflow_id
from navarch.lifecycle import NodeState, NodeStatus
from navarch.models import HealthResult
from navarch.scenario import (
    ChaosConfig,
    Event,
    FleetGen,
    FleetNode,
    Scenario,
    ScheduledOutage,
    StartupConfig,
    diagnostic_check,
    go_status,
    go_word,
    matches,
)
from navarch.spec import PoolSpec, ProviderChoice
from navarch.xid import lookup

DEFAULT_WAIT_TIMEOUT = timedelta(seconds=30)
DIAGNOSTIC_TIMEOUT = timedelta(minutes=2)  # a scenario's run_diagnostic, end to end
SAMPLE_SECONDS = 0.5
# Above this many nodes the timeline is sampled from the nodes' search attributes (one
# listing) every LARGE_SAMPLE_SECONDS instead of a query to every node.
LARGE_FLEET = 200
LARGE_SAMPLE_SECONDS = 2.0
MAX_SUSPECTS = 100  # nodes that may await repair, queried per sample
RACK_SIZE = 8  # machines per rack, where the fleet's nodes carry no `rack` label
# Fault kinds of the fake world for each scenario failure type.
_FAULTS = {"xid_error": "xid", "temperature": "temperature", "nvml_failure": "nvml_failure",
           "backend_error": "nvml_failure", "device_error": "pcie", "memory_error": "ecc_dbe",
           "nvlink_error": "nvlink"}
_SILENCING = {"network", "boot_failure"}  # the host's agent stops answering


@dataclass
class Run:
    scenario: Scenario
    started: float = field(default_factory=time.monotonic)
    log: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    injections: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[str, NodeStatus] = field(default_factory=dict)  # the last sample
    replacements: dict[str, str] = field(default_factory=dict)  # replacement -> replaced
    cold_starts: list[float] = field(default_factory=list)  # seconds, each machine drawn
    metrics_every: float = 0.0  # stress.metrics_interval: seconds between timeline points
    diagnoses: list[asyncio.Task[None]] = field(default_factory=list)  # run_diagnostic
    notes: list[str] = field(default_factory=list)  # said at the start, kept in the report

    def t(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def record(self, counts: dict[str, int]) -> None:
        """A point on the state timeline, at most one per `metrics_every` seconds."""
        now = self.t()
        if not self.timeline or now - self.timeline[-1]["t"] >= self.metrics_every:
            self.timeline.append({"t": now, **{k: v for k, v in counts.items() if v}})


def zone_notes(chaos: ChaosConfig | None, fleet: list[FleetNode]) -> list[str]:
    """Zone-scoped chaos in a fleet whose nodes have no zone: a node's zone is then its
    provider and region, so the blast radius is a whole region. Said, not refused: the
    file is valid, but its author may have meant something smaller."""
    if chaos is None or not chaos.enabled or any(n.zone for n in fleet):
        return []
    zonal = []
    if chaos.cascading and chaos.cascading.enabled and chaos.cascading.scope == "zone":
        zonal.append("chaos.cascading.scope: zone")
    zonal += [f"chaos.correlated_failures[{i}].scope: same_zone"
              for i, rule in enumerate(chaos.correlated_failures) if rule.scope == "same_zone"]
    if not zonal:
        return []
    return [f"{'; '.join(zonal)}: no generated node has a zone (fleet_gen.zones lists none), "
            "so these span each node's whole region; list each region's zones under "
            "fleet_gen.zones for zone-sized failures"]


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:50] or "scenario"
    return slug


# Timings of scenario nodes: (health check interval, heartbeat timeout, unreachable
# toleration, boot deadline). Small fleets react within seconds; large ones keep the
# heartbeat traffic a 2-core dev server can carry (a heartbeat per node per 24 s).
SMALL_TIMINGS = (timedelta(seconds=1), timedelta(seconds=6), timedelta(seconds=6),
                 timedelta(seconds=60))
LARGE_TIMINGS = (timedelta(seconds=10), timedelta(seconds=30), timedelta(seconds=60),
                 timedelta(minutes=5))


def node_spec(scenario: Scenario, node_id: str) -> PoolSpec:
    node = next(n for n in scenario.fleet if n.id == node_id)
    check, heartbeat, toleration, boot = (LARGE_TIMINGS if len(scenario.fleet) > LARGE_FLEET
                                          else SMALL_TIMINGS)
    boot += timedelta(seconds=longest_cold_start(scenario))
    choice = ProviderChoice(name=node.provider or "fake", type="fake",
                            instance_type=node.instance_type, gpu_count=node.gpu_count,
                            region=node.region or None, zone=node.zone or None)
    return PoolSpec(
        name=f"sim-{_slug(scenario.name)}", providers=[choice], instance_type=node.instance_type,
        region=node.region or None, zones=[node.zone] if node.zone else [],
        labels=dict(node.labels), min_nodes=0, max_nodes=max(1, len(scenario.fleet)),
        health_check_interval=check, heartbeat_timeout=heartbeat, boot_deadline=boot,
        health=HealthConfig(unhealthy_after=1, unreachable_toleration=toleration,
                            drain_grace=timedelta(seconds=5)),
    )


class Simulator:
    """`by_visibility`: sample node states from search attributes (default: for fleets
    larger than LARGE_FLEET)."""

    def __init__(self, client: Client, world: FakeWorld, task_queue: str,
                 say: Callable[[str], None] = print, by_visibility: bool | None = None) -> None:
        self.client, self.world, self.task_queue, self.say = client, world, task_queue, say
        self.by_visibility = by_visibility

    async def status(self, node_id: str) -> NodeStatus | None:
        try:
            result: NodeStatus = await self.client.get_workflow_handle(
                node_workflow_id(node_id)).query("status", result_type=NodeStatus)
        except (RPCError, WorkflowQueryFailedError):  # not there, or too busy to answer
            return None
        return result

    async def _signal(self, node_id: str, name: str, payload: dict[str, Any] | None) -> None:
        handle = self.client.get_workflow_handle(node_workflow_id(node_id))
        if payload is None:
            await handle.signal(name)
        else:
            await handle.signal(name, payload)

    async def _start(self, run: Run) -> None:
        from navarch.node_api import NodeInput

        for node in run.scenario.fleet:
            await self.client.start_workflow(
                "NodeWorkflow", NodeInput(node_id=node.id, spec=node_spec(run.scenario, node.id)),
                id=node_workflow_id(node.id), task_queue=self.task_queue,
                static_summary=f"scenario {run.scenario.name} · {node.id}")

    async def _act(self, run: Run, event: Event, cause: str = "scenario") -> str:
        p, target = event.params, event.target
        if event.action == "start_fleet":
            await self._start(run)
            return f"started {len(run.scenario.fleet)} node(s)"
        if event.action == "stop_fleet":
            for node in run.scenario.fleet:
                await self._signal(node.id, "terminate", {"reason": "scenario: stop_fleet"})
            return "terminate sent to every node"
        if event.action == "log":
            self.say(f"  [{run.t():7.2f}s] {p.log_message or p.message}")
            return p.log_message or p.message
        if event.action == "inject_failure":
            assert p.failure_type is not None
            run.injections.append({"at": run.t(), "wall": datetime.now(UTC).isoformat(),
                                   "node": target, "type": p.failure_type,
                                   "xid": p.xid_code, "cause": cause})
            if p.failure_type in _SILENCING:
                await asyncio.to_thread(self.world.set_agent_enabled, target, False)
                return f"{target}: agent silenced ({p.failure_type})"
            kind = _FAULTS[p.failure_type]
            value: float | None = {"xid": p.xid_code, "temperature": p.temperature or 95.0,
                                   "ecc_dbe": 1.0, "nvlink": 1.0}.get(kind)
            await asyncio.to_thread(self.world.inject, target, kind, gpu_index=p.gpu_index,
                                    value=value, message=p.message)
            return f"{target}: {p.failure_type}" + (f" {p.xid_code}" if p.xid_code else "")
        if event.action == "recover_failure":  # one failure type, or all of them
            if p.failure_type in _SILENCING:
                await asyncio.to_thread(self.world.set_agent_enabled, target, True)
                return f"{target}: agent on ({p.failure_type} over)"
            only = _FAULTS[p.failure_type] if p.failure_type else None
            cleared = await asyncio.to_thread(self.world.clear, target, only)
            if only is not None:
                return f"{target}: {cleared} {p.failure_type} fault(s) cleared"
            await asyncio.to_thread(self.world.set_agent_enabled, target, True)
            return f"{target}: {cleared} fault(s) cleared, agent on"
        if event.action == "issue_command" and p.command_type == "run_diagnostic":
            check = diagnostic_check(p.command_args)
            run.diagnoses.append(asyncio.create_task(self._diagnose(run, target, check)))
            return f"run_diagnostic ({check.kind}) started on {target}"
        if event.action == "issue_command":
            command = p.command_type or ""
            payload: dict[str, Any] = {
                "reason": str(p.command_args.get("reason") or f"scenario: {command}")}
            if command == "drain":
                payload["grace_seconds"] = float(p.command_args.get("grace_seconds", 5))
            await self._signal(target, command, payload)
            return f"{command} sent to {target}"
        if event.action == "wait":
            await asyncio.sleep((p.timeout or timedelta(0)).total_seconds())
            return "waited"
        expected = p.expected_status or ""
        if event.action == "wait_for_status":
            deadline = time.monotonic() + (p.timeout or DEFAULT_WAIT_TIMEOUT).total_seconds()
            while True:
                status = await self.status(target)
                if status is not None and matches(status, expected):
                    return f"{target} is {expected}"
                if time.monotonic() > deadline:
                    seen = go_status(status) if status else "not started"
                    run.failures.append(f"wait_for_status: {target} not {expected} within "
                                        f"{p.timeout or DEFAULT_WAIT_TIMEOUT} (is {seen})")
                    return run.failures[-1]
                await asyncio.sleep(0.2)
        status = await self.status(target)  # assert
        if status is None or not matches(status, expected):
            seen = go_status(status) if status else "not started"
            run.failures.append(f"assert at {event.at}: {target} is {seen}, not {expected}")
            return run.failures[-1]
        return f"{target} is {expected}"

    async def _diagnose(self, run: Run, target: str, check: DiagnosticCheck) -> None:
        """A DiagnosticsWorkflow for one node, as the pool's schedule would run it; its
        outcome goes into the run's log."""
        from navarch.diagnostics_api import DiagnosticsInput, DiagnosticsReport

        spec = node_spec(run.scenario, target)
        try:
            report = await self.client.execute_workflow(
                "DiagnosticsWorkflow",
                DiagnosticsInput(pool=spec.name, checks=[check], nodes=[target],
                                 heartbeat_timeout=spec.heartbeat_timeout),
                id=f"diagnostics/{spec.name}/{target}-{uuid.uuid4().hex[:6]}",
                task_queue=self.task_queue, result_type=DiagnosticsReport,
                execution_timeout=DIAGNOSTIC_TIMEOUT)
            outcome = "; ".join(f"{n.outcome}" + (f": {n.detail}" if n.detail else "")
                                for n in report.nodes) or "no node diagnosed"
        except (RPCError, WorkflowFailureError) as exc:
            outcome = f"diagnostics did not finish: {exc}"
        run.log.append({"at": run.t(), "scheduled": run.t(), "action": "diagnostic",
                        "target": target, "outcome": outcome})
        self.say(f"  [{run.t():7.2f}s] diagnostic {target}: {outcome}")

    async def _sample(self, run: Run, stop: asyncio.Event) -> None:
        large = (self.by_visibility if self.by_visibility is not None
                 else len(run.scenario.fleet) > LARGE_FLEET)
        if large:
            await self._sample_visibility(run, stop)
            return
        while not stop.is_set():
            counts: Counter[str] = Counter()
            for node in list(run.scenario.fleet):
                status = await self.status(node.id)
                counts[go_status(status) if status else "not started"] += 1
                if status is not None:
                    run.latest[node.id] = status
            run.record(counts)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)

    async def _sample_visibility(self, run: Run, stop: asyncio.Event) -> None:
        """The timeline from one listing of the scenario's node workflows and their state
        and health search attributes; nodes that may await a repair (cordoned and
        unhealthy, or unreachable) are queried, for replace_fatal."""
        pool = node_spec(run.scenario, run.scenario.fleet[0].id).name if run.scenario.fleet \
            else ""
        query = f'WorkflowType="NodeWorkflow" AND {SA_POOL.name}="{pool}"'
        while not stop.is_set():
            counts: Counter[str] = Counter()
            seen = 0
            suspects: list[str] = []
            try:
                async for wf in self.client.list_workflows(query):
                    attrs = wf.typed_search_attributes
                    state, health = attrs.get(SA_NODE_STATE), attrs.get(SA_HEALTH)
                    if state is None:
                        continue
                    seen += 1
                    word = go_word(NodeState(state), HealthResult(health or "healthy"))
                    counts[word] += 1
                    if ((word == "unhealthy" and state == NodeState.CORDONED.value)
                            or state == NodeState.UNREACHABLE.value):  # may await repair
                        suspects.append(wf.id.removeprefix("node/"))
            except RPCError as exc:
                self.say(f"  [{run.t():7.2f}s] sampling failed: {exc}")
            counts["not started"] += max(0, len(run.scenario.fleet) - seen)
            run.record(counts)
            if len(suspects) > MAX_SUSPECTS:  # a different share each round
                start = int(run.t()) * MAX_SUSPECTS % len(suspects)
                suspects = (suspects + suspects)[start:start + MAX_SUSPECTS]
            for node_id, status in zip(suspects, await self._statuses(suspects), strict=True):
                if status is not None:
                    run.latest[node_id] = status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LARGE_SAMPLE_SECONDS)

    async def _statuses(self, node_ids: list[str]) -> list[NodeStatus | None]:
        """Many nodes' statuses, 32 queries at a time."""
        gate = asyncio.Semaphore(32)

        async def fetch(node_id: str) -> NodeStatus | None:
            async with gate:
                return await self.status(node_id)

        return list(await asyncio.gather(*(fetch(i) for i in node_ids)))

    async def run(self, scenario: Scenario) -> dict[str, Any]:
        run = Run(scenario)
        stop = asyncio.Event()
        sampler = asyncio.create_task(self._sample(run, stop))
        try:
            for event in sorted(scenario.events, key=lambda e: e.at):
                wait = event.at.total_seconds() - (time.monotonic() - run.started)
                if wait > 0:
                    await asyncio.sleep(wait)
                outcome = await self._act(run, event)
                run.log.append({"at": run.t(), "scheduled": event.at.total_seconds(),
                                "action": event.action, "target": event.target,
                                "outcome": outcome})
                if event.action != "log":
                    self.say(f"  [{run.t():7.2f}s] {event.action} {event.target}: {outcome}")
            if run.diagnoses:
                await asyncio.wait(run.diagnoses)  # each ends by its execution timeout
            await asyncio.sleep(1.0)  # let the last signals land
        finally:
            stop.set()
            await sampler
        return await self._report(run)

    async def run_stress(self, scenario: Scenario, seed: int) -> dict[str, Any]:
        """A stress block: a generated fleet started by its pattern, then random failures
        at `chaos.failure_rate` (per minute per 1000 nodes), of the weighted types and Xid
        codes, cascades, scheduled outages and recoveries of non-fatal ones, until
        `duration`."""
        stress = scenario.stress
        assert stress is not None and stress.fleet_gen is not None
        rng = random.Random(seed)
        scenario = scenario.model_copy(update={"fleet": generate_fleet(stress.fleet_gen, rng)})
        run = Run(scenario, metrics_every=(stress.metrics_interval or timedelta(0)).total_seconds())
        duration = (stress.duration or timedelta(minutes=1)).total_seconds()
        for note in zone_notes(stress.chaos, scenario.fleet):
            run.notes.append(note)
            self.say(f"  note: {note}")
        stop = asyncio.Event()
        sampler = asyncio.create_task(self._sample(run, stop))
        background: list[asyncio.Task[None]] = []
        try:
            from navarch.node_api import NodeInput

            said = 0.0
            startup = stress.fleet_gen.startup
            order = sorted(zip(scenario.fleet, start_offsets(stress.fleet_gen, rng),
                               strict=True), key=lambda x: x[1])
            for started, (node, offset) in enumerate(order):
                wait = offset - (time.monotonic() - run.started)
                if wait > 0:
                    await asyncio.sleep(wait)
                if run.t() - said >= 5:
                    said = run.t()
                    last = {k: v for k, v in run.timeline[-1].items() if k != "t"} \
                        if run.timeline else {}
                    self.say(f"  [{run.t():7.2f}s] starting: {started}/{len(order)} · {last}")
                cold = cold_start(startup, rng)
                if cold is not None:
                    await asyncio.to_thread(self.world.set_cold_start, node.id, cold)
                    run.cold_starts.append(cold)
                await self.client.start_workflow(
                    "NodeWorkflow", NodeInput(node_id=node.id, spec=node_spec(scenario, node.id)),
                    id=node_workflow_id(node.id), task_queue=self.task_queue)
            run.log.append({"at": run.t(), "scheduled": 0.0, "action": "start_fleet",
                            "target": "", "outcome": f"{len(scenario.fleet)} node(s) started"})
            self.say(f"  [{run.t():7.2f}s] {len(scenario.fleet)} node(s) started "
                     f"({stress.fleet_gen.startup.pattern})")
            chaos = stress.chaos
            chaos_run = None
            if chaos is not None and chaos.enabled:
                chaos_run = _Chaos(self, run, chaos, rng)
                chaos_run.cold_start = functools.partial(cold_start, startup, rng)
                background += [asyncio.create_task(chaos_run.outage(o))
                               for o in chaos.scheduled_outages]
            while run.t() < duration:
                await asyncio.sleep(1.0)
                if int(run.t()) % 5 == 0 and run.timeline:
                    last = {k: v for k, v in run.timeline[-1].items() if k != "t"}
                    self.say(f"  [{run.t():7.2f}s] {last} · {len(run.injections)} failure(s) "
                             "injected")
                if chaos_run is not None:
                    await chaos_run.tick()
            for task in background + (chaos_run.tasks if chaos_run else []):
                task.cancel()
        finally:
            stop.set()
            await sampler
        report = await self._report(run)
        kinds = Counter(i["type"] for i in run.injections)
        by_xid = Counter(str(i["xid"]) for i in run.injections if i["type"] == "xid_error")
        report.update({"stress": True, "seed": seed, "failures_by_type": dict(kinds),
                       "failures_by_xid": dict(by_xid),
                       "cascaded": sum(1 for i in run.injections if i.get("cause") == "cascade"),
                       "outages": [e for e in run.log if e["action"] == "outage"],
                       "recoveries": sum(1 for e in run.log
                                         if e["action"] == "recover_failure"),
                       "cold_starts": [round(c, 3) for c in run.cold_starts]})
        return report

    async def _report(self, run: Run) -> dict[str, Any]:
        scenario = run.scenario
        ids = [n.id for n in scenario.fleet]
        nodes: dict[str, NodeStatus | None] = dict(zip(ids, await self._statuses(ids),
                                                       strict=True))
        results = []
        for a in scenario.assertions:
            if a.type == "node_count":
                live = sum(1 for s in nodes.values()
                           if s is not None and not s.state.is_terminal()
                           and (not a.target or matches(s, a.target)))
                ok, seen = live == int(a.expected), str(live)
            else:
                status = nodes.get(a.target)
                seen = ("not started" if status is None else
                        go_status(status) if a.type == "node_status" else status.health.value)
                ok = status is not None and (matches(status, a.expected)
                                             if a.type == "node_status"
                                             else status.health.value == a.expected)
                if a.type == "node_status" and status is not None and ok:
                    seen = a.expected
            results.append({"type": a.type, "target": a.target, "expected": a.expected,
                            "actual": seen, "passed": ok})
        rules: Counter[str] = Counter()
        to_cordon = []
        for inj in run.injections:
            status = nodes.get(inj["node"])
            if status is None:
                continue
            at = datetime.fromisoformat(inj["wall"])
            cordoned = next((t for t in status.transitions
                             if t.to_state is NodeState.CORDONED and t.at >= at), None)
            if cordoned is not None:
                to_cordon.append({"node": inj["node"], "type": inj["type"],
                                  "seconds": round((cordoned.at - at).total_seconds(), 3)})
        to_replace = []
        for new_id, old_id in run.replacements.items():
            fault = next((i for i in run.injections if i["node"] == old_id), None)
            new = nodes.get(new_id)
            ready = next((t.at for t in (new.transitions if new else [])
                          if t.to_state is NodeState.READY), None)
            if fault is not None and ready is not None:
                to_replace.append({"node": old_id, "replacement": new_id, "seconds": round(
                    (ready - datetime.fromisoformat(fault["wall"])).total_seconds(), 3)})
        for status in nodes.values():
            for t in status.transitions if status else []:
                if t.detail.startswith("rule "):
                    rules[t.detail.removeprefix("rule ")] += 1
        failed = run.failures + [f"assertion {r['type']} {r['target']}: expected "
                                 f"{r['expected']}, got {r['actual']}"
                                 for r in results if not r["passed"]]
        return {
            "scenario": scenario.name, "description": scenario.description,
            "clock": "wall clock of a real Temporal dev server (not skipped: every node's "
                     "health watch is always in flight)",
            "duration_s": run.t(), "passed": not failed, "failures": failed,
            "events": run.log, "assertions": results,
            "fault_to_cordon": to_cordon, "fault_to_replacement": to_replace,
            "rules_fired": dict(rules),
            "notes": run.notes,
            "timeline": run.timeline,
            "nodes": {node_id: None if s is None else {
                "status": go_status(s), "state": s.state.value, "health": s.health.value,
                "zone": s.zone,
                "rule": s.health_rule,
                "transitions": [t.model_dump(mode="json") for t in s.transitions]}
                for node_id, s in nodes.items()},
        }


class _Chaos:
    """A stress block's chaos: Poisson failures at `failure_rate`, each possibly cascading
    to neighbours in its scope, scheduled outages, and recoveries of non-fatal failures."""

    def __init__(self, sim: Simulator, run: Run, config: ChaosConfig,
                 rng: random.Random) -> None:
        self.sim, self.run, self.config, self.rng = sim, run, config, rng
        self.types = ({t.type: t.weight for t in config.failure_types}
                      if config.failure_types else {"xid_error": 1})
        self.xids = config.xid_distribution or {79: 1}
        self.failed: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.nodes = {n.id: n for n in run.scenario.fleet}
        self.racks = _racks(run.scenario.fleet)
        self.approved: set[str] = set()  # repairs approved (replace_fatal)
        self.replaced: set[str] = set()  # ... and replaced, once the node left
        self.cold_start: Callable[[], float | None] = lambda: None  # set by run_stress

    async def tick(self) -> None:
        """One second of random failures (and replacements, with `replace_fatal`)."""
        if self.config.replaces_fatal():
            await self._replace_unhealthy()
        expected = self.config.failure_rate * len(self.nodes) / 1000 / 60
        for _ in range(_poisson(self.rng, expected)):
            healthy = [n for n in self.nodes if n not in self.failed]
            if not healthy:
                return
            victim = healthy[self.rng.randrange(len(healthy))]
            await self.fail(victim, _weighted(self.rng, self.types), _weighted(self.rng, self.xids))

    async def fail(self, victim: str, kind: str, xid: int | None, *, cause: str = "random",
                   depth: int = 0, note: str = "") -> None:
        run = self.run
        event = Event.model_validate({
            "at": f"{run.t()}s", "action": "inject_failure", "target": victim,
            "params": {"failure_type": kind, "xid_code": xid,
                       "gpu_index": self.rng.randrange(8), "message": note}})
        outcome = await self.sim._act(run, event, cause)
        self.failed.add(victim)
        run.log.append({"at": run.t(), "scheduled": run.t(), "action": "inject_failure",
                        "target": victim, "outcome": outcome + (f" ({note})" if note else "")})
        if cause != "outage":
            self._maybe_recover(victim, kind, xid)
            self._maybe_cascade(victim, depth)
        if cause != "correlated":
            self._maybe_correlate(victim, kind, xid)

    def _maybe_correlate(self, victim: str, kind: str, xid: int | None) -> None:
        """`correlated_failures` whose trigger matches this failure (its Xid code or its
        type) follow it; their own failures trigger nothing further."""
        for rule in self.config.correlated_failures:
            if rule.trigger not in (kind, str(xid)) or self.rng.random() >= rule.probability:
                continue
            if rule.scope == "same_node":
                target: str | None = victim
            else:
                scope = {"same_rack": "rack", "same_zone": "zone", "random": "random"}[rule.scope]
                pool = [n for n in self.nodes if n != victim and n not in self.failed
                        and self._same_scope(victim, n, scope)]
                target = self.rng.choice(pool) if pool else None
            if target is None:
                continue
            response, code = (("xid_error", int(rule.response)) if rule.response.isdigit()
                               else (rule.response, None))
            if response == "xid_error" and code is None:
                code = _weighted(self.rng, self.xids)
            self.tasks.append(asyncio.create_task(self._correlated_later(
                target, (rule.delay or timedelta(0)).total_seconds(), response, code,
                rule.name or f"{rule.trigger}→{rule.response}", victim)))

    async def _correlated_later(self, target: str, delay: float, kind: str, xid: int | None,
                                name: str, source: str) -> None:
        await asyncio.sleep(delay)
        await self.fail(target, kind, xid, cause="correlated",
                        note=f"correlated {name} after {source}")

    async def _replace_unhealthy(self) -> None:
        """As a pool would: approve the repair of every node awaiting one and, once the
        node has left (a node that came back in time stays, and gets no replacement),
        start a new node in its place (`<id>-r1`, `-r2`, ...)."""
        from navarch.node_api import NodeInput

        run = self.run
        for node_id, status in list(run.latest.items()):
            if status.awaiting_repair and node_id not in self.approved:
                self.approved.add(node_id)
                await self.sim._signal(node_id, "approve_repair", None)
        waiting = sorted(self.approved - self.replaced)
        for node_id, left in zip(waiting, await self.sim._statuses(waiting), strict=True):
            if left is None or not left.state.is_terminal():
                continue
            self.replaced.add(node_id)
            base, _, n = node_id.partition("-r")
            new_id = f"{base}-r{int(n) + 1 if n.isdigit() else 1}"
            new = self.nodes[node_id].model_copy(update={"id": new_id})
            run.scenario.fleet.append(new)
            self.nodes[new_id] = new
            self.racks[new_id] = self.racks[node_id]
            run.replacements[new_id] = node_id
            recovery = self.config.recovery
            cold = (recovery.replace_cold_start.total_seconds()
                    if recovery and recovery.replace_cold_start is not None
                    else self.cold_start())
            if cold is not None:
                await asyncio.to_thread(self.sim.world.set_cold_start, new_id, cold)
                run.cold_starts.append(cold)
            await self.sim.client.start_workflow(
                "NodeWorkflow", NodeInput(node_id=new_id, spec=node_spec(run.scenario, new_id),
                                          replacement_of=node_id),
                id=node_workflow_id(new_id), task_queue=self.sim.task_queue)
            run.log.append({"at": run.t(), "scheduled": run.t(), "action": "replace",
                            "target": node_id,
                            "outcome": f"repair approved, {left.state.value}; {new_id} "
                                       "started"})

    def _maybe_recover(self, victim: str, kind: str, xid: int | None) -> None:
        recovery = self.config.recovery
        info = lookup(xid or 0)
        fatal = kind == "xid_error" and info is not None and info.verdict == "unhealthy"
        if recovery and recovery.enabled and not fatal and self.rng.random() < recovery.probability:
            mean = (recovery.mean_time or timedelta(seconds=30)).total_seconds()
            std = (recovery.std_dev or timedelta(seconds=mean / 4)).total_seconds()
            self.tasks.append(asyncio.create_task(
                self._recover_later(victim, max(0.0, self.rng.gauss(mean, std)))))

    async def _recover_later(self, node_id: str, after: float) -> None:
        await asyncio.sleep(after)
        await self.recover(node_id)

    async def recover(self, node_id: str, note: str = "") -> None:
        run = self.run
        outcome = await self.sim._act(run, Event.model_validate(
            {"at": f"{run.t()}s", "action": "recover_failure", "target": node_id}))
        self.failed.discard(node_id)
        # A node replaced meanwhile is gone: its faults clear, but nothing recovered.
        gone = node_id in self.replaced
        run.log.append({"at": run.t(), "scheduled": run.t(),
                        "action": "failure_cleared" if gone else "recover_failure",
                        "target": node_id,
                        "outcome": outcome + (f" ({note})" if note else "")
                        + ("; already replaced" if gone else "")})

    def _maybe_cascade(self, source: str, depth: int) -> None:
        """With `probability`, Xid failures on 1..max_affected_percent of the nodes in
        the source's scope, each after a delay in [min_delay, max_delay), each of which
        may cascade again up to `max_depth`."""
        cascade = self.config.cascading
        if (cascade is None or not cascade.enabled or depth >= cascade.max_depth
                or self.rng.random() >= cascade.probability):
            return
        candidates = [n for n in self.nodes if n != source and n not in self.failed
                      and self._same_scope(source, n, cascade.scope)]
        if not candidates:
            return
        most = max(1, int(len(candidates) * cascade.max_affected_share()))
        low = (cascade.min_delay or timedelta(0)).total_seconds()
        high = (cascade.max_delay or timedelta(0)).total_seconds()
        high = high if high > low else low + 1.0  # as the Go simulator: a 1 s window
        for target in self.rng.sample(candidates, min(len(candidates),
                                                      1 + self.rng.randrange(most))):
            delay = self.rng.uniform(low, high)
            xid = _weighted(self.rng, self.xids)
            self.tasks.append(asyncio.create_task(self._cascade_later(
                target, delay, xid, source, depth + 1)))

    async def _cascade_later(self, target: str, delay: float, xid: int, source: str,
                             depth: int) -> None:
        await asyncio.sleep(delay)
        if target not in self.failed:
            await self.fail(target, "xid_error", xid, cause="cascade", depth=depth,
                            note=f"cascade from {source}, depth {depth}")

    def _same_scope(self, a: str, b: str, scope: str) -> bool:
        x, y = self.nodes[a], self.nodes[b]
        if scope == "rack":
            return self.racks[a] == self.racks[b]
        if scope == "zone":
            return (x.provider, x.region, x.zone) == (y.provider, y.region, y.zone)
        if scope == "region":
            return (x.provider, x.region) == (y.provider, y.region)
        if scope == "provider":
            return x.provider == y.provider
        return True  # random

    async def outage(self, outage: ScheduledOutage) -> None:
        """At `start_time`, every node in the scope gets `failure_type` (an Xid is 79);
        after `duration` they are cleared."""
        run = self.run
        await asyncio.sleep(max(0.0, outage.start_time.total_seconds() - run.t()))
        name = outage.name or f"{outage.scope} {outage.target}"
        if outage.scope == "percentage":
            share = float(outage.target.rstrip("%")) / 100
            hit = [n for n in self.nodes if self.rng.random() < share]
        else:
            field = {"zone": "zone", "region": "region", "provider": "provider"}[outage.scope]
            hit = [n for n, node in self.nodes.items() if getattr(node, field) == outage.target]
        self.sim.say(f"  [{run.t():7.2f}s] outage {name}: {len(hit)} node(s), "
                     f"{outage.failure_type} for {outage.duration}")
        run.log.append({"at": run.t(), "scheduled": outage.start_time.total_seconds(),
                        "action": "outage", "target": name,
                        "outcome": f"{len(hit)} node(s): {outage.failure_type}"})
        for node_id in hit:
            await self.fail(node_id, outage.failure_type,
                            79 if outage.failure_type == "xid_error" else None,
                            cause="outage", note=f"outage {name}")
        await asyncio.sleep(outage.duration.total_seconds())
        for node_id in hit:
            await self.recover(node_id, note=f"outage {name} over")


def _racks(fleet: list[FleetNode]) -> dict[str, str]:
    """A node's rack: its `rack` label, or else blocks of RACK_SIZE nodes of one zone in
    fleet order."""
    racks: dict[str, str] = {}
    seen: Counter[tuple[str, str, str]] = Counter()
    for node in fleet:
        zone = (node.provider, node.region, node.zone)
        racks[node.id] = node.labels.get("rack") or f"{'/'.join(zone)}#{seen[zone] // RACK_SIZE}"
        seen[zone] += 1
    return racks


def _poisson(rng: random.Random, mean: float) -> int:
    """How many events happen in one interval with this mean (Knuth's method)."""
    limit, k, product = pow(2.718281828459045, -mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0] if keys else None


def generate_fleet(gen: FleetGen, rng: random.Random) -> list[FleetNode]:
    """`stress.fleet_gen` made concrete: templates by weight, providers and regions by their
    percentages, a zone of the region."""
    out = []
    templates = {i: t.weight for i, t in enumerate(gen.templates)}
    for i in range(gen.total_nodes):
        template = gen.templates[_weighted(rng, templates)]
        region = _weighted(rng, gen.regions) or ""
        zones = gen.zones.get(region, [])
        out.append(FleetNode(
            id=f"node-{i + 1:04d}", provider=_weighted(rng, gen.providers) or "fake",
            region=region, zone=rng.choice(zones) if zones else "",
            instance_type=template.instance_type, gpu_count=template.gpu_count,
            gpu_type=template.gpu_type, labels=dict(template.labels)))
    return out


def start_offsets(gen: FleetGen, rng: random.Random) -> list[float]:
    """When each generated node starts, in seconds from the run's start."""
    n, span = gen.total_nodes, (gen.startup.duration or timedelta(0)).total_seconds()
    pattern = gen.startup.pattern
    if pattern == "instant" or span == 0:
        base = [0.0] * n
    elif pattern == "linear":
        base = [span * i / n for i in range(n)]
    elif pattern == "exponential":
        base = [span * (2 ** (i / max(n - 1, 1)) - 1) for i in range(n)]
    else:  # wave: batches at equal intervals
        size = gen.startup.batch_size or max(1, n // 5)
        waves = max(1, -(-n // size))
        base = [span * (i // size) / waves for i in range(n)]
    jitter = gen.startup.jitter_percent / 100
    return [max(0.0, t + rng.uniform(-jitter, jitter) * (span / max(n, 1))) for t in base]


def cold_start(startup: StartupConfig, rng: random.Random) -> float | None:
    """Seconds a node's machine takes to come up, drawn from the startup's cold-start
    settings (None: none set, the fake cloud's usual boot time)."""
    low, high = startup.cold_start_min, startup.cold_start_max
    mean, spread = startup.cold_start_mean, startup.cold_start_stddev
    if mean is not None:
        value = rng.gauss(mean.total_seconds(), spread.total_seconds() if spread else 0.0)
    elif high is not None:
        value = rng.uniform(low.total_seconds() if low else 0.0, high.total_seconds())
    elif low is not None:
        value = low.total_seconds()
    else:
        return None
    if low is not None:
        value = max(value, low.total_seconds())
    if high is not None:
        value = min(value, high.total_seconds())
    return max(0.0, value)


def longest_cold_start(scenario: Scenario) -> float:
    """The longest cold start a scenario's nodes may have: their boot deadline allows it."""
    stress = scenario.stress
    if stress is None or stress.fleet_gen is None:
        return 0.0
    startup = stress.fleet_gen.startup
    longest = 0.0
    if startup.cold_start_max is not None:
        longest = startup.cold_start_max.total_seconds()
    elif startup.cold_start_mean is not None:
        spread = startup.cold_start_stddev.total_seconds() if startup.cold_start_stddev else 0
        longest = startup.cold_start_mean.total_seconds() + 4 * spread
    elif startup.cold_start_min is not None:
        longest = startup.cold_start_min.total_seconds()
    recovery = stress.chaos.recovery if stress.chaos else None
    if recovery is not None and recovery.replace_cold_start is not None:
        longest = max(longest, recovery.replace_cold_start.total_seconds())
    return longest


def new_task_queue() -> str:
    return f"navarch-sim-{uuid.uuid4().hex[:8]}"
