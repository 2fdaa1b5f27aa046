"""`navarch pool ...`: start, update, scale, inspect and delete pools. Connection settings
come from the standard TEMPORAL_* environment and config profiles (navarch.temporal.client)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from navarch.cli.common import fail, load_config_or_exit, refusal, show
from navarch.cli.output import Output, OutputOpt, err, out, print_data, print_table
from navarch.contracts.names import CONTROL_PLANE_TASK_QUEUE, SWEEP_WORKFLOW_ID, pool_workflow_id
from navarch.contracts.pool import PoolInput, PoolStatus, PoolUpdateResult, ScaleInput
from navarch.contracts.spec import PoolSpec, build_pool_specs
from navarch.contracts.sweep import build_sweep_config
from navarch.temporal.client import connect
from navarch.temporal.schedules import apply_diagnostics_schedule, delete_diagnostics_schedule
from navarch.temporal.sweep import apply_sweep
from navarch.workflows.pool import PoolWorkflow

pool_app = typer.Typer(help="Start, update and inspect pools.", no_args_is_help=True)


async def apply_specs(client: Client, specs: dict[str, PoolSpec],
                      task_queue: str = CONTROL_PLANE_TASK_QUEUE) -> dict[str, str]:
    """Start each pool, or update the one already running: one update-with-start call per
    pool, so two people applying at once can neither start a pool twice nor lose an update.
    The pool validates the spec and answers whether it changed."""
    done: dict[str, str] = {}
    for name, spec in specs.items():
        running = await _running(client.get_workflow_handle(pool_workflow_id(name)))
        start = WithStartWorkflowOperation(
            PoolWorkflow.run, PoolInput(spec=spec), id=pool_workflow_id(name),
            task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"pool {name} · {spec.instance_type} · "
                           f"{spec.min_nodes}-{spec.max_nodes} nodes"
                           + (f" · {spec.autoscaling.type} autoscaler"
                              if spec.autoscaling else ""))
        result: PoolUpdateResult = await client.execute_update_with_start_workflow(
            PoolWorkflow.update_spec_op, spec, start_workflow_operation=start)
        # Whether it ran before is only for the message: the start-or-update is one call.
        done[name] = result.detail if running else "started"
        schedule = await apply_diagnostics_schedule(client, spec, task_queue)
        if schedule != "none":
            done[name] += f", diagnostics schedule {schedule}"
    return done


async def _running(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        return (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        return False


async def fetch_pool_status(client: Client, name: str) -> PoolStatus:
    handle = client.get_workflow_handle(pool_workflow_id(name))
    status: PoolStatus = await handle.query("status", result_type=PoolStatus)
    return status


@pool_app.command("apply")
def pool_apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="config in the Navarch format")],
    no_wait: Annotated[bool, typer.Option("--no-wait", help="return once started")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for nodes")] = 600.0,
) -> None:
    """Start or update one PoolWorkflow per pool in the config, and the orphan sweep; wait
    until nodes are ready."""
    loaded = load_config_or_exit(file)
    specs = build_pool_specs(loaded)

    async def run() -> int:
        client = await connect()
        result = await apply_specs(client, specs)
        for name, what in result.items():
            out.print(f"pool {name}: {what} (workflow {pool_workflow_id(name)})")
        out.print(f"orphan sweep: {await apply_sweep(client, build_sweep_config(loaded))} "
                  f"(workflow {SWEEP_WORKFLOW_ID})")
        if no_wait:
            return 0
        deadline = asyncio.get_running_loop().time() + timeout
        with out.status("waiting for nodes...") as status:
            while True:
                states = {n: await fetch_pool_status(client, n) for n in specs}
                text = ", ".join(f"{n}: {s.ready}/{s.target} ready" for n, s in states.items())
                status.update(text)
                if all(s.ready >= s.target for s in states.values()):
                    out.print(text)
                    return 0
                if asyncio.get_running_loop().time() > deadline:
                    err.print(f"timed out: {text}")
                    return 1
                await asyncio.sleep(1)

    raise typer.Exit(asyncio.run(run()))


@pool_app.command("status")
def pool_status(name: str, output: OutputOpt = Output.table) -> None:
    """Nodes by state, recent events, whether repair is paused."""
    status = show(f"pool {name}", lambda client: fetch_pool_status(client, name), output)
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


async def _running_pools(client: Client) -> list[str]:
    query = 'WorkflowType="PoolWorkflow" AND ExecutionStatus="Running"'
    return sorted([wf.id.removeprefix("pool/") async for wf in client.list_workflows(query)])


@pool_app.command("list")
def pool_list(output: OutputOpt = Output.table) -> None:
    """Running pools with their size, readiness and autoscaler."""

    async def run() -> list[Any]:
        client = await connect()
        names = await _running_pools(client)
        return list(await asyncio.gather(*(fetch_pool_status(client, n) for n in names)))

    pools = asyncio.run(run())
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
    for r in rows:
        repair = "[red]paused[/red]" if r["repair_paused"] else "on"
        table.add_row(r["pool"] + (" (deleting)" if r["deleting"] else ""),
                      f"{r['ready']}/{r['target']}", f"{r['min_nodes']}-{r['max_nodes']}",
                      str(r["nodes"]), r["autoscaler"] or "-", repair)
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

    async def run() -> tuple[PoolStatus, PoolUpdateResult]:
        client = await connect()
        before = await fetch_pool_status(client, name)
        after: PoolUpdateResult = await client.get_workflow_handle(
            pool_workflow_id(name)).execute_update(
            PoolWorkflow.scale_op,
            ScaleInput(target=target, min_nodes=min_nodes, max_nodes=max_nodes))
        return before, after

    try:
        before, after = asyncio.run(run())
    except WorkflowUpdateFailedError as exc:
        fail(f"pool {name}: {refusal(exc)}")
    except RPCError as exc:
        fail(f"pool {name}: {exc.message}")
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

    async def run() -> int:
        client = await connect()
        handle = client.get_workflow_handle(pool_workflow_id(name))
        await fetch_pool_status(client, name)  # fails clearly when there is no such pool
        await handle.signal("delete")
        if await delete_diagnostics_schedule(client, name):
            out.print(f"pool {name}: diagnostics schedule deleted")
        out.print(f"pool {name}: deleting (every node drains, then terminates)")
        if no_wait:
            return 0
        deadline = asyncio.get_running_loop().time() + timeout
        with out.status("draining...") as progress:
            while True:
                described = await handle.describe()
                if described.status != WorkflowExecutionStatus.RUNNING:
                    out.print(f"pool {name}: deleted")
                    return 0
                with_nodes = await fetch_pool_status(client, name)
                progress.update(f"{sum(with_nodes.counts.values())} node(s) left: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(with_nodes.counts.items())))
                if asyncio.get_running_loop().time() > deadline:
                    err.print(f"timed out; pool {name} is still deleting")
                    return 1
                await asyncio.sleep(1)

    try:
        raise typer.Exit(asyncio.run(run()))
    except RPCError as exc:
        fail(f"pool {name}: {exc.message}")


