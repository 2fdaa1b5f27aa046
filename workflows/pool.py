"""PoolWorkflow (id `pool/<name>`): keeps a pool at its target size and decides repairs.

It starts one NodeWorkflow per machine (children with ParentClosePolicy.ABANDON, so a
pool's continue-as-new or termination never touches a machine), replaces nodes that leave,
retires nodes when the pool shrinks, and approves repairs of unhealthy or unreachable nodes
— unless too much of the pool failed at once, when it pauses repairs until an operator
sends `resume_repair`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ParentClosePolicy

from .upgrade import continue_as_new, upgrade_due

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from navarch.config.schema import QueueSource, UtilizationSource
    from navarch.contracts.autoscale import (
        MetricsRequest,
        PoolMetrics,
        QueueReport,
        ScaleDecision,
        gather_metrics,
    )
    from navarch.contracts.base import (
        FORBID_UNKNOWN,
        InvalidPayload,
        SignalModel,
        decode_payload,
        expect_no_payload,
        invalid_request,
        refused,
    )
    from navarch.contracts.fleet import ListNodesInput, live_nodes
    from navarch.contracts.names import SA_POOL, node_workflow_id, pool_workflow_id
    from navarch.contracts.node import (
        CordonInput,
        CordonSource,
        DrainInput,
        NodeInput,
        NodeReport,
        NodeState,
        RetireInput,
        SpecUpdate,
        TransitionReason,
        UncordonInput,
    )
    from navarch.contracts.pool import (
        DrainNodeInput,
        NodeRef,
        PoolEvent,
        PoolInput,
        PoolNode,
        PoolState,
        PoolStatus,
        PoolUpdateResult,
        ScaleInput,
        invalid_pool_input,
    )
    from navarch.contracts.spec import PoolSpec
    from navarch.decisions import pool as decide
    from navarch.decisions.autoscale import PoolSnapshot, evaluate, needs
    from navarch.decisions.node import spec_changes

from . import metrics
from .node import NODE_PATCHES, NodeWorkflow

M = TypeVar("M", bound=BaseModel)

# The patch after which operator-held nodes sit outside the pool's count, and running nodes
# hear of spec changes (issue 15).
HOLDS_PATCH = "holds-v1"
# One wake timer for the loop, armed again only when it fired or an earlier wake is due,
# instead of a timer for every turn of the loop (see `_sleep`).
STEADY_WAKE_PATCH = "steady-wake-v1"
KEEP_FINISHED_NODES = 50
KEEP_EVENTS = 100
KEEP_DECISIONS = 50
MAX_STARTS_PER_TASK = 100
KEEP_UTILIZATION = 60  # samples; the predictive autoscaler's lookback reads the newest
METRICS_TIMEOUT = timedelta(minutes=2)
METRICS_RETRY = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=2))
ADOPT_TIMEOUT = timedelta(minutes=2)
ADOPT_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2),
                          non_retryable_error_types=["InvalidRequestError"])
# Queue depth pushed by a scheduler counts for this many evaluation intervals.
QUEUE_REPORT_INTERVALS = 10
_BOOT_FAILURES = frozenset({TransitionReason.PROVISION_FAILED, TransitionReason.BOOTSTRAP_FAILED,
                            TransitionReason.BOOT_TIMEOUT, TransitionReason.BOOT_CHECK_FAILED})


@workflow.defn(name="PoolWorkflow")
class PoolWorkflow:
    @workflow.init
    def __init__(self, params: PoolInput) -> None:
        # Set from the input before any signal is handled: signals that reach a new run
        # (after continue-as-new) may be delivered before `run` starts.
        self._spec: PoolSpec | None = params.spec
        self._state = params.state or PoolState(target=params.spec.min_nodes)
        self._dirty = True
        self._holds = True  # False: a run from before HOLDS_PATCH
        self._more = False  # nodes still to start after this round (batched starts)
        self._steady_wake = False  # False: a run from before STEADY_WAKE_PATCH
        self._wake: asyncio.Task[None] | None = None  # the loop's wake timer
        self._wake_at = datetime.min.replace(tzinfo=UTC)  # when it fires
        self._background: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ handlers

    @workflow.query(name="status")
    def status(self) -> PoolStatus:
        spec, s = self._spec_(), self._state
        live = [n for n in s.nodes.values() if not n.state.is_terminal()]
        counts: dict[str, int] = {}
        gpus: dict[str, int] = {}
        shapes = {c.name: c.gpu_shape() for c in spec.providers}
        for n in live:
            counts[n.state.value] = counts.get(n.state.value, 0) + 1
            shape = shapes.get(n.provider)
            if shape is not None:
                gpus[shape.model] = gpus.get(shape.model, 0) + shape.count
        return PoolStatus(
            name=spec.name, target=s.target, min_nodes=spec.min_nodes, max_nodes=spec.max_nodes,
            counts=counts, gpus=gpus, ready=counts.get(NodeState.READY.value, 0),
            schedulable=sum(1 for n in live if n.state.is_schedulable()),
            nodes=sorted(s.nodes.values(), key=lambda n: n.created_at),
            repair_paused=s.repair_paused, repair_paused_reason=s.repair_paused_reason,
            awaiting_repair=list(s.pending_repairs), provisioned=s.provisioned,
            replacements=s.replacements, events=s.events[-20:], runs=s.runs,
            deleting=s.deleting, capacity_misses=dict(s.capacity_misses),
            autoscaler=spec.autoscaling.type if spec.autoscaling else None,
            utilization=s.utilization[-1] if s.utilization else None,
            queue_depth=s.queue_depth, last_evaluation=s.last_evaluation,
            decisions=s.decisions[-20:], metrics_errors=list(s.metrics_errors),
        )

    # Signals are fire-and-forget: a payload that does not validate is refused with one
    # warning and a `signal_rejected` event, and can never fail a workflow task.

    @workflow.signal(name="node_state_changed")
    def node_state_changed(self, *payloads: Any) -> None:
        report = self._decode("node_state_changed", NodeReport, payloads)
        if report is None or not self._from_own_node(report):
            return
        s = self._state
        node = s.nodes[report.node_id]
        if report.seq <= node.seq:
            return  # an older report arriving late
        if not node.run_chain:
            node.run_chain = report.run_chain
        if node.state is not report.state:
            node.since = report.at
        node.state, node.health, node.reason = report.state, report.health, report.reason
        node.provider, node.region, node.seq = report.provider, report.region, report.seq
        node.cordon_source = report.cordon_source
        node.holds, node.verdict = list(report.holds), report.verdict
        was_awaiting = node.awaiting_repair
        node.awaiting_repair = report.awaiting_repair and not report.state.is_terminal()
        if node.awaiting_repair and not was_awaiting:
            node.fault_at = node.fault_at or report.at
            self._repair_requested(node, report)
        elif not node.awaiting_repair and node.node_id in s.pending_repairs:
            s.pending_repairs.remove(node.node_id)
        if report.state is NodeState.READY:
            s.boot_failure_streak, s.next_provision_at = 0, None
            replaced = s.nodes.get(node.replacement_of or "")
            if replaced is not None and replaced.fault_at is not None and not node.replaced_ready:
                node.replaced_ready = True
                metrics.observe_seconds(
                    "fault_to_replacement_ready_seconds", report.at - replaced.fault_at,
                    {"pool": self._spec_().name},
                    "from a node's fault to its replacement being ready")
        until = report.at + self._spec_().capacity_memory
        for key in report.capacity_misses:
            if key not in s.capacity_misses or s.capacity_misses[key] < until:
                s.capacity_misses[key] = until
        if report.state.is_terminal():
            self._node_left(node)
        self._dirty = True

    def _from_own_node(self, report: NodeReport) -> bool:
        """A report counts only from a node this pool started, sent by the run chain it
        started under that id: a made-up report can neither add a node nor move one."""
        s = self._state
        node = s.nodes.get(report.node_id)
        if not workflow.patched("verified-reports-v1"):
            # Histories from before: any report was taken, an unknown node added.
            if node is None:
                s.nodes[report.node_id] = PoolNode(node_id=report.node_id, state=report.state,
                                                   since=report.at, created_at=report.at)
            return True
        if node is None:
            self._reject("node_state_changed", f"node {report.node_id!r} is not one of "
                         "this pool's nodes")
            return False
        if node.run_chain and report.run_chain != node.run_chain:
            self._reject("node_state_changed", f"report for node {report.node_id} does not "
                         f"come from its workflow (run chain {report.run_chain!r})")
            return False
        return True

    @workflow.signal(name="scale")
    def scale(self, *payloads: Any) -> None:
        params = self._decode("scale", ScaleInput, payloads)
        if params is None:
            return
        try:
            self._apply_scale(params)
        except InvalidPayload as exc:
            self._reject("scale", str(exc))

    def _apply_scale(self, params: ScaleInput) -> None:
        spec = self._spec_()
        lo = params.min_nodes if params.min_nodes is not None else spec.min_nodes
        hi = params.max_nodes if params.max_nodes is not None else spec.max_nodes
        if lo > hi:
            raise InvalidPayload(f"min_nodes {lo} > max_nodes {hi}")
        spec.min_nodes, spec.max_nodes = lo, hi
        target = params.target if params.target is not None else self._state.target
        self._set_target(target, "scale signal")

    # Updates: `scale` and `update_spec`, confirmed. The validator refuses a malformed or
    # impossible request before it enters history; the caller gets the bounds and target.

    @workflow.update(name="scale")
    def scale_op(self, *payloads: Any) -> PoolUpdateResult:
        self._apply_scale(decode_payload(ScaleInput, payloads))
        return self._update_result("scaled")

    @scale_op.validator
    def _validate_scale(self, *payloads: Any) -> None:
        params = self._valid("scale", ScaleInput, payloads)
        spec = self._spec_()
        lo = params.min_nodes if params.min_nodes is not None else spec.min_nodes
        hi = params.max_nodes if params.max_nodes is not None else spec.max_nodes
        if lo > hi:
            raise refused("scale", f"min_nodes {lo} would exceed max_nodes {hi}")

    @workflow.update(name="update_spec")
    def update_spec_op(self, *payloads: Any) -> PoolUpdateResult:
        spec = decode_payload(PoolSpec, payloads, optional=False, context=FORBID_UNKNOWN)
        if spec == self._spec_():
            return self._update_result("unchanged")
        running, new_only, live = self._set_spec(spec)
        parts = ["updated"]
        if running:
            parts.append(f"{live} running node(s) adopt: {', '.join(running)}")
        if new_only:
            parts.append(f"new nodes only: {', '.join(new_only)}")
        return self._update_result("; ".join(parts))

    @update_spec_op.validator
    def _validate_update_spec(self, *payloads: Any) -> None:
        spec = self._valid("update_spec", PoolSpec, payloads, context=FORBID_UNKNOWN)
        if spec.name != self._spec_().name:
            raise refused("update_spec", f"the spec is for pool {spec.name!r}, "
                           f"not {self._spec_().name!r}")

    def _valid(self, name: str, model: type[M], payloads: tuple[Any, ...],
               context: dict[str, Any] | None = None) -> M:
        try:
            params = decode_payload(model, payloads, optional=False, context=context)
        except InvalidPayload as exc:
            raise invalid_request(name, exc) from None
        if self._state.deleting:
            raise refused(name, "the pool is being deleted")
        return params

    def _update_result(self, detail: str) -> PoolUpdateResult:
        spec = self._spec_()
        return PoolUpdateResult(name=spec.name, target=self._state.target,
                                min_nodes=spec.min_nodes, max_nodes=spec.max_nodes,
                                detail=detail)

    @workflow.signal(name="report_queue_depth")
    def report_queue_depth(self, *payloads: Any) -> None:
        """A workload scheduler's queue, for a `queue` autoscaler (source: signal)."""
        report = self._decode("report_queue_depth", QueueReport, payloads)
        if report is None:
            return
        s = self._state
        s.queue_depth, s.pending_jobs = report.queue_depth, report.pending_jobs
        s.queue_reported_at = workflow.now()

    @workflow.signal(name="update_spec")
    def update_spec(self, *payloads: Any) -> None:
        spec = self._decode("update_spec", PoolSpec, payloads, optional=False)
        if spec is None:
            return
        if spec.name != self._spec_().name:
            self._reject("update_spec", f"the spec is for pool {spec.name!r}")
            return
        self._set_spec(spec)

    def _set_spec(self, spec: PoolSpec) -> tuple[list[str], list[str], int]:
        """Take a new spec; forward it to every live node when it changes what running
        nodes use. Returns what running nodes adopt, what applies to new nodes only, and
        how many nodes it was forwarded to."""
        old, self._spec = self._spec_(), spec
        running, new_only = spec_changes(old, spec)
        self._event("spec_updated", f"min {spec.min_nodes}, max {spec.max_nodes}"
                    + (f"; running nodes adopt {', '.join(running)}" if running else "")
                    + (f"; new nodes only: {', '.join(new_only)}" if new_only else ""))
        forwarded = 0
        if running and self._holds:
            for node in self._state.nodes.values():
                if not node.state.is_terminal():
                    self._forward(node.node_id, NodeWorkflow.update_spec, SpecUpdate(spec=spec))
                    forwarded += 1
        self._set_target(self._state.target, "spec updated")
        return running, new_only, forwarded

    @workflow.signal(name="cordon_node")
    def cordon_node(self, *payloads: Any) -> None:
        if params := self._decode("cordon_node", NodeRef, payloads, optional=False):
            self._forward(params.node_id, NodeWorkflow.cordon, CordonInput(reason=params.reason))

    @workflow.signal(name="uncordon_node")
    def uncordon_node(self, *payloads: Any) -> None:
        if params := self._decode("uncordon_node", NodeRef, payloads, optional=False):
            self._forward(params.node_id, NodeWorkflow.uncordon,
                          UncordonInput(reason=params.reason))

    @workflow.signal(name="drain_node")
    def drain_node(self, *payloads: Any) -> None:
        if params := self._decode("drain_node", DrainNodeInput, payloads, optional=False):
            self._forward(params.node_id, NodeWorkflow.drain,
                          DrainInput(reason=params.reason, grace_seconds=params.grace_seconds))

    @workflow.signal(name="resume_repair")
    def resume_repair(self, *payloads: Any) -> None:
        if not self._no_payload("resume_repair", payloads):
            return
        s = self._state
        if s.repair_paused:
            s.repair_paused, s.repair_paused_reason = False, ""
            s.repair_requests = {}
            self._event("repair_resumed", f"{len(s.pending_repairs)} repair(s) approved")
        self._approve_pending()
        self._dirty = True

    @workflow.signal(name="delete")
    def delete(self, *payloads: Any) -> None:
        if not self._no_payload("delete", payloads):
            return
        if not self._state.deleting:
            self._state.deleting = True
            self._event("deleting", "draining and terminating every node")
        self._dirty = True

    def _decode(self, signal: str, model: type[M], payloads: tuple[Any, ...], *,
                optional: bool = True) -> M | None:
        try:
            return decode_payload(model, payloads, optional=optional)
        except InvalidPayload as exc:
            self._reject(signal, str(exc))
            return None

    def _no_payload(self, signal: str, payloads: tuple[Any, ...]) -> bool:
        try:
            expect_no_payload(payloads)
        except InvalidPayload as exc:
            self._reject(signal, str(exc))
            return False
        return True

    def _reject(self, signal: str, problem: str) -> None:
        workflow.logger.warning("%s: %s refused: %s", workflow.info().workflow_id, signal,
                                problem)
        self._event("signal_rejected", f"{signal}: {problem}")

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, params: PoolInput) -> PoolStatus:
        wanted = pool_workflow_id(params.spec.name)
        if workflow.info().workflow_id != wanted and workflow.patched("pool-id-check-v1"):
            # Its nodes would report to `wanted`, and this pool would never hear from them.
            raise invalid_pool_input(
                f"workflow id {workflow.info().workflow_id!r} does not match the spec's "
                f"name {params.spec.name!r}; start the pool as {wanted!r}")
        self._holds = workflow.patched(HOLDS_PATCH)
        self._steady_wake = workflow.patched(STEADY_WAKE_PATCH)
        if params.state is None:
            self._event("created", f"target {self._state.target}")
        workflow.upsert_search_attributes([SA_POOL.value_set(params.spec.name)])
        if params.state is None and self._holds:
            await self._adopt()
        while True:
            if self._autoscale_due():
                await self._autoscale()
            await self._reconcile()
            self._show()
            s = self._state
            if s.deleting and not any(not n.state.is_terminal() for n in s.nodes.values()):
                break
            if self._should_continue_as_new():
                await self._drain_background()
                await workflow.wait_condition(workflow.all_handlers_finished)
                s.runs += 1
                continue_as_new(PoolInput(spec=self._spec_(), state=s))
            self._dirty = self._more
            await self._sleep()
        await self._drain_background()
        return self.status()

    async def _sleep(self) -> None:
        """Wait for something to do, or the next wake.

        One timer wakes the loop: it is armed again only when it has fired or an earlier
        wake is due, never for a turn of the loop as such. The SDK may run the events of one
        workflow task in two activations (a worker that answered a query while the task
        waited for a dead worker has run the first events already) where a replay runs
        them in one; a timer per turn then gave the replay one timer fewer, and it failed
        with a nondeterminism error (tests/test_scale_out_e2e.py)."""
        if not self._steady_wake:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._dirty, timeout=self._next_wake())
            return
        wake = self._next_wake()
        at = workflow.now() + wake
        if self._wake is None or self._wake.done() or at < self._wake_at:
            if self._wake is not None:
                self._wake.cancel()
            self._wake, self._wake_at = asyncio.ensure_future(self._wake_up(wake)), at
        await workflow.wait_condition(lambda: self._dirty)

    async def _wake_up(self, after: timedelta) -> None:
        await workflow.sleep(after)
        self._dirty = True

    async def _adopt(self) -> None:
        """A pool that starts while node workflows of its name still run (it was terminated
        and applied again) takes them back instead of starting new machines beside them."""
        s = self._state
        try:
            found = await workflow.execute_activity(
                live_nodes, ListNodesInput(pool=self._spec_().name),
                start_to_close_timeout=ADOPT_TIMEOUT, heartbeat_timeout=ADOPT_TIMEOUT / 2,
                retry_policy=ADOPT_RETRY)
        except ActivityError as err:
            self._event("adopt_failed", f"could not list the pool's running nodes: "
                        f"{err.cause or err}")
            return
        new = [n for n in found if n.node_id not in s.nodes]
        for node in new:
            s.nodes[node.node_id] = node
            s.provisioned += 1
        if new:
            self._event("adopted", f"{len(new)} running node(s): "
                        + ", ".join(n.node_id for n in new[:10])
                        + (" ..." if len(new) > 10 else ""))
        for node in new:  # repairs they asked the old run for: through the valve again
            if node.awaiting_repair:
                self._request_repair(node.node_id, workflow.now())

    # ------------------------------------------------------------------ autoscaling

    def _autoscale_due(self) -> bool:
        s, spec = self._state, self._spec_()
        if spec.autoscaling is None or s.deleting or not workflow.patched("autoscale-v1"):
            return False
        return s.next_eval_at is None or workflow.now() >= s.next_eval_at

    async def _autoscale(self) -> None:
        """One evaluation: gather metrics (one activity, aggregate only), ask the pool's
        autoscaler, and move the target when it says so."""
        spec, s = self._spec_(), self._state
        config = spec.autoscaling
        assert config is not None
        now = workflow.now()
        s.next_eval_at = now + spec.autoscale_interval
        wanted = needs(config)
        sources = config.metrics
        util_source = ((sources.utilization if sources else UtilizationSource())
                       if "utilization" in wanted else None)
        queue_source = (sources.queue if sources else QueueSource()) if "queue" in wanted else None
        fetch_queue = queue_source if queue_source and queue_source.source != "signal" else None
        gathered = PoolMetrics()
        if util_source is not None or fetch_queue is not None:
            try:
                # A local activity: the pool's own worker runs it inside the workflow task,
                # so an evaluation costs one marker event instead of an activity's three
                # and a second workflow task.
                gathered = await workflow.execute_local_activity(
                    gather_metrics, MetricsRequest(pool=spec.name, utilization=util_source,
                                                   queue=fetch_queue),
                    start_to_close_timeout=METRICS_TIMEOUT,
                    retry_policy=METRICS_RETRY)
            except ActivityError as err:
                gathered.errors.append(f"metrics: {err.cause or err}")
        s.metrics_errors = gathered.errors
        if gathered.utilization is not None:
            s.utilization.append(gathered.utilization)
            del s.utilization[:-KEEP_UTILIZATION]
        s.idle_nodes = gathered.idle_nodes
        if fetch_queue is not None:
            s.queue_depth, s.pending_jobs = gathered.queue_depth, gathered.pending_jobs
        elif (queue_source is not None and s.queue_reported_at is not None
              and now - s.queue_reported_at > spec.autoscale_interval * QUEUE_REPORT_INTERVALS):
            s.queue_depth = s.pending_jobs = None  # a stale push is no evidence
        live = [n for n in s.nodes.values() if not n.state.is_terminal() and not n.retiring]
        if self._holds:
            not_serving = decide.not_serving(live)
        else:  # A node cordoned for diagnostics comes back within minutes: still capacity.
            not_serving = sum(1 for n in live if n.state in decide.NOT_SERVING
                              and n.cordon_source != CordonSource.DIAGNOSTICS)
        snapshot = PoolSnapshot(
            current=s.target, serving=max(0, s.target - not_serving),
            min_nodes=spec.min_nodes, max_nodes=spec.max_nodes,
            utilization=gathered.utilization, history=list(s.utilization),
            queue_depth=s.queue_depth, pending_jobs=s.pending_jobs, now=now,
            last_scale_at=s.last_scale_at, cooldown=spec.cooldown)
        decision = evaluate(config, snapshot)
        s.last_evaluation = decision.reason
        if decision.target != s.target:
            s.decisions.append(ScaleDecision(
                at=now, from_target=s.target, to_target=decision.target, reason=decision.reason,
                utilization=gathered.utilization, queue_depth=s.queue_depth))
            del s.decisions[:-KEEP_DECISIONS]
            metrics.count("autoscaler_decisions",
                          {"pool": spec.name, "autoscaler": config.type,
                           "direction": "up" if decision.target > s.target else "down"},
                          "changes of a pool's target by its autoscaler")
            self._set_target(decision.target, f"{config.type}: {decision.reason}", clamp=False)

    async def _reconcile(self) -> None:
        spec, s = self._spec_(), self._state
        self._more = False
        if s.deleting:
            s.target = 0
        active = [n for n in s.nodes.values() if not n.state.is_terminal() and not n.retiring]
        if self._holds and not s.deleting:
            active = [n for n in active if decide.in_count(n)]  # held nodes sit outside
        missing = s.target - len(active)
        now = workflow.now()
        if missing > 0 and (s.next_provision_at is None or now >= s.next_provision_at):
            # A node's input carries the pool's spec (~5 KB): hundreds of starts in one
            # workflow task make a completion of megabytes that outlasts the task's timeout.
            if missing > MAX_STARTS_PER_TASK and workflow.patched("start-batches-v1"):
                missing, self._more = MAX_STARTS_PER_TASK, True  # the rest next round
            await asyncio.gather(*(self._start_node() for _ in range(missing)))
        elif missing < 0:
            reason = (TransitionReason.POOL_DELETED if s.deleting
                      else TransitionReason.SCALE_DOWN)
            chosen = (self._pick_for_removal(active, -missing) if not self._holds
                      else active if s.deleting
                      else decide.removal_order(active, set(s.idle_nodes), -missing))
            for node in chosen:
                node.retiring = True
                self._event("retire", f"{node.node_id} ({reason.value})")
                self._forward(node.node_id, NodeWorkflow.retire, RetireInput(
                    reason=reason, grace_seconds=spec.health.drain_grace.total_seconds()))
        self._prune()

    async def _start_node(self) -> None:
        spec, s = self._spec_(), self._state
        node_id = str(workflow.uuid4())
        now = workflow.now()
        replaced = self._next_replaced()
        s.nodes[node_id] = PoolNode(node_id=node_id, state=NodeState.PROVISIONING, since=now,
                                    created_at=now, replacement_of=replaced)
        s.provisioned += 1
        if replaced:
            s.replacements += 1
            self._event("replacement", f"{node_id} replaces {replaced}")
        s.capacity_misses = {k: v for k, v in s.capacity_misses.items() if v > now}
        child = await workflow.start_child_workflow(
            NodeWorkflow.run,
            NodeInput(node_id=node_id, spec=spec, replacement_of=replaced,
                      rotation=s.provisioned - 1, avoid=sorted(s.capacity_misses),
                      patches=list(NODE_PATCHES)),
            id=node_workflow_id(node_id),
            task_queue=workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"node {node_id[:8]} · pool {spec.name} · {spec.instance_type}"
                           + (f" · replaces {replaced[:8]}" if replaced else ""),
        )
        node = s.nodes.get(node_id)
        if node is not None and not node.run_chain:
            node.run_chain = child.first_execution_run_id or ""

    def _next_replaced(self) -> str | None:
        """The most recent node that left for a reason that calls for a replacement and has
        not been replaced yet."""
        s = self._state
        replaced = {n.replacement_of for n in s.nodes.values() if n.replacement_of}
        gone = [n for n in s.nodes.values() if n.state.is_terminal() and not n.retiring
                and n.node_id not in replaced]
        gone.sort(key=lambda n: n.since)
        return gone[-1].node_id if gone else None

    def _pick_for_removal(self, active: list[PoolNode], count: int) -> list[PoolNode]:
        """Runs before HOLDS_PATCH: `decisions.pool.removal_order` without its rule for
        operator holds. Remove when no such run remains."""
        idle = set(self._state.idle_nodes)
        candidates = [n for n in active if n.cordon_source != CordonSource.DIAGNOSTICS]
        return sorted(candidates, key=lambda n: decide.removal_rank(n, idle))[:count]

    def _node_left(self, node: PoolNode) -> None:
        s = self._state
        if node.node_id in s.pending_repairs:
            s.pending_repairs.remove(node.node_id)
        self._event("node_left", f"{node.node_id}: {node.state.value} ({node.reason.value})")
        if node.reason in _BOOT_FAILURES and not node.retiring:
            s.boot_failure_streak += 1
            s.next_provision_at = workflow.now() + decide.provision_backoff(
                s.boot_failure_streak)

    # ------------------------------------------------------------------ repair valve

    def _repair_requested(self, node: PoolNode, report: NodeReport) -> None:
        self._event("repair_requested", f"{node.node_id}: {report.reason.value} {report.detail}")
        self._request_repair(node.node_id, report.at)

    def _request_repair(self, node_id: str, at: datetime) -> None:
        """Count a repair request against the valve, and approve what the valve allows."""
        s, spec = self._state, self._spec_()
        s.repair_requests[node_id] = at
        if node_id not in s.pending_repairs:
            s.pending_repairs.append(node_id)
        if not spec.health.auto_replace:
            return
        size = max(s.target, len([n for n in s.nodes.values() if not n.state.is_terminal()]))
        s.repair_requests, too_many = decide.valve_closes(
            s.repair_requests, workflow.now(), spec.health.unhealthy_window, size,
            spec.health.max_unhealthy_share)
        if not s.repair_paused and too_many:
            s.repair_paused = True
            s.repair_paused_reason = (
                f"{len(s.repair_requests)} of {size} nodes needed repair within "
                f"{spec.health.unhealthy_window} (more than "
                f"{spec.health.max_unhealthy_share:.0%}); send resume_repair to continue"
            )
            self._event("repair_paused", s.repair_paused_reason)
        self._approve_pending()

    def _approve_pending(self) -> None:
        s, spec = self._state, self._spec_()
        if s.repair_paused or not spec.health.auto_replace:
            return
        for node_id in list(s.pending_repairs):
            s.pending_repairs.remove(node_id)
            self._event("repair_approved", node_id)
            self._forward(node_id, NodeWorkflow.approve_repair)

    # ------------------------------------------------------------------ helpers

    def _set_target(self, target: int, why: str, *, clamp: bool = True) -> None:
        """Move the target (within the pool's bounds, unless the autoscaler already applied
        the bounds in force, which a schedule window may widen)."""
        spec, s = self._spec_(), self._state
        clamped = max(spec.min_nodes, min(spec.max_nodes, target)) if clamp else target
        if clamped != s.target:
            self._event("scale", f"{s.target} → {clamped} ({why})")
            s.target = clamped
            s.last_scale_at = workflow.now()
        self._dirty = True

    def _forward(self, node_id: str, signal: Callable[..., None],
                 payload: SignalModel | None = None) -> None:
        """Send one of NodeWorkflow's signals (by its handler) to a node of this pool."""
        if node_id not in self._state.nodes:
            workflow.logger.warning("%s ignored: node %s is not in pool %s", signal.__name__,
                                    node_id, self._spec_().name)
            return
        self._background.append(asyncio.ensure_future(self._signal_node(node_id, signal,
                                                                       payload)))

    async def _signal_node(self, node_id: str, signal: Callable[..., None],
                           payload: SignalModel | None) -> None:
        handle = workflow.get_external_workflow_handle(node_workflow_id(node_id))
        try:
            if payload is None:
                await handle.signal(signal)
            else:
                await handle.signal(signal, payload)
        except Exception as exc:  # the node's workflow may already have ended
            workflow.logger.info("signal %s to node %s failed: %s", signal.__name__, node_id,
                                 exc)

    async def _drain_background(self) -> None:
        while self._background:
            task = self._background.pop(0)
            try:
                await task
            except Exception as exc:
                workflow.logger.info("background signal failed: %s", exc)

    def _event(self, kind: str, detail: str = "") -> None:
        s = self._state
        s.events.append(PoolEvent(at=workflow.now(), kind=kind, detail=detail))
        del s.events[:-KEEP_EVENTS]

    def _prune(self) -> None:
        s = self._state
        finished = sorted((n for n in s.nodes.values() if n.state.is_terminal()),
                          key=lambda n: n.since)
        for node in finished[:-KEEP_FINISHED_NODES]:
            del s.nodes[node.node_id]

    def _next_wake(self) -> timedelta:
        spec, s = self._spec_(), self._state
        wake = spec.autoscale_interval
        if s.next_provision_at is not None:
            wait = s.next_provision_at - workflow.now()
            wake = min(wake, max(wait, timedelta(seconds=1)))
        if s.next_eval_at is not None and not s.deleting:
            wake = min(wake, max(s.next_eval_at - workflow.now(), timedelta(milliseconds=100)))
        return wake

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        limit = self._spec_().continue_as_new_after
        if limit is not None and info.get_current_history_length() >= limit:
            return True
        return info.is_continue_as_new_suggested() or upgrade_due()

    def _show(self) -> None:
        status = self.status()
        parts = [f"{count} {state}" for state, count in sorted(status.counts.items())]
        text = f"target **{status.target}** · " + (", ".join(parts) or "no nodes")
        if status.repair_paused:
            text += f" · **repair paused**: {status.repair_paused_reason}"
        elif status.awaiting_repair:
            text += f" · {len(status.awaiting_repair)} awaiting repair"
        workflow.set_current_details(text)

    def _spec_(self) -> PoolSpec:
        assert self._spec is not None
        return self._spec
