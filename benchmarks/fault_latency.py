"""How fast a GPU fault turns into action, on the real workflows (dev server, simulated hosts):

1. Xid 79 written → node `cordoned`, one node at a time: p50 / p99 over --trials.
2. The same with --burst nodes failing at once: p50 / p90.
3. Xid written → the replacement's instance requested at the (fake) cloud.

Latencies are taken from the node's own transition times (server clock) against the moment
the fault was written, not from polling. Figures print and go to results/fault_latency.json.

    python benchmarks/fault_latency.py [--trials 50] [--burst 150] [--hosts shared]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from harness import (
    Fleet,
    cordon_latency,
    fleet,
    pool_spec,
    repairs_at_once,
    report,
    run_and_exit,
    summary,
    until,
)

from navarch.contracts.node import NodeState
from navarch.sim.fakeworld import FakeInstance


async def _replacement_requested(f: Fleet, pool: str, victim: str, written: datetime) -> float:
    status = await until(lambda: f.pool(pool),
                         lambda s: any(n.replacement_of == victim for n in s.nodes), within=60)
    new = next(n.node_id for n in status.nodes if n.replacement_of == victim)
    inst: FakeInstance | None = await until(
        lambda: asyncio.to_thread(f.world.get_by_node, new), lambda i: i is not None,
        within=60)
    assert inst is not None
    return inst.created_at - written.timestamp()


async def single(trials: int) -> dict[str, object]:
    async with fleet() as f:
        spec = pool_spec(10, health=repairs_at_once())
        await f.start_pool(spec)
        await until(lambda: f.pool(spec.name), lambda s: s.ready == 10, within=120)
        hit: set[str] = set()
        cordon, replace = [], []
        for _ in range(trials):
            status = await until(lambda: f.pool(spec.name),
                                 lambda s: any(n.state is NodeState.READY and n.node_id not in hit
                                               for n in s.nodes), within=120)
            victim = next(n.node_id for n in status.nodes
                          if n.state is NodeState.READY and n.node_id not in hit)
            hit.add(victim)
            await asyncio.sleep(0.6)  # the agent's watch is on its half-second poll
            written = datetime.now(UTC)
            await asyncio.to_thread(f.world.inject, victim, "xid", value=79)
            cordon.append(await cordon_latency(f, victim, written))
            replace.append(await _replacement_requested(f, spec.name, victim, written))
        return {"xid_to_cordoned_s": summary(cordon), "xid_to_replacement_requested_s":
                summary(replace)}


async def burst(nodes: int, hosts: str) -> dict[str, object]:
    async with fleet(host_mode=hosts) as f:
        spec = pool_spec(nodes, health=repairs_at_once())
        await f.start_pool(spec)
        started = time.monotonic()
        status = await until(lambda: f.pool(spec.name), lambda s: s.ready == nodes,
                             within=600, interval=0.5)
        ready_s = time.monotonic() - started
        await asyncio.sleep(2)
        victims = [n.node_id for n in status.nodes if n.state is NodeState.READY]
        written: dict[str, datetime] = {}
        for node_id in victims:  # each fault timed from its own write
            written[node_id] = datetime.now(UTC)
            await asyncio.to_thread(f.world.inject, node_id, "xid", value=79)
        # Watch the pool's view, not 1,000 nodes at once (their queries would load the very
        # worker being measured); then read each node's own transition time.
        hit = set(victims)
        await until(lambda: f.pool(spec.name),
                    lambda s: not any(n.node_id in hit and n.state is NodeState.READY
                                      for n in s.nodes), within=300, interval=0.5)
        latencies = [await cordon_latency(f, n, written[n]) for n in victims]
        return {"burst_nodes": len(victims), "pool_ready_s": round(ready_s, 2),
                "burst_xid_to_cordoned_s": summary(latencies)}


async def main(trials: int, burst_nodes: int, hosts: str) -> None:
    figures: dict[str, object] = {"trials": trials, "burst_hosts": hosts}
    if trials:
        figures.update(await single(trials))
    if burst_nodes:
        figures.update(await burst(burst_nodes, hosts))
    report("fault_latency", figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--burst", type=int, default=150)
    parser.add_argument("--hosts", choices=("per-host", "shared"), default="per-host",
                        help="the burst's simulated hosts: a worker each (default) or one "
                             "worker serving them all (a 1,000-node burst)")
    args = parser.parse_args()
    run_and_exit(main(args.trials, args.burst, args.hosts))
