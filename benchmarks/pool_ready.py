"""Time for a pool to reach `ready` on the fake cloud: every node provisioned, booted (its
simulated host's agent registered), boot-checked and watching — on the real workflows and a
real dev server. Figures print and go to results/pool_ready.json.

    python benchmarks/pool_ready.py [--nodes 100] [--boot-seconds 0.2] [--hosts shared]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from harness import fleet, pool_spec, report, run_and_exit, summary, until

from navarch.contracts.node import NodeState


async def main(nodes: int, boot_seconds: float, hosts: str) -> None:
    async with fleet(boot_seconds=boot_seconds, host_mode=hosts) as f:
        spec = pool_spec(nodes)
        started = time.monotonic()
        await f.start_pool(spec)
        firsts: dict[int, float] = {}
        status = None
        while True:
            status = await f.pool(spec.name)
            for mark in (1, nodes // 2, nodes):
                if status.ready >= mark and mark not in firsts:
                    firsts[mark] = round(time.monotonic() - started, 2)
            if status.ready >= nodes:
                break
            await asyncio.sleep(0.2)
        per_node = []
        for n in status.nodes:
            node = await f.node(n.node_id)
            ready = next(t.at for t in node.transitions if t.to_state is NodeState.READY)
            per_node.append((ready - node.transitions[0].at).total_seconds())
        figures = {"nodes": nodes, "boot_seconds": boot_seconds, "hosts": hosts,
                   "first_ready_s": firsts[1], "half_ready_s": firsts[max(1, nodes // 2)],
                   "all_ready_s": firsts[nodes], "node_created_to_ready_s": summary(per_node)}
        await until(lambda: f.pool(spec.name), lambda s: s.ready == nodes, within=10)
    report("pool_ready", figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--boot-seconds", type=float, default=0.2,
                        help="the fake cloud's boot time of an instance")
    parser.add_argument("--hosts", choices=("per-host", "shared"), default="per-host",
                        help="simulated hosts: a worker each, as real agents (default), or "
                             "one worker serving them all, as large fleets run")
    args = parser.parse_args()
    run_and_exit(main(args.nodes, args.boot_seconds, args.hosts))
