"""`navarch pool ...`: start, update, scale, inspect and delete pools, through
`navarch.client` (connection settings from the standard TEMPORAL_* environment and config
profiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from navarch.cli.common import ask, load_config_or_exit, show
from navarch.cli.output import Output, OutputOpt, err, out, print_data, print_table
from navarch.client import Navarch, TimedOut
from navarch.contracts.names import SWEEP_WORKFLOW_ID, pool_workflow_id
from navarch.contracts.pool import PoolStatus, PoolUpdateResult

pool_app = typer.Typer(help="Start, update and inspect pools.", no_args_is_help=True)


@pool_app.command("apply")
def pool_apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="config in the Navarch format")],
    no_wait: Annotated[bool, typer.Option("--no-wait", help="return once started")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for nodes")] = 600.0,
) -> None:
    """Start or update one PoolWorkflow per pool in the config, and the orphan sweep; wait
    until nodes are ready."""
    loaded = load_config_or_exit(file)

    async def run(fleet: Navarch) -> int:
        result = await fleet.apply(loaded)
        for name, what in result.pools.items():
            out.print(f"pool {name}: {what} (workflow {pool_workflow_id(name)})")
        out.print(f"orphan sweep: {result.sweep} (workflow {SWEEP_WORKFLOW_ID})")
        if no_wait:
            return 0
        with out.status("waiting for nodes...") as status:
            def progress(states: dict[str, PoolStatus]) -> None:
                status.update(_readiness(states))

            try:
                ready = await fleet.wait_ready(result.pools, within=timeout,
                                               progress=progress)
            except TimedOut as exc:
                err.print(f"timed out: {exc.reason}", markup=False)
                return 1
        out.print(_readiness(ready))
        return 0

    raise typer.Exit(ask(run))


def _readiness(states: dict[str, PoolStatus]) -> str:
    return ", ".join(f"{n}: {s.ready}/{s.target} ready" for n, s in states.items())


@pool_app.command("status")
def pool_status(name: str, output: OutputOpt = Output.table) -> None:
    """Nodes by state, recent events, whether repair is paused."""
    status = show(lambda fleet: fleet.pool(name).status(), output)
    if status is None:
        return
    out.print(f"pool {status.name}: target {status.target} "
              f"(min {status.min_nodes}, max {status.max_nodes}), {status.ready} ready, "
              f"{status.schedulable} schedulable")
    if status.repair_paused:
        out.print(f"[red]repair paused[/red]: {status.repair_paused_reason}")
    for state, count in sorted(status.counts.items()):
        out.print(f"  {state}: {count}")
    if status.autoscaler:
        seen = [f"utilization {status.utilization:g}%" if status.utilization is not None
                else "", f"queue {status.queue_depth}" if status.queue_depth is not None else ""]
        out.print(f"autoscaler {status.autoscaler}: {status.last_evaluation or 'not run yet'}"
                  + (f" ({', '.join(x for x in seen if x)})" if any(seen) else ""))
        for error in status.metrics_errors:
            out.print(f"  metrics: {error}", style="yellow", markup=False)
        for d in status.decisions[-5:]:
            out.print(f"  {d.at:%H:%M:%S} {d.from_target} → {d.to_target}  {d.reason}")
    out.print("recent events:")
    for event in status.events[-10:]:
        out.print(f"  {event.at:%H:%M:%S} {event.kind} {event.detail}", markup=False)


@pool_app.command("list")
def pool_list(output: OutputOpt = Output.table) -> None:
    """Running pools with their size, readiness and autoscaler."""
    pools = ask(lambda fleet: fleet.pools())
    rows = [{"pool": p.name, "target": p.target, "min_nodes": p.min_nodes,
             "max_nodes": p.max_nodes, "ready": p.ready, "nodes": sum(p.counts.values()),
             "autoscaler": p.autoscaler, "repair_paused": p.repair_paused,
             "deleting": p.deleting} for p in pools]
    if output.structured:
        print_data(rows, output)
        return
    if not rows:
        out.print("no pools running (start one with `navarch pool apply -f CONFIG`)")
        return
    table = Table(show_edge=False)
    for col in ("pool", "ready/target", "min-max", "nodes", "autoscaler", "repair"):
        table.add_column(col)
    for p in pools:
        repair = "[red]paused[/red]" if p.repair_paused else "on"
        table.add_row(p.name + (" (deleting)" if p.deleting else ""), f"{p.ready}/{p.target}",
                      f"{p.min_nodes}-{p.max_nodes}", str(sum(p.counts.values())),
                      p.autoscaler or "-", repair)
    print_table(table)


@pool_app.command("scale")
def pool_scale(
    name: str,
    target: Annotated[int, typer.Argument(min=0, help="nodes wanted")],
    min_nodes: Annotated[int | None, typer.Option("--min", min=0, help="new min_nodes")] = None,
    max_nodes: Annotated[int | None, typer.Option("--max", min=1, help="new max_nodes")] = None,
) -> None:
    """Set a pool's target (within min/max, which --min/--max may move). An autoscaler, if
    the pool has one, takes over again after its cooldown."""
    if min_nodes is not None and max_nodes is not None and min_nodes > max_nodes:
        err.print(f"error: --min {min_nodes} is above --max {max_nodes}")
        raise typer.Exit(2)

    async def run(fleet: Navarch) -> tuple[PoolStatus, PoolUpdateResult]:
        pool = fleet.pool(name)
        before = await pool.status()
        return before, await pool.scale(target, min_nodes=min_nodes, max_nodes=max_nodes)

    before, after = ask(run)
    out.print(f"pool {name}: target {before.target} → {after.target} "
              f"(min {after.min_nodes}, max {after.max_nodes})")
    if after.target != target:
        err.print(f"note: {target} is outside min {after.min_nodes} - max {after.max_nodes}; "
                  f"the target is {after.target}")


@pool_app.command("delete")
def pool_delete(
    name: str,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="return once asked")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the nodes")] = 1800.0,
) -> None:
    """Drain and terminate every node of a pool, then end its workflow (and its
    diagnostics schedule)."""

    async def run(fleet: Navarch) -> int:
        pool = fleet.pool(name)
        if await pool.delete():
            out.print(f"pool {name}: diagnostics schedule deleted")
        out.print(f"pool {name}: deleting (every node drains, then terminates)")
        if no_wait:
            return 0
        with out.status("draining...") as shown:
            def progress(status: PoolStatus) -> None:
                shown.update(f"{sum(status.counts.values())} node(s) left: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(status.counts.items())))

            try:
                await pool.delete(wait=True, within=timeout, progress=progress)
            except TimedOut:
                err.print(f"timed out; pool {name} is still deleting")
                return 1
        out.print(f"pool {name}: deleted")
        return 0

    raise typer.Exit(ask(run))
