"""From a reboot-class GPU fault to capacity back in service: the repair ladder (reboot the
machine, validate it, return it) against replacement (terminate, provision, cold-start a new
machine, boot-check it), in one run on the real workflows (dev server, fake cloud, simulated
hosts).

Two pools, each of --nodes nodes, come up quickly; then every machine made from then on
takes --cold-start seconds to boot, a reboot takes --reboot seconds, and a simulated DCGM
run --validation seconds. The same Xid (151, RESTART_VM in NVIDIA's catalog) hits every
node of both pools at once. The ladder pool allows [reset, reboot, replace] (the Xid's
first rung is a reboot); the other allows only [replace], as a Go config does. Each fault's
time is from the moment it was written to the node's `repaired` transition (ladder) or to
its replacement's `ready` (replace), both on the server's clock.

    python benchmarks/repair_ladder.py [--nodes 4] [--reboot 180] [--cold-start 480]
                                       [--validation 120]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from harness import Fleet, fleet, pool_spec, report, run_and_exit, summary, until

from navarch.config.schema import DiagnosticCheck, HealthConfig
from navarch.contracts.node import NodeState, TransitionReason

XID = 151


def health(rungs: list[str], reboot: float, cold_start: float) -> HealthConfig:
    # Every repair approved at once (the valve would pause a pool losing all its nodes).
    return HealthConfig.model_validate({
        "unhealthy_after": 1, "unreachable_toleration": timedelta(seconds=30),
        "drain_grace": timedelta(seconds=1), "max_unhealthy_share": 1.0,
        "unhealthy_window": timedelta(seconds=1), "remediation": rungs,
        "reboot_timeout": timedelta(seconds=reboot * 2 + 60),
        "validation": [DiagnosticCheck(kind="dcgm", level=2)]})


async def back_by_repair(f: Fleet, node_id: str, written: datetime, within: float) -> float:
    status = await until(lambda: f.node(node_id), lambda s: any(
        t.reason is TransitionReason.REPAIRED for t in s.transitions), within=within,
        interval=0.5)
    done = next(t.at for t in status.transitions if t.reason is TransitionReason.REPAIRED)
    return (done - written).total_seconds()


async def back_by_replacement(f: Fleet, pool: str, victim: str, written: datetime,
                              within: float) -> float:
    status = await until(lambda: f.pool(pool), lambda s: any(
        n.replacement_of == victim for n in s.nodes), within=within, interval=0.5)
    new = next(n.node_id for n in status.nodes if n.replacement_of == victim)
    node = await until(lambda: f.node(new), lambda s: s.state is NodeState.READY,
                       within=within, interval=0.5)
    ready = next(t.at for t in node.transitions if t.to_state is NodeState.READY)
    return (ready - written).total_seconds()


async def main(args: argparse.Namespace) -> int:
    async with fleet(boot_seconds=0.2) as f:
        f.world.simulate_diagnostics()
        common: dict[str, Any] = {"heartbeat_timeout": timedelta(seconds=30),
                                  "boot_deadline": timedelta(seconds=args.cold_start + 300)}
        ladder = pool_spec(args.nodes, health=health(["reset", "reboot", "replace"],
                                                     args.reboot, args.cold_start), **common)
        replace = pool_spec(args.nodes, health=health(["replace"], args.reboot,
                                                      args.cold_start), **common)
        for spec in (ladder, replace):
            await f.start_pool(spec)
        for spec in (ladder, replace):
            await until(functools.partial(f.pool, spec.name),
                        lambda p: p.ready == args.nodes, within=120)
        f.world.set_boot_seconds(args.cold_start)
        f.world.set_reboot_seconds(args.reboot)
        f.world.set_diagnostic_seconds(args.validation)
        victims = {spec.name: [n.node_id for n in (await f.pool(spec.name)).nodes]
                   for spec in (ladder, replace)}
        written = datetime.now(UTC)
        for nodes in victims.values():
            for node_id in nodes:
                f.world.inject(node_id, "xid", value=XID)
        within = args.cold_start + args.reboot + args.validation + 600
        repaired, replaced = await asyncio.gather(
            asyncio.gather(*(back_by_repair(f, n, written, within)
                             for n in victims[ladder.name])),
            asyncio.gather(*(back_by_replacement(f, replace.name, n, written, within)
                             for n in victims[replace.name])))
        ladder_nodes = [await f.node(n) for n in victims[ladder.name]]
        report("repair_ladder", {
            "nodes_per_pool": args.nodes, "xid": XID, "reboot_s": args.reboot,
            "cold_start_s": args.cold_start, "validation_s": args.validation,
            "ladder_fault_to_service_s": summary(list(repaired)),
            "replace_fault_to_service_s": summary(list(replaced)),
            "ladder_rungs": sorted({f"{r.rung}:{r.outcome}" for n in ladder_nodes
                                    for r in n.repairs}),
            "machines_made": f.world.counter("provisioned"),
            "reboots": f.world.counter("reboots"),
            "speedup_p50": round(summary(list(replaced))["p50"]
                                 / max(summary(list(repaired))["p50"], 1e-9), 2),
        })
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--reboot", type=float, default=180.0,
                        help="seconds a reboot takes (8-GPU cloud machines: minutes)")
    parser.add_argument("--cold-start", type=float, default=480.0,
                        help="seconds a new machine takes from the launch to a running host")
    parser.add_argument("--validation", type=float, default=120.0,
                        help="seconds the simulated DCGM level 2 run takes")
    run_and_exit(main(parser.parse_args()))
