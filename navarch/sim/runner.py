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
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.service import RPCError

from navarch.config.schema import DiagnosticCheck, HealthConfig
from navarch.contracts.base import SignalModel
from navarch.contracts.names import SA_NODE_STATE, SA_POOL, SA_VERDICT, node_workflow_id
from navarch.contracts.node import (
    CordonInput,
    DrainInput,
    NodeInput,
    NodeState,
    NodeStatus,
    TerminateInput,
    TransitionReason,
)
from navarch.contracts.spec import PoolSpec, ProviderChoice
from navarch.health.events import HealthResult
from navarch.sim.chaos import Chaos, zone_notes
from navarch.sim.fakeworld import FakeWorld
from navarch.sim.fleet import cold_start, generate_fleet, longest_cold_start, start_offsets
from navarch.sim.run import Run
from navarch.sim.scenario import (
    Event,
    Scenario,
    diagnostic_check,
    go_status,
    go_word,
    matches,
)

DEFAULT_WAIT_TIMEOUT = timedelta(seconds=30)
DIAGNOSTIC_TIMEOUT = timedelta(minutes=2)  # a scenario's run_diagnostic, end to end
SAMPLE_SECONDS = 0.5
# Above this many nodes the timeline is sampled from the nodes' search attributes (one
# listing) every LARGE_SAMPLE_SECONDS instead of a query to every node.
LARGE_FLEET = 200
LARGE_SAMPLE_SECONDS = 2.0
MAX_SUSPECTS = 100  # nodes that may await repair, queried per sample
# Fault kinds of the fake world for each scenario failure type.
_FAULTS = {"xid_error": "xid", "temperature": "temperature", "nvml_failure": "nvml_failure",
           "backend_error": "nvml_failure", "device_error": "pcie", "memory_error": "ecc_dbe",
           "nvlink_error": "nvlink"}
_SILENCING = {"network", "boot_failure"}  # the host's agent stops answering


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
                            drain_grace=timedelta(seconds=5),
                            **({"remediation": scenario.repair.remediation,
                                "reboot_timeout": scenario.repair.reboot_time + boot}
                               if scenario.repair else {})),
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

    async def signal(self, node_id: str, name: str, payload: SignalModel | None = None) -> None:
        handle = self.client.get_workflow_handle(node_workflow_id(node_id))
        if payload is None:
            await handle.signal(name)
        else:
            await handle.signal(name, payload)

    async def start_node(self, run: Run, node_id: str, *,
                         replacement_of: str | None = None) -> None:
        """A production NodeWorkflow for one of the scenario's nodes."""
        await self.client.start_workflow(
            "NodeWorkflow", NodeInput(node_id=node_id, spec=node_spec(run.scenario, node_id),
                                      replacement_of=replacement_of),
            id=node_workflow_id(node_id), task_queue=self.task_queue,
            static_summary=f"scenario {run.scenario.name} · {node_id}")

    async def _start(self, run: Run) -> None:
        for node in run.scenario.fleet:
            await self.start_node(run, node.id)

    async def act(self, run: Run, event: Event, cause: str = "scenario") -> str:
        p, target = event.params, event.target
        if event.action == "start_fleet":
            await self._start(run)
            return f"started {len(run.scenario.fleet)} node(s)"
        if event.action == "stop_fleet":
            for node in run.scenario.fleet:
                await self.signal(node.id, "terminate",
                                  TerminateInput(reason="scenario: stop_fleet"))
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
            reason = str(p.command_args.get("reason") or f"scenario: {command}")
            payload: SignalModel = (
                DrainInput(reason=reason,
                           grace_seconds=float(p.command_args.get("grace_seconds", 5)))
                if command == "drain" else
                CordonInput(reason=reason) if command == "cordon" else
                TerminateInput(reason=reason))
            await self.signal(target, command, payload)
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
        from navarch.contracts.diagnostics import DiagnosticsInput, DiagnosticsReport

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
                    state, verdict = attrs.get(SA_NODE_STATE), attrs.get(SA_VERDICT)
                    if state is None:
                        continue
                    seen += 1
                    word = go_word(NodeState(state), HealthResult(verdict or "healthy"))
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
            for node_id, status in zip(suspects, await self.statuses(suspects), strict=True):
                if status is not None:
                    run.latest[node_id] = status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LARGE_SAMPLE_SECONDS)

    async def statuses(self, node_ids: list[str]) -> list[NodeStatus | None]:
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
                outcome = await self.act(run, event)
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
                await self.start_node(run, node.id)
            run.log.append({"at": run.t(), "scheduled": 0.0, "action": "start_fleet",
                            "target": "", "outcome": f"{len(scenario.fleet)} node(s) started"})
            self.say(f"  [{run.t():7.2f}s] {len(scenario.fleet)} node(s) started "
                     f"({stress.fleet_gen.startup.pattern})")
            chaos = stress.chaos
            chaos_run = None
            if chaos is not None and chaos.enabled:
                chaos_run = Chaos(self, run, chaos, rng)
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
        nodes: dict[str, NodeStatus | None] = dict(zip(ids, await self.statuses(ids),
                                                       strict=True))
        results = []
        for a in scenario.assertions:
            if a.type == "node_count":
                # At least this many responsive nodes (live, agent heard from) in the fleet
                # (no target, or the Go files' `all`), or among those matching `target`:
                # what the Go files' comments say they mean.
                live = sum(1 for s in nodes.values()
                           if s is not None and not s.state.is_terminal()
                           and s.state is not NodeState.UNREACHABLE
                           and (a.target in ("", "all") or matches(s, a.target)))
                ok, seen = live >= int(a.expected), str(live)
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
                if t.detail.startswith("rule ") and t.reason in (TransitionReason.UNHEALTHY,
                                                                 TransitionReason.DEGRADED):
                    rules[t.detail.removeprefix("rule ").split(";")[0]] += 1
        failed = run.failures + [f"assertion {r['type']} {r['target']}: expected "
                                 + ("at least " if r["type"] == "node_count" else "")
                                 + f"{r['expected']}, got {r['actual']}"
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


def new_task_queue() -> str:
    return f"navarch-sim-{uuid.uuid4().hex[:8]}"
