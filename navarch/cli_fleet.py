"""`navarch up`, `navarch pool ...`, `navarch node ...`, `navarch demo ...`: the commands that
talk to Temporal. Connection settings come from the standard TEMPORAL_* environment and
config profiles (see navarch.temporal_client)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from navarch.cli_output import (
    Output,
    OutputOpt,
    err,
    out,
    print_data,
    print_problems,
    print_table,
)
from navarch.config import load_config
from navarch.fakeworld import FakeWorld
from navarch.ids import (
    CONTROL_PLANE_TASK_QUEUE,
    SA_HEALTH,
    SA_INSTANCE_TYPE,
    SA_NODE_STATE,
    SA_POOL,
    SA_PROVIDER,
    SA_REGION,
    node_workflow_id,
    pool_workflow_id,
)
from navarch.instance_types import gpu_shape
from navarch.lifecycle import NodeState, NodeStatus
from navarch.schedules import apply_diagnostics_schedule, delete_diagnostics_schedule
from navarch.settings import fake_world_path, navarch_home
from navarch.spec import PoolSpec, build_pool_specs
from navarch.temporal_client import connect, connect_local, register_search_attributes
from navarch.validation import ValidationFailed
from navarch.xid import lookup

pool_app = typer.Typer(help="Start, update and inspect pools.", no_args_is_help=True)
node_app = typer.Typer(help="List nodes and cordon, uncordon, drain or terminate them.",
                       no_args_is_help=True)
demo_app = typer.Typer(help="Break simulated hosts on the fake cloud, to watch repairs.",
                       no_args_is_help=True)



T = TypeVar("T")

# The Go CLI's warning: a node whose agent has not been heard from for this long.
SILENT_AFTER_SECONDS = 120


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"error: {message}")
    raise typer.Exit(code)


def _ask(what: str, fetch: Callable[[Client], Awaitable[T]]) -> T:
    """Connect, fetch, and fail with a clear message (`what: why`) when Temporal says no."""

    async def run() -> T:
        return await fetch(await connect())

    try:
        return asyncio.run(run())
    except RPCError as exc:
        _fail(f"{what}: {exc.message}")


def _load_specs(file: Path) -> dict[str, PoolSpec]:
    try:
        loaded = load_config(file)
    except ValidationFailed as exc:
        print_problems(exc.problems)
        raise typer.Exit(1) from None
    return build_pool_specs(loaded)


async def apply_specs(client: Client, specs: dict[str, PoolSpec],
                      task_queue: str = CONTROL_PLANE_TASK_QUEUE) -> dict[str, str]:
    """Start a PoolWorkflow per pool, or send `update_spec` to one already running."""
    from navarch.pool_api import PoolInput

    done: dict[str, str] = {}
    for name, spec in specs.items():
        handle = client.get_workflow_handle(pool_workflow_id(name))
        running = False
        try:
            running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
        if running:
            await handle.signal("update_spec", spec)
            done[name] = "updated"
        else:
            await client.start_workflow(
                "PoolWorkflow", PoolInput(spec=spec), id=pool_workflow_id(name),
                task_queue=task_queue,
                static_summary=f"pool {name} · {spec.instance_type} · "
                               f"{spec.min_nodes}-{spec.max_nodes} nodes"
                               + (f" · {spec.autoscaling.type} autoscaler"
                                  if spec.autoscaling else ""))
            done[name] = "started"
        schedule = await apply_diagnostics_schedule(client, spec, task_queue)
        if schedule != "none":
            done[name] += f", diagnostics schedule {schedule}"
    return done


async def _pool_status(client: Client, name: str) -> Any:
    from navarch.pool_api import PoolStatus

    handle = client.get_workflow_handle(pool_workflow_id(name))
    return await handle.query("status", result_type=PoolStatus)


@pool_app.command("apply")
def pool_apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="config in the Navarch format")],
    no_wait: Annotated[bool, typer.Option("--no-wait", help="return once started")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for nodes")] = 600.0,
) -> None:
    """Start or update one PoolWorkflow per pool in the config; wait until nodes are ready."""
    specs = _load_specs(file)

    async def run() -> int:
        client = await connect()
        result = await apply_specs(client, specs)
        for name, what in result.items():
            out.print(f"pool {name}: {what} (workflow {pool_workflow_id(name)})")
        if no_wait:
            return 0
        deadline = asyncio.get_running_loop().time() + timeout
        with out.status("waiting for nodes...") as status:
            while True:
                states = {n: await _pool_status(client, n) for n in specs}
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
    status = _ask(f"pool {name}", lambda client: _pool_status(client, name))
    if output.structured:
        print_data(status.model_dump(mode="json"), output)
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
            out.print(f"  [yellow]metrics: {error}[/yellow]")
        for d in status.decisions[-5:]:
            out.print(f"  {d.at:%H:%M:%S} {d.from_target} → {d.to_target}  {d.reason}")
    out.print("recent events:")
    for event in status.events[-10:]:
        out.print(f"  {event.at:%H:%M:%S} {event.kind} {event.detail}")


async def _running_pools(client: Client) -> list[str]:
    query = 'WorkflowType="PoolWorkflow" AND ExecutionStatus="Running"'
    return sorted([wf.id.removeprefix("pool/") async for wf in client.list_workflows(query)])


@pool_app.command("list")
def pool_list(output: OutputOpt = Output.table) -> None:
    """Running pools with their size, readiness and autoscaler."""

    async def run() -> list[Any]:
        client = await connect()
        names = await _running_pools(client)
        return list(await asyncio.gather(*(_pool_status(client, n) for n in names)))

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

    async def run() -> tuple[Any, Any]:
        client = await connect()
        before = await _pool_status(client, name)
        payload: dict[str, Any] = {"target": target}
        if min_nodes is not None:
            payload["min_nodes"] = min_nodes
        if max_nodes is not None:
            payload["max_nodes"] = max_nodes
        await client.get_workflow_handle(pool_workflow_id(name)).signal("scale", payload)
        after = before
        for _ in range(50):
            after = await _pool_status(client, name)
            if after.target != before.target or (after.min_nodes, after.max_nodes) != (
                    before.min_nodes, before.max_nodes) or after.target == target:
                break
            await asyncio.sleep(0.1)
        return before, after

    try:
        before, after = asyncio.run(run())
    except RPCError as exc:
        _fail(f"pool {name}: {exc.message}")
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
        await _pool_status(client, name)  # fails clearly when there is no such pool
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
                with_nodes = await _pool_status(client, name)
                progress.update(f"{sum(with_nodes.counts.values())} node(s) left: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(with_nodes.counts.items())))
                if asyncio.get_running_loop().time() > deadline:
                    err.print(f"timed out; pool {name} is still deleting")
                    return 1
                await asyncio.sleep(1)

    try:
        raise typer.Exit(asyncio.run(run()))
    except RPCError as exc:
        _fail(f"pool {name}: {exc.message}")


async def list_nodes(client: Client, *, pool: str | None = None, provider: str | None = None,
                     region: str | None = None, state: str | None = None,
                     health: str | None = None) -> list[dict[str, Any]]:
    query = ['WorkflowType="NodeWorkflow"']
    for key, value in ((SA_POOL, pool), (SA_PROVIDER, provider), (SA_REGION, region),
                       (SA_NODE_STATE, state), (SA_HEALTH, health)):
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
    health: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Nodes from Temporal's visibility store (search attributes), live ones first."""

    async def run() -> list[dict[str, Any]]:
        return await list_nodes(await connect(), pool=pool, provider=provider, region=region,
                                state=status, health=health)

    rows = asyncio.run(run())
    if output.structured:
        print_data(rows, output)
        return
    table = Table(show_edge=False)
    table.add_column("node id", no_wrap=True, min_width=36)  # whole, so it can be copied
    for col in ("pool", "provider", "region", "instance type", "GPUs"):
        table.add_column(col)
    for col in ("state", "health", "age", "heartbeat"):
        table.add_column(col, no_wrap=True)
    now = datetime.now(UTC)

    def ago(stamp: str | None) -> str:
        return _age((now - datetime.fromisoformat(stamp)).total_seconds()) if stamp else ""

    for r in rows:
        table.add_row(r["node_id"], r["pool"] or "", r["provider"] or "", r["region"] or "",
                      r["instance_type"] or "", r["gpus"] or "", r["state"] or "",
                      r["health"] or "", ago(r["started_at"]),
                      f"{ago(r['last_heartbeat'])} ago" if r["last_heartbeat"] else "")
    print_table(table, drop=("region", "instance type", "age", "provider", "heartbeat"))


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


async def _node_status(client: Client, node_id: str) -> NodeStatus:
    handle = client.get_workflow_handle(node_workflow_id(node_id))
    status: NodeStatus = await handle.query("status", result_type=NodeStatus)
    return status


@node_app.command("get")
def node_get(node_id: str, output: OutputOpt = Output.table) -> None:
    """A node's state, GPUs, boot checks and transition history."""
    status = _ask(f"node {node_id}", lambda client: _node_status(client, node_id))
    if output.structured:
        print_data(status.model_dump(mode="json"), output)
        return
    out.print(f"node {status.node_id} (pool {status.pool}): {status.state.value}, "
              f"health {status.health.value}")
    out.print(f"  {status.provider}/{status.region} {status.instance_type} "
              f"{status.instance_id}, {len(status.gpus)} GPU(s)")
    for gpu in status.gpus:
        out.print(f"  GPU {gpu.index}: {gpu.name} {gpu.pci_bus_id} "
                  f"{gpu.memory_total_mib} MiB {gpu.uuid}", markup=False)
    for check in status.boot_checks:
        out.print(f"  boot check {check.name}: {check.status} {check.detail}", markup=False)
    for t in status.transitions:
        out.print(f"  {t.at:%Y-%m-%d %H:%M:%S} → {t.to_state.value} ({t.reason.value})"
                  + (f": {t.detail}" if t.detail else ""))


@node_app.command("history")
def node_history(node_id: str, output: OutputOpt = Output.table) -> None:
    """Every state change of a node: when, from, to, why."""
    status = _ask(f"node {node_id}", lambda client: _node_status(client, node_id))
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


def _signal_node(node_id: str, name: str, payload: dict[str, Any] | None,
                 expect: set[NodeState]) -> None:
    async def run() -> NodeStatus:
        client = await connect()
        handle = client.get_workflow_handle(node_workflow_id(node_id))
        before = await _node_status(client, node_id)
        seen = await last_heartbeat(client, node_id)
        silent = (datetime.now(UTC) - seen).total_seconds() if seen else None
        if before.state is NodeState.UNREACHABLE:
            err.print(f"warning: node {node_id}'s agent is silent (unreachable); "
                      "the command is recorded and applies when it can")
        elif silent is not None and silent > SILENT_AFTER_SECONDS:
            err.print(f"warning: node {node_id}'s agent has been silent for {_age(silent)}")
        if payload is None:
            await handle.signal(name)
        else:
            await handle.signal(name, payload)
        status = before
        for _ in range(50):
            status = await _node_status(client, node_id)
            if status.state in expect:
                break
            await asyncio.sleep(0.1)
        return status

    try:
        status = asyncio.run(run())
    except RPCError as exc:
        _fail(f"node {node_id}: {exc.message}")
    out.print(f"node {node_id}: {name} sent; now {status.state.value}")


Reason = Annotated[str, typer.Option(help="why; recorded in the node's history")]


@node_app.command("cordon")
def node_cordon(node_id: str, reason: Reason = "") -> None:
    """Stop scheduling work on a node (it keeps running)."""
    _signal_node(node_id, "cordon", {"reason": reason}, {NodeState.CORDONED})


@node_app.command("uncordon")
def node_uncordon(node_id: str, reason: Reason = "") -> None:
    """Return a cordoned node to service (if healthy)."""
    _signal_node(node_id, "uncordon", {"reason": reason},
                 {NodeState.READY, NodeState.DEGRADED})


@node_app.command("drain")
def node_drain(node_id: str, reason: Reason = "",
               grace: Annotated[float, typer.Option(help="seconds to wait for GPU work")] = 600,
               ) -> None:
    """Drain (wait for GPU work to end, up to the grace), terminate, replace."""
    _signal_node(node_id, "drain", {"reason": reason, "grace_seconds": grace},
                 {NodeState.DRAINING, NodeState.TERMINATING, NodeState.TERMINATED})


@node_app.command("terminate")
def node_terminate(node_id: str, reason: Reason = "") -> None:
    """Terminate now (no drain); the pool replaces it."""
    _signal_node(node_id, "terminate", {"reason": reason},
                 {NodeState.TERMINATING, NodeState.TERMINATED})


# ----------------------------------------------------------------------------- demo


def _world_for(node_id: str) -> FakeWorld:
    path = fake_world_path()
    if not path.exists():
        _fail(f"no fake cloud at {path}; is `navarch up` running?")
    world = FakeWorld(path)
    if world.get_by_node(node_id) is None:
        _fail(f"node {node_id} is not a simulated host in {path}")
    return world


@demo_app.command("inject-xid")
def demo_inject_xid(node_id: str, code: int,
                    gpu: Annotated[int, typer.Option(help="GPU index")] = 0) -> None:
    """Make a simulated host report an Xid (stays until `navarch demo clear`)."""
    world = _world_for(node_id)
    info = lookup(code)
    message = (f"NVRM: Xid (PCI:0000:{0x18 + gpu:02x}:00): {code}, "
               f"{info.summary if info else 'unknown Xid'}")
    world.inject(node_id, "xid", gpu_index=gpu, value=code, message=message)
    verdict = info.verdict if info else "unknown"
    out.print(f"Xid {code} injected on GPU {gpu} of node {node_id} ({verdict} in the catalog)")


@demo_app.command("clear")
def demo_clear(node_id: str) -> None:
    """Remove every injected fault from a simulated host."""
    removed = _world_for(node_id).clear(node_id)
    out.print(f"cleared {removed} fault(s) on node {node_id}")


# ----------------------------------------------------------------------------- up


async def run_up(*, demo: bool, config: Path | None, address: str, ui_port: int,
                 metrics_port: int = 0) -> int:
    from navarch.devserver import DevServer, port_open
    from navarch.workers.control_plane import ControlPlane

    host, _, port_text = address.rpartition(":")
    port = int(port_text)
    server = None
    if port_open(host or "127.0.0.1", port):
        out.print(f"using the Temporal server already answering at {address}")
    else:
        server = DevServer(navarch_home(), port=port, ui_port=ui_port)
        out.print(f"starting the Temporal dev server (state in {server.db_path})...")
        await asyncio.to_thread(server.start)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        extra: dict[str, Any] = {}
        if metrics_port:
            from navarch.devserver import port_open as taken
            from navarch.workers.main import worker_runtime

            if taken("127.0.0.1", metrics_port):
                err.print(f"warning: port {metrics_port} is taken: no metrics "
                          "(use --metrics-port)")
            else:
                extra["runtime"] = worker_runtime(metrics_port, "127.0.0.1")
        client = await (connect_local(address, ready_within=30, **extra) if server is not None
                        else connect(target_host=address, ready_within=30, **extra))
        await register_search_attributes(client)
        world = FakeWorld(fake_world_path())
        plane = ControlPlane(client, world=world)
        worker = asyncio.create_task(plane.run(stop))
        files = [config] if config else []
        if demo:
            files.append(Path(__file__).with_name("demo.yaml"))
        for file in files:
            for name, what in (await apply_specs(client, _load_specs(file))).items():
                out.print(f"pool {name}: {what}")
        out.print(f"Navarch is up. Temporal UI: http://127.0.0.1:{ui_port}/namespaces/"
                  f"{client.namespace}/workflows  (Ctrl-C stops)")
        if extra:
            out.print(f"  metrics: http://127.0.0.1:{metrics_port}/metrics")
        out.print("  navarch node list            nodes and their states")
        out.print("  navarch demo inject-xid NODE 79   break a simulated GPU")
        await worker
    finally:
        stop.set()
        if server is not None:
            await asyncio.to_thread(server.stop)
        out.print("stopped")
    return 0


def setup() -> None:
    """Prepare a Temporal namespace for Navarch: create its search attributes where missing
    (run once per cluster; `navarch up` does it for the embedded server)."""

    async def run() -> list[str]:
        return await register_search_attributes(await connect())

    try:
        added = asyncio.run(run())
    except RPCError as exc:
        _fail(f"cannot create search attributes: {exc.message}")
    out.print("search attributes: " + (f"created {', '.join(added)}" if added
                                      else "all present"))


def up(
    demo: Annotated[bool, typer.Option("--demo", help="also start the demo pool")] = False,
    config: Annotated[Path | None, typer.Option("--file", "-f", help="pools to apply")] = None,
    address: Annotated[str, typer.Option(help="Temporal frontend")] = "127.0.0.1:7233",
    ui_port: Annotated[int, typer.Option(help="Temporal UI port")] = 8233,
    metrics_port: Annotated[int, typer.Option(
        help="Prometheus metrics of the control-plane worker (0: off)")] = 9400,
) -> None:
    """Run Navarch on this machine: the Temporal dev server (unless one is already
    running), the control-plane worker and simulated GPU hosts for the fake cloud."""
    raise typer.Exit(asyncio.run(run_up(demo=demo, config=config, address=address,
                                        ui_port=ui_port, metrics_port=metrics_port)))
