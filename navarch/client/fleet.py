"""The fleet's handles: `Navarch` (connect, apply, list), `Pool` and `Node`.

Every call goes through Temporal: a pool is the workflow `pool/<name>`, a node the workflow
`node/<id>`. Reads are the workflows' `status` queries and the visibility store; changes are
the workflows' updates, so the caller learns what the pool or node did, or why it refused.
Workflows, updates and queries are named by their stable names, so a script needs none of
the worker's code.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from navarch.client.errors import NotConnected, NotFound, TimedOut, translated
from navarch.client.upgrades import Upgrades
from navarch.config.instance_types import gpu_shape
from navarch.config.loader import LoadedConfig, load_config
from navarch.contracts.autoscale import QueueReport
from navarch.contracts.base import SignalModel
from navarch.contracts.names import (
    CONTROL_PLANE_TASK_QUEUE,
    SA_HEALTH,
    SA_INSTANCE_TYPE,
    SA_NODE_STATE,
    SA_POOL,
    SA_PROVIDER,
    SA_REGION,
    SA_VERDICT,
    SWEEP_WORKFLOW_ID,
    node_workflow_id,
    pool_workflow_id,
)
from navarch.contracts.node import (
    ClearInput,
    CordonInput,
    DrainInput,
    NodeOperationResult,
    NodeStatus,
    NodeSummary,
    TerminateInput,
    Transition,
    UncordonInput,
)
from navarch.contracts.pool import PoolInput, PoolStatus, PoolUpdateResult, ScaleInput
from navarch.contracts.spec import PoolSpec, build_pool_specs
from navarch.contracts.sweep import SweepConfig, SweepStatus, build_sweep_config
from navarch.temporal.client import connect, connect_config
from navarch.temporal.schedules import apply_diagnostics_schedule, delete_diagnostics_schedule
from navarch.temporal.sweep import apply_sweep

# What `apply` takes: a config file (path), a loaded config, or pool specs.
ConfigSource = str | Path | LoadedConfig | PoolSpec | Mapping[str, PoolSpec] | Iterable[PoolSpec]
Progress = Callable[[dict[str, PoolStatus]], None]

HEARTBEAT_LOOKUPS = 16  # describe calls in flight at once when listing nodes
POLL_SECONDS = 1.0


class ApplyResult(BaseModel):
    """What `apply` did: per pool "started" or what the running pool answered ("unchanged",
    "updated; ..."), and the orphan sweep's answer (None when only specs were applied)."""

    pools: dict[str, str]
    sweep: str | None = None


class Navarch:
    """A connection to one Navarch fleet (one Temporal namespace)."""

    def __init__(self, client: Client, *, task_queue: str = CONTROL_PLANE_TASK_QUEUE) -> None:
        self.temporal = client  # the underlying Temporal client, for anything else
        self.task_queue = task_queue  # where new pools' workflows run

    @classmethod
    async def connect(cls, profile: str | None = None, *,
                      task_queue: str = CONTROL_PLANE_TASK_QUEUE, ready_within: float = 0.0,
                      **overrides: Any) -> Navarch:
        """Connect with the `navarch` command's settings: Temporal's environment variables
        (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*) and config
        profile, and Navarch's codec keys. Keyword overrides (`target_host`, `namespace`,
        `api_key`, `tls`, ...) win over both."""
        address = connect_config(profile, **overrides).get("target_host", "")
        try:
            client = await connect(profile, ready_within=ready_within, **overrides)
        except RuntimeError as exc:
            raise NotConnected(f"Temporal at {address}", str(exc)) from exc
        return cls(client, task_queue=task_queue)

    # ------------------------------------------------------------------ pools

    def upgrades(self, deployment: str | None = None) -> Upgrades:
        """The fleet's worker deployment (Worker Versioning): builds, ramps, rollback."""
        return Upgrades(self, deployment)

    def pool(self, name: str) -> Pool:
        return Pool(self, name)

    async def pools(self) -> list[PoolStatus]:
        """The status of every running pool this control plane serves (its task queue), by
        name. Another fleet's pools in the same namespace are not listed: their workers may
        be elsewhere, or gone, and a query no worker answers hangs until its deadline."""
        query = ('WorkflowType="PoolWorkflow" AND ExecutionStatus="Running" '
                 f'AND TaskQueue="{_quoted(self.task_queue)}"')
        with translated("pools"):
            names = sorted({wf.id.removeprefix("pool/")
                            async for wf in self.temporal.list_workflows(query)})
        return list(await asyncio.gather(*(self.pool(n).status() for n in names)))

    async def apply(self, *sources: ConfigSource) -> ApplyResult:
        """Start each pool, or update the one already running, from config files, loaded
        configs or pool specs; with configs, also start or reconfigure the orphan sweep over
        every provider they name. A config that does not validate raises
        `navarch.validation.ValidationFailed` with every problem, before anything starts."""
        specs: dict[str, PoolSpec] = {}
        sweeps: list[SweepConfig] = []
        for source in sources:
            if isinstance(source, str | Path):
                source = load_config(Path(source))
            if isinstance(source, LoadedConfig):
                specs.update(build_pool_specs(source))
                sweeps.append(build_sweep_config(source))
            elif isinstance(source, PoolSpec):
                specs[source.name] = source
            elif isinstance(source, Mapping):
                specs.update(source)
            else:
                specs.update({spec.name: spec for spec in source})
        result = ApplyResult(pools={})
        for name, spec in specs.items():
            result.pools[name] = await self.pool(name).apply(spec)
        if sweeps:  # one sweep over every provider the configs name (the first's settings)
            targets = {t.key(): t for s in sweeps for t in s.targets}
            sweep = sweeps[0].model_copy(update={"targets": list(targets.values())})
            with translated("orphan sweep"):
                result.sweep = await apply_sweep(self.temporal, sweep, self.task_queue)
        return result

    async def wait_ready(self, names: Iterable[str], *, within: float = 600.0,
                         progress: Progress | None = None) -> dict[str, PoolStatus]:
        """Wait until each named pool has its target ready; raise `TimedOut` (with the
        last counts) past `within` seconds. `progress` sees every round of statuses."""
        names = list(names)
        deadline = asyncio.get_running_loop().time() + within
        while True:
            states = {n: await self.pool(n).status() for n in names}
            if progress:
                progress(states)
            if all(s.ready >= s.target for s in states.values()):
                return states
            if asyncio.get_running_loop().time() > deadline:
                raise TimedOut(", ".join(names), "not ready: " + ", ".join(
                    f"{n} {s.ready}/{s.target}" for n, s in states.items()))
            await asyncio.sleep(POLL_SECONDS)

    async def report_queue_depth(self, pool: str, queue_depth: int,
                                 pending_jobs: int | None = None) -> None:
        """A workload scheduler's queue, for a pool whose `queue` autoscaler takes it from
        the `report_queue_depth` signal."""
        await self.pool(pool).report_queue_depth(queue_depth, pending_jobs)

    async def sweep(self, *, now: bool = False) -> SweepStatus:
        """The orphan sweep's last findings (machines no live node owns, and what it did);
        with `now`, sweep at once and answer that sweep."""
        handle = self.temporal.get_workflow_handle(SWEEP_WORKFLOW_ID)
        start = "`navarch pool apply -f CONFIG` (or `navarch up -f CONFIG`) starts it"
        try:
            with translated("orphan sweep"):
                described = await handle.describe()
        except NotFound as exc:
            raise NotFound("", f"no orphan sweep runs in this namespace: {start}") from exc
        if described.status != WorkflowExecutionStatus.RUNNING:
            ended = described.status.name.lower() if described.status else "closed"
            raise NotFound("", f"no orphan sweep runs in this namespace (the last one "
                               f"{ended}): {start}")
        with translated("orphan sweep"):
            if now:
                swept: SweepStatus = await handle.execute_update("sweep_now",
                                                                 result_type=SweepStatus)
                return swept
            status: SweepStatus = await handle.query("status", result_type=SweepStatus)
        return status

    # ------------------------------------------------------------------ nodes

    def node(self, node_id: str) -> Node:
        return Node(self, node_id)

    async def nodes(self, *, pool: str | None = None, state: str | None = None,
                    health: str | None = None, verdict: str | None = None,
                    provider: str | None = None, region: str | None = None,
                    running: bool = False, heartbeats: bool = True) -> list[NodeSummary]:
        """Nodes from the visibility store, live ones first, oldest first. Filters take the
        values of `NodeState` and `HealthResult` (`state="ready"`, `health="unhealthy"`);
        `running` leaves out nodes whose workflow has ended; `heartbeats` looks up when each
        live node's agent last proved alive (one describe call per node)."""
        query = ['WorkflowType="NodeWorkflow"'] + (['ExecutionStatus="Running"'] if running
                                                    else [])
        for key, value in ((SA_POOL, pool), (SA_PROVIDER, provider), (SA_REGION, region),
                           (SA_NODE_STATE, state), (SA_HEALTH, health), (SA_VERDICT, verdict)):
            if value:
                query.append(f'{key.name}="{_quoted(str(value))}"')
        rows: list[NodeSummary] = []
        with translated("nodes"):
            async for wf in self.temporal.list_workflows(" AND ".join(query)):
                sa = wf.typed_search_attributes
                shape = gpu_shape(sa.get(SA_INSTANCE_TYPE) or "")
                rows.append(NodeSummary(
                    node_id=wf.id.removeprefix("node/"), pool=sa.get(SA_POOL),
                    provider=sa.get(SA_PROVIDER), region=sa.get(SA_REGION),
                    instance_type=sa.get(SA_INSTANCE_TYPE), state=sa.get(SA_NODE_STATE),
                    health=sa.get(SA_HEALTH), verdict=sa.get(SA_VERDICT),
                    gpus=f"{shape.count}x {shape.model}" if shape else None,
                    started_at=wf.start_time.astimezone(UTC) if wf.start_time else None,
                    closed_at=wf.close_time.astimezone(UTC) if wf.close_time else None))
        rows.sort(key=lambda r: (r.closed_at is not None,
                                 r.started_at or datetime.min.replace(tzinfo=UTC)))
        if heartbeats:
            gate = asyncio.Semaphore(HEARTBEAT_LOOKUPS)

            async def look(row: NodeSummary) -> None:
                async with gate:
                    row.last_heartbeat = await self.node(row.node_id).last_heartbeat()

            await asyncio.gather(*(look(r) for r in rows if r.closed_at is None))
        return rows


def who_asks() -> str:
    """This process's user@host: who asks, for a node's audit trail."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no user name (a container without an /etc/passwd entry)
        return socket.gethostname()


def _quoted(value: str) -> str:
    """A value inside a visibility query's double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


class Pool:
    """One pool: the workflow `pool/<name>`."""

    def __init__(self, fleet: Navarch, name: str) -> None:
        self.fleet, self.name = fleet, name
        self.what = f"pool {name}"

    def _handle(self) -> WorkflowHandle[Any, Any]:
        return self.fleet.temporal.get_workflow_handle(pool_workflow_id(self.name))

    async def status(self) -> PoolStatus:
        """Nodes by state, recent events, the autoscaler's last decisions."""
        with translated(self.what):
            status: PoolStatus = await self._handle().query("status", result_type=PoolStatus)
        return status

    async def running(self) -> bool:
        """Whether the pool's workflow runs (False when there is none, or it has ended)."""
        try:
            with translated(self.what):
                described = await self._handle().describe()
        except NotFound:
            return False
        return described.status == WorkflowExecutionStatus.RUNNING

    async def apply(self, spec: PoolSpec) -> str:
        """Start the pool, or update the running one: one update-with-start call, so two
        people applying at once can neither start it twice nor lose an update. Answers
        "started", or what the pool said ("unchanged", "updated; ..."), and what happened to
        its diagnostics schedule."""
        if spec.name != self.name:
            raise ValueError(f"the spec is for pool {spec.name!r}, not {self.name!r}")
        fleet = self.fleet
        was_running = await self.running()
        start: WithStartWorkflowOperation[PoolInput, PoolStatus] = WithStartWorkflowOperation(
            "PoolWorkflow", PoolInput(spec=spec), id=pool_workflow_id(self.name),
            task_queue=fleet.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"pool {self.name} · {spec.instance_type} · "
                           f"{spec.min_nodes}-{spec.max_nodes} nodes"
                           + (f" · {spec.autoscaling.type} autoscaler"
                              if spec.autoscaling else ""))
        with translated(self.what):
            result: PoolUpdateResult = await fleet.temporal.execute_update_with_start_workflow(
                "update_spec", spec, start_workflow_operation=start,
                result_type=PoolUpdateResult)
            # Whether it ran before is only for the message: the start-or-update is one call.
            done = result.detail if was_running else "started"
            schedule = await apply_diagnostics_schedule(fleet.temporal, spec, fleet.task_queue)
        return done + (f", diagnostics schedule {schedule}" if schedule != "none" else "")

    async def scale(self, target: int | None = None, *, min_nodes: int | None = None,
                    max_nodes: int | None = None) -> PoolUpdateResult:
        """Set the target (kept within min/max, which `min_nodes`/`max_nodes` may move). An
        autoscaler, if the pool has one, takes over again after its cooldown."""
        with translated(self.what):
            result: PoolUpdateResult = await self._handle().execute_update(
                "scale", ScaleInput(target=target, min_nodes=min_nodes, max_nodes=max_nodes),
                result_type=PoolUpdateResult)
        return result

    async def report_queue_depth(self, queue_depth: int,
                                 pending_jobs: int | None = None) -> None:
        report = QueueReport(queue_depth=queue_depth, pending_jobs=pending_jobs)
        await self.status()  # NotFound for a pool that is not there, before the signal
        with translated(self.what):
            await self._handle().signal("report_queue_depth", report)

    async def delete(self, *, wait: bool = False, within: float = 1800.0,
                     progress: Callable[[PoolStatus], None] | None = None) -> bool:
        """Drain and terminate every node, then end the pool's workflow; its diagnostics
        schedule goes at once (True when it had one). With `wait`, return once the
        workflow has ended, or raise `TimedOut`."""
        await self.status()  # NotFound for a pool that is not there
        with translated(self.what):
            await self._handle().signal("delete")
            had_schedule = await delete_diagnostics_schedule(self.fleet.temporal, self.name)
        if wait:
            deadline = asyncio.get_running_loop().time() + within
            while await self.running():
                if progress:
                    progress(await self.status())
                if asyncio.get_running_loop().time() > deadline:
                    raise TimedOut(self.what, "still deleting")
                await asyncio.sleep(POLL_SECONDS)
        return had_schedule


class Node:
    """One node: the workflow `node/<id>`. The operations answer what the node did
    (`NodeOperationResult`) or raise `Refused` with its reason; `by` names who asks, for
    the node's audit trail (default: this process's user@host)."""

    def __init__(self, fleet: Navarch, node_id: str) -> None:
        self.fleet, self.node_id = fleet, node_id
        self.what = f"node {node_id}"

    def _handle(self) -> WorkflowHandle[Any, Any]:
        return self.fleet.temporal.get_workflow_handle(node_workflow_id(self.node_id))

    async def status(self) -> NodeStatus:
        """State, health and verdict, holds, GPUs, boot checks, repairs, transitions."""
        with translated(self.what):
            status: NodeStatus = await self._handle().query("status", result_type=NodeStatus)
        return status

    async def history(self) -> list[Transition]:
        """Every state change: when, from, to, why."""
        return (await self.status()).transitions

    async def last_heartbeat(self) -> datetime | None:
        """When the node's agent last proved alive (its watch's heartbeat); None when no
        agent activity is running."""
        try:
            described = await self._handle().describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise NotFound(self.what, "not found") from exc
            return None
        times = [a.last_heartbeat_time.ToDatetime(tzinfo=UTC)
                 for a in described.raw_description.pending_activities
                 if a.HasField("last_heartbeat_time") and a.activity_type.name.startswith("agent.")]
        return max(times) if times else None

    async def cordon(self, reason: str = "", *, by: str | None = None) -> NodeOperationResult:
        """Hold the node out of service (it keeps running). Only an operator's uncordon
        lifts it: no recovery, diagnostic or pool change does."""
        return await self._operate("cordon", CordonInput(reason=reason, by=by or who_asks()))

    async def uncordon(self, reason: str = "", *, by: str | None = None) -> NodeOperationResult:
        """Lift the operator's hold; refused while an unhealthy verdict holds the node."""
        return await self._operate("uncordon", UncordonInput(reason=reason, by=by or who_asks()))

    async def clear(self, reason: str = "", *, by: str | None = None) -> NodeOperationResult:
        """Clear an unhealthy verdict (the machine was checked or fixed); refused while the
        hardware still reports the fault."""
        return await self._operate("clear", ClearInput(reason=reason, by=by or who_asks()))

    async def drain(self, reason: str = "", *, grace: float = 600.0,
                    by: str | None = None) -> NodeOperationResult:
        """Wait for GPU work to end (up to `grace` seconds), terminate, replace."""
        return await self._operate("drain", DrainInput(reason=reason, grace_seconds=grace,
                                                        by=by or who_asks()))

    async def terminate(self, reason: str = "", *, by: str | None = None) -> NodeOperationResult:
        """Terminate now (no drain); the pool replaces the node."""
        return await self._operate("terminate", TerminateInput(reason=reason, by=by or who_asks()))

    async def _operate(self, update: str, payload: SignalModel) -> NodeOperationResult:
        with translated(self.what):
            result: NodeOperationResult = await self._handle().execute_update(
                update, payload, result_type=NodeOperationResult)
        return result

