"""`navarch node ...`: list nodes, show one, and cordon, uncordon, drain or terminate it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from navarch.cli.common import ask, show
from navarch.cli.output import Output, OutputOpt, err, out, print_data, print_table
from navarch.client import Navarch, Node
from navarch.contracts.node import NodeOperationResult, NodeState

node_app = typer.Typer(help="List nodes; cordon, uncordon, clear, drain or terminate them.",
                       no_args_is_help=True)

# The Go CLI's warning: a node whose agent has not been heard from for this long.
SILENT_AFTER_SECONDS = 120


@node_app.command("list")
def node_list(
    pool: Annotated[str | None, typer.Option(help="only this pool")] = None,
    provider: Annotated[str | None, typer.Option()] = None,
    region: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="node state, e.g. ready")] = None,
    health: Annotated[str | None, typer.Option(
        help="what the latest check says about the hardware now")] = None,
    verdict: Annotated[str | None, typer.Option(
        help="the sticky decision: unhealthy until repaired or cleared")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Nodes from Temporal's visibility store (search attributes), live ones first."""

    nodes = ask(lambda fleet: fleet.nodes(pool=pool, provider=provider, region=region,
                                          state=status, health=health, verdict=verdict))
    if output.structured:
        print_data([n.model_dump(mode="json") for n in nodes], output)
        return
    table = Table(show_edge=False)
    table.add_column("node id", no_wrap=True, min_width=36)  # whole, so it can be copied
    for col in ("pool", "provider", "region", "instance type", "GPUs"):
        table.add_column(col)
    for col in ("state", "health", "verdict", "age", "heartbeat"):
        table.add_column(col, no_wrap=True)
    now = datetime.now(UTC)

    def ago(stamp: datetime | None) -> str:
        return _age((now - stamp).total_seconds()) if stamp else ""

    for n in nodes:
        table.add_row(n.node_id, n.pool or "", n.provider or "", n.region or "",
                      n.instance_type or "", n.gpus or "", n.state or "", n.health or "",
                      n.verdict or "", ago(n.started_at),
                      f"{ago(n.last_heartbeat)} ago" if n.last_heartbeat else "")
    print_table(table, drop=("region", "instance type", "age", "provider", "heartbeat"))


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


@node_app.command("get")
def node_get(node_id: str, output: OutputOpt = Output.table) -> None:
    """A node's state, GPUs, boot checks and transition history."""
    status = show(lambda fleet: fleet.node(node_id).status(), output)
    if status is None:
        return
    out.print(f"node {status.node_id} (pool {status.pool}): {status.state.value}, "
              f"health {status.health.value}, verdict {status.verdict.value}"
              + (f" (rule {status.verdict_rule})" if status.verdict_rule else ""), markup=False)
    counts: dict[tuple[str, int], int] = {}
    for o in status.occurrences:
        counts[(o.rule, o.gpu_index)] = counts.get((o.rule, o.gpu_index), 0) + 1
    for (rule, index), count in sorted(counts.items()):
        out.print(f"  counted by {rule} on GPU {index}: {count} event(s)", markup=False)
    for hold in status.holds:
        out.print(f"  held by {hold.owner.value} since {hold.at:%Y-%m-%d %H:%M:%S}"
                  + (f": {hold.reason}" if hold.reason else "")
                  + (f" (by {hold.by})" if hold.by else ""), markup=False)
    for a in status.repairs:
        out.print(f"  repair {a.at:%Y-%m-%d %H:%M:%S} {a.rung} for {a.fault}: "
                  f"{a.outcome.replace('_', ' ')}"
                  + (f" after {a.seconds:.0f} s" if a.outcome != "running" else "")
                  + (f": {a.detail}" if a.detail else ""), markup=False)
    out.print(f"  {status.provider}/{status.region} {status.instance_type} "
              f"{status.instance_id}, {len(status.gpus)} GPU(s)")
    for gpu in status.gpus:
        out.print(f"  GPU {gpu.index}: {gpu.name} {gpu.pci_bus_id} "
                  f"{gpu.memory_total_mib} MiB {gpu.uuid}", markup=False)
    for check in status.boot_checks:
        out.print(f"  boot check {check.name}: {check.status} {check.detail}", markup=False)
    for t in status.transitions:
        out.print(f"  {t.at:%Y-%m-%d %H:%M:%S} → {t.to_state.value} ({t.reason.value})"
                  + (f": {t.detail}" if t.detail else ""), markup=False)
    for r in status.rejected:
        out.print(f"  {r.at:%Y-%m-%d %H:%M:%S} refused signal {r.signal}: {r.problem}",
                  markup=False)


@node_app.command("history")
def node_history(node_id: str, output: OutputOpt = Output.table) -> None:
    """Every state change of a node: when, from, to, why."""
    status = ask(lambda fleet: fleet.node(node_id).status())
    rows = [t.model_dump(mode="json") for t in status.transitions]
    if output.structured:
        print_data(rows, output)
        return
    table = Table(show_edge=False, title=f"node {node_id} (pool {status.pool})",
                  title_justify="left")
    for col in ("at", "from", "to", "reason"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for t in status.transitions:
        table.add_row(f"{t.at:%Y-%m-%d %H:%M:%S}", t.from_state.value if t.from_state else "",
                      t.to_state.value, t.reason.value, t.detail)
    print_table(table)


def _operate_node(node_id: str, operate: Callable[[Node], Awaitable[NodeOperationResult]],
                  ) -> None:
    """Run one of the node's operations: the node answers what it did, or refuses and why.
    A node whose agent is silent takes the command and applies it when it can: say so."""
    async def run(fleet: Navarch) -> NodeOperationResult:
        node = fleet.node(node_id)
        seen = await node.last_heartbeat()
        silent = (datetime.now(UTC) - seen).total_seconds() if seen else None
        result = await operate(node)
        if result.state is NodeState.UNREACHABLE:
            err.print(f"warning: node {node_id}'s agent is silent (unreachable); "
                      "the command is recorded and applies when it can")
        elif silent is not None and silent > SILENT_AFTER_SECONDS:
            err.print(f"warning: node {node_id}'s agent has been silent for {_age(silent)}")
        return result

    result = ask(run)
    out.print(f"node {node_id}: {result.detail}; now {result.state.value}", markup=False)


Reason = Annotated[str, typer.Option(help="why; recorded in the node's history")]
By = Annotated[str | None, typer.Option(
    help="who asks, for the audit trail (default: your user@host)")]


@node_app.command("cordon")
def node_cordon(node_id: str, reason: Reason = "", by: By = None) -> None:
    """Hold a node out of service (it keeps running). Only an operator's uncordon lifts it:
    no recovery, diagnostic or pool change does."""
    _operate_node(node_id, lambda node: node.cordon(reason, by=by))


@node_app.command("uncordon")
def node_uncordon(node_id: str, reason: Reason = "", by: By = None) -> None:
    """Lift the operator's hold. A node under an unhealthy verdict stays held (its repair
    goes on); clear the verdict first to return it to service."""
    _operate_node(node_id, lambda node: node.uncordon(reason, by=by))


@node_app.command("clear")
def node_clear(node_id: str, reason: Reason = "", by: By = None) -> None:
    """Clear an unhealthy verdict (the machine was checked or fixed). The node returns to
    service unless an operator still holds it."""
    _operate_node(node_id, lambda node: node.clear(reason, by=by))


@node_app.command("drain")
def node_drain(node_id: str, reason: Reason = "",
               grace: Annotated[float, typer.Option(help="seconds to wait for GPU work")] = 600,
               by: By = None) -> None:
    """Drain (wait for GPU work to end, up to the grace), terminate, replace."""
    _operate_node(node_id, lambda node: node.drain(reason, grace=grace, by=by))


@node_app.command("terminate")
def node_terminate(node_id: str, reason: Reason = "", by: By = None) -> None:
    """Terminate now (no drain); the pool replaces it."""
    _operate_node(node_id, lambda node: node.terminate(reason, by=by))
