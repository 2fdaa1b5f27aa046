"""A stress block's chaos: random failures at a rate, cascades to neighbours in a scope,
correlated failures, scheduled outages, recoveries, and replacement of fatal nodes. It acts
through the runner's `Actions`, so a test can stand in for the real workflows."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from navarch.contracts.base import SignalModel
from navarch.contracts.node import NodeStatus
from navarch.health.xid import lookup
from navarch.sim.fakeworld import FakeWorld
from navarch.sim.fleet import weighted
from navarch.sim.run import Run
from navarch.sim.scenario import ChaosConfig, Event, FleetNode, ScheduledOutage

RACK_SIZE = 8  # machines per rack, where the fleet's nodes carry no `rack` label


class Actions(Protocol):
    """What the chaos asks of the simulator."""

    world: FakeWorld

    def say(self, line: str) -> None: ...

    async def act(self, run: Run, event: Event, cause: str = "scenario") -> str: ...

    async def signal(self, node_id: str, name: str,
                     payload: SignalModel | None = None) -> None: ...

    async def statuses(self, node_ids: list[str]) -> list[NodeStatus | None]: ...

    async def start_node(self, run: Run, node_id: str, *,
                         replacement_of: str | None = None) -> None: ...


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


class Chaos:
    """A stress block's chaos: Poisson failures at `failure_rate`, each possibly cascading
    to neighbours in its scope, scheduled outages, and recoveries of non-fatal failures."""

    def __init__(self, sim: Actions, run: Run, config: ChaosConfig,
                 rng: random.Random) -> None:
        self.sim, self.run, self.config, self.rng = sim, run, config, rng
        self.types = ({t.type: t.weight for t in config.failure_types}
                      if config.failure_types else {"xid_error": 1})
        self.xids = config.xid_distribution or {79: 1}
        self.failed: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.nodes = {n.id: n for n in run.scenario.fleet}
        self.racks = racks(run.scenario.fleet)
        self.approved: set[str] = set()  # repairs approved (replace_fatal)
        self.replaced: set[str] = set()  # ... and replaced, once the node left
        self.cold_start: Callable[[], float | None] = lambda: None  # set by run_stress

    async def tick(self) -> None:
        """One second of random failures (and replacements, with `replace_fatal`)."""
        if self.config.replaces_fatal():
            await self._replace_unhealthy()
        expected = self.config.failure_rate * len(self.nodes) / 1000 / 60
        for _ in range(poisson(self.rng, expected)):
            healthy = [n for n in self.nodes if n not in self.failed]
            if not healthy:
                return
            victim = healthy[self.rng.randrange(len(healthy))]
            await self.fail(victim, weighted(self.rng, self.types), weighted(self.rng, self.xids))

    async def fail(self, victim: str, kind: str, xid: int | None, *, cause: str = "random",
                   depth: int = 0, note: str = "") -> None:
        run = self.run
        event = Event.model_validate({
            "at": f"{run.t()}s", "action": "inject_failure", "target": victim,
            "params": {"failure_type": kind, "xid_code": xid,
                       "gpu_index": self.rng.randrange(8), "message": note}})
        outcome = await self.sim.act(run, event, cause)
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
                code = weighted(self.rng, self.xids)
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
        run = self.run
        for node_id, status in list(run.latest.items()):
            if status.awaiting_repair and node_id not in self.approved:
                self.approved.add(node_id)
                await self.sim.signal(node_id, "approve_repair")
        waiting = sorted(self.approved - self.replaced)
        for node_id, left in zip(waiting, await self.sim.statuses(waiting), strict=True):
            if left is not None and left.state.is_schedulable() and not left.awaiting_repair:
                # Repaired in place (the repair ladder): back in service, and may fail again.
                self.approved.discard(node_id)
                self.failed.discard(node_id)
                continue
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
            await self.sim.start_node(run, new_id, replacement_of=node_id)
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
        outcome = await self.sim.act(run, Event.model_validate(
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
            xid = weighted(self.rng, self.xids)
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
        """At `start_time`, every node in the scope gets `failure_type` (an Xid is 79 unless
        the outage names its `xid_code`); after `duration` they are cleared."""
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
                            (outage.xid_code or 79) if outage.failure_type == "xid_error"
                            else None,
                            cause="outage", note=f"outage {name}")
        await asyncio.sleep(outage.duration.total_seconds())
        for node_id in hit:
            await self.recover(node_id, note=f"outage {name} over")


def racks(fleet: list[FleetNode]) -> dict[str, str]:
    """A node's rack: its `rack` label, or else blocks of RACK_SIZE nodes of one zone in
    fleet order."""
    racks: dict[str, str] = {}
    seen: Counter[tuple[str, str, str]] = Counter()
    for node in fleet:
        zone = (node.provider, node.region, node.zone)
        racks[node.id] = node.labels.get("rack") or f"{'/'.join(zone)}#{seen[zone] // RACK_SIZE}"
        seen[zone] += 1
    return racks


def poisson(rng: random.Random, mean: float) -> int:
    """How many events happen in one interval with this mean (Knuth's method)."""
    limit, k, product = pow(2.718281828459045, -mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k
