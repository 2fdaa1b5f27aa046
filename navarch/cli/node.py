"""`navarch node ...`: list nodes, show one, and cordon, uncordon, drain or terminate it."""

from __future__ import annotations

import asyncio
import getpass
import socket
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from navarch.cli.common import ask, fail, refusal, show
from navarch.cli.output import Output, OutputOpt, err, out, print_data, print_table
from navarch.config.instance_types import gpu_shape
from navarch.contracts.base import SignalModel
from navarch.contracts.names import (
    SA_HEALTH,
    SA_INSTANCE_TYPE,
    SA_NODE_STATE,
    SA_POOL,
    SA_PROVIDER,
    SA_REGION,
    SA_VERDICT,
    node_workflow_id,
)
from navarch.contracts.node import (
    ClearInput,
    CordonInput,
    DrainInput,
    NodeOperationResult,
    NodeState,
    NodeStatus,
    TerminateInput,
    UncordonInput,
)
from navarch.temporal.client import connect
from navarch.workflows.node import NodeWorkflow

node_app = typer.Typer(help="List nodes; cordon, uncordon, clear, drain or terminate them.",
                       no_args_is_help=True)

# The Go CLI's warning: a node whose agent has not been heard from for this long.
SILENT_AFTER_SECONDS = 120


async def list_nodes(client: Client, *, pool: str | None = None, provider: str | None = None,
                     region: str | None = None, state: str | None = None,
                     health: str | None = None,
                     verdict: str | None = None) -> list[dict[str, Any]]:
    query = ['WorkflowType="NodeWorkflow"']
    for key, value in ((SA_POOL, pool), (SA_PROVIDER, provider), (SA_REGION, region),
                       (SA_NODE_STATE, state), (SA_HEALTH, health), (SA_VERDICT, verdict)):
        if value:
            query.append(f'{key.name}="{value}"')
    rows = []
    async for wf in client.list_workflows(" AND ".join(query)):
        sa = wf.typed_search_attributes
        shape = gpu_shape(sa.get(SA_INSTANCE_TYPE) or "")
        rows.append({
            "node_id": wf.id.removeprefix("node/"),
            "pool": sa.get(SA_POOL),
            "provider": sa.get(SA_PROVIDER),
            "region": sa.get(SA_REGION),
            "instance_type": sa.get(SA_INSTANCE_TYPE),
            "state": sa.get(SA_NODE_STATE),
            "health": sa.get(SA_HEALTH),
            "verdict": sa.get(SA_VERDICT),
            "gpus": f"{shape.count}x {shape.model}" if shape else None,
            "started_at": wf.start_time.astimezone(UTC).isoformat() if wf.start_time else None,
            "closed_at": wf.close_time.astimezone(UTC).isoformat() if wf.close_time else None,
            "last_heartbeat": None,
        })
    rows.sort(key=lambda r: (r["closed_at"] is not None, r["started_at"] or ""))
    gate = asyncio.Semaphore(16)

    async def heartbeat(row: dict[str, Any]) -> None:
        async with gate:
            seen = await last_heartbeat(client, row["node_id"])
        row["last_heartbeat"] = seen.isoformat() if seen else None

    await asyncio.gather(*(heartbeat(r) for r in rows if r["closed_at"] is None))
    return rows


async def last_heartbeat(client: Client, node_id: str) -> datetime | None:
    """When the node's agent last proved alive (its watch_health heartbeat)."""
    try:
        described = await client.get_workflow_handle(node_workflow_id(node_id)).describe()
    except RPCError:
        return None
    times = [a.last_heartbeat_time.ToDatetime(tzinfo=UTC)
             for a in described.raw_description.pending_activities
             if a.HasField("last_heartbeat_time") and a.activity_type.name.startswith("agent.")]
    return max(times) if times else None


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

    async def run() -> list[dict[str, Any]]:
        return await list_nodes(await connect(), pool=pool, provider=provider, region=region,
                                state=status, health=health, verdict=verdict)

    rows = asyncio.run(run())
    if output.structured:
        print_data(rows, output)
        return
    table = Table(show_edge=False)
    table.add_column("node id", no_wrap=True, min_width=36)  # whole, so it can be copied
    for col in ("pool", "provider", "region", "instance type", "GPUs"):
        table.add_column(col)
    for col in ("state", "health", "verdict", "age", "heartbeat"):
        table.add_column(col, no_wrap=True)
    now = datetime.now(UTC)

    def ago(stamp: str | None) -> str:
        return _age((now - datetime.fromisoformat(stamp)).total_seconds()) if stamp else ""

    for r in rows:
        table.add_row(r["node_id"], r["pool"] or "", r["provider"] or "", r["region"] or "",
                      r["instance_type"] or "", r["gpus"] or "", r["state"] or "",
                      r["health"] or "", r["verdict"] or "", ago(r["started_at"]),
                      f"{ago(r['last_heartbeat'])} ago" if r["last_heartbeat"] else "")
    print_table(table, drop=("region", "instance type", "age", "provider", "heartbeat"))


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


async def fetch_node_status(client: Client, node_id: str) -> NodeStatus:
    handle = client.get_workflow_handle(node_workflow_id(node_id))
    status: NodeStatus = await handle.query("status", result_type=NodeStatus)
    return status


@node_app.command("get")
def node_get(node_id: str, output: OutputOpt = Output.table) -> None:
    """A node's state, GPUs, boot checks and transition history."""
    status = show(f"node {node_id}", lambda client: fetch_node_status(client, node_id), output)
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
    status = ask(f"node {node_id}", lambda client: fetch_node_status(client, node_id))
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


def _operate_node(node_id: str, update: Any, payload: SignalModel) -> None:
    """Run one of the node's updates: the node answers what it did, or refuses and why."""
    async def run() -> NodeOperationResult:
        client = await connect()
        handle = client.get_workflow_handle(node_workflow_id(node_id))
        seen = await last_heartbeat(client, node_id)
        silent = (datetime.now(UTC) - seen).total_seconds() if seen else None
        result: NodeOperationResult = await handle.execute_update(update, payload)
        if result.state is NodeState.UNREACHABLE:
            err.print(f"warning: node {node_id}'s agent is silent (unreachable); "
                      "the command is recorded and applies when it can")
        elif silent is not None and silent > SILENT_AFTER_SECONDS:
            err.print(f"warning: node {node_id}'s agent has been silent for {_age(silent)}")
        return result

    try:
        result = asyncio.run(run())
    except WorkflowUpdateFailedError as exc:
        fail(f"node {node_id}: {refusal(exc)}")
    except RPCError as exc:
        fail(f"node {node_id}: {exc.message}")
    out.print(f"node {node_id}: {result.detail}; now {result.state.value}", markup=False)


Reason = Annotated[str, typer.Option(help="why; recorded in the node's history")]
By = Annotated[str | None, typer.Option(
    help="who asks, for the audit trail (default: your user@host)")]


def _by(by: str | None) -> str:
    if by:
        return by
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no user name (a container without an /etc/passwd entry)
        return socket.gethostname()


@node_app.command("cordon")
def node_cordon(node_id: str, reason: Reason = "", by: By = None) -> None:
    """Hold a node out of service (it keeps running). Only an operator's uncordon lifts it:
    no recovery, diagnostic or pool change does."""
    _operate_node(node_id, NodeWorkflow.cordon_op, CordonInput(reason=reason, by=_by(by)))


@node_app.command("uncordon")
def node_uncordon(node_id: str, reason: Reason = "", by: By = None) -> None:
    """Lift the operator's hold. A node under an unhealthy verdict stays held (its repair
    goes on); clear the verdict first to return it to service."""
    _operate_node(node_id, NodeWorkflow.uncordon_op, UncordonInput(reason=reason, by=_by(by)))


@node_app.command("clear")
def node_clear(node_id: str, reason: Reason = "", by: By = None) -> None:
    """Clear an unhealthy verdict (the machine was checked or fixed). The node returns to
    service unless an operator still holds it."""
    _operate_node(node_id, NodeWorkflow.clear_op, ClearInput(reason=reason, by=_by(by)))


@node_app.command("drain")
def node_drain(node_id: str, reason: Reason = "",
               grace: Annotated[float, typer.Option(help="seconds to wait for GPU work")] = 600,
               by: By = None) -> None:
    """Drain (wait for GPU work to end, up to the grace), terminate, replace."""
    _operate_node(node_id, NodeWorkflow.drain_op,
                  DrainInput(reason=reason, grace_seconds=grace, by=_by(by)))


@node_app.command("terminate")
def node_terminate(node_id: str, reason: Reason = "", by: By = None) -> None:
    """Terminate now (no drain); the pool replaces it."""
    _operate_node(node_id, NodeWorkflow.terminate_op,
                  TerminateInput(reason=reason, by=_by(by)))
