"""NodeWorkflow (id `node/<node_id>`): one machine's life, from the provision call to the
termination of its instance.

    provisioning → booting → boot_checking → ready ⇄ degraded → cordoned → draining
    → terminating → terminated       (+ failed: could not provision / boot; unreachable)

Liveness rides on the heartbeats of one long-running `watch_health` activity on the node's
own queue, so a healthy node adds almost nothing to history. Repairs (terminate and
replace, for an unhealthy or unreachable node) wait for the pool's approval: the pool
holds the safety valve that stops repairs when too much of it fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

from .upgrade import continue_as_new, upgrade_due

with workflow.unsafe.imports_passed_through():
    from navarch.config.instance_types import gpu_shape
    from navarch.contracts.agent import (
        BootCheckInput,
        BootCheckResult,
        DiagnosticInput,
        Inventory,
        RebootHostInput,
        ResetGpuInput,
        WaitIdleInput,
        WatchHealthInput,
        WatchHealthResult,
        boot_check,
        diagnostic_limit,
        gpu_inventory,
        reboot_host,
        reset_gpu,
        run_diagnostic,
        wait_idle,
        watch_health,
    )
    from navarch.contracts.base import (
        InvalidPayload,
        SignalModel,
        decode_payload,
        expect_no_payload,
        invalid_request,
        refused,
    )
    from navarch.contracts.cloud import (
        CloudErrorType,
        InstanceState,
        InstanceTypeInfo,
        ProvisionRequest,
        TerminateRequest,
        describe_instance_type,
        get_instance,
        provision,
    )
    from navarch.contracts.cloud import (
        reboot as reboot_instance,
    )
    from navarch.contracts.cloud import (
        terminate as terminate_instance,
    )
    from navarch.contracts.names import (
        SA_HEALTH,
        SA_INSTANCE_TYPE,
        SA_NODE_STATE,
        SA_POOL,
        SA_PROVIDER,
        SA_REGION,
        SA_VERDICT,
        pool_workflow_id,
    )
    from navarch.contracts.node import (
        KEEP_REJECTED,
        MAX_REPAIRS,
        ApproveRepair,
        ClearInput,
        CordonInput,
        CordonSource,
        DrainInput,
        Hold,
        InstanceGoneInput,
        NodeCommand,
        NodeInput,
        NodeOperationResult,
        NodeRecord,
        NodeReport,
        NodeState,
        NodeStatus,
        Rejected,
        RepairAttempt,
        RetireInput,
        SpecUpdate,
        TerminateInput,
        Transition,
        TransitionReason,
        UncordonInput,
    )
    from navarch.contracts.notifier import (
        DrainStatus,
        DrainStatusInput,
        ForceDrainInput,
        NotifyInput,
        SchedulerNode,
        drain_status,
        force_drain,
        notify,
    )
    from navarch.contracts.spec import PoolSpec, ProviderChoice, placement_key
    from navarch.contracts.ssh import SshBootstrapInput, ssh_bootstrap
    from navarch.decisions import node as decide
    from navarch.decisions import repair as ladder
    from navarch.health.events import HealthResult
    from navarch.health.remedy import Remedy, Rung, fault_class

from . import metrics

# Timeouts: each is the longest the step can legitimately take.
PROVISION_TIMEOUT = timedelta(minutes=10)  # GCP/AWS calls wait on the cloud's operation
TERMINATE_TIMEOUT = timedelta(minutes=5)
INVENTORY_TIMEOUT = timedelta(minutes=1)
BOOT_CHECK_TIMEOUT = timedelta(minutes=10)  # includes a memory test on one GPU
# Long calls heartbeat (cloud operations, the GPU memory test): a worker or agent that dies
# mid-call is noticed after this, and the call retried, instead of after the long timeout.
WORK_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
WATCH_FOREVER = timedelta(days=3650)  # watch_health ends on change; heartbeats prove life
DRAIN_STATUS_POLL = timedelta(seconds=10)
# After the grace's forced requeue, cancel or delete: how long the scheduler has to show
# the node empty before the machine goes anyway.
FORCE_SETTLE = timedelta(minutes=2)
BOOT_DEADLINE_BACKSTOP = timedelta(minutes=1)
NOTIFY_TIMEOUT_MARGIN = timedelta(seconds=10)
MAX_TRANSITIONS = 200  # history of transitions kept in state (first one always kept)
REPORT_ATTEMPTS = 4  # tries to tell the pool of a change (1 s, 2 s, 4 s apart)
REPORT_RETRY_DELAY = timedelta(seconds=1)
# A node's run continues as new at least this often, so every node runs current code and
# a patch marker can be retired once no run older than this remains.
RUN_CADENCE = timedelta(days=1)
# The patch that gave cordons their owners and made unhealthy verdicts stick (issue 15).
# Runs started before it keep the old rules until their next continue-as-new.
OWNERSHIP_PATCH = "ownership-v1"
# The patch that asks the cloud about a node's machine as soon as its agent falls silent
# (issue 16): a machine gone there is replaced at once, not after the toleration.
INSTANCE_GONE_PATCH = "instance-gone-v1"
# The patch that repairs in place (issue 18): a reset or a reboot before a replacement.
REPAIR_LADDER_PATCH = "repair-ladder-v1"
# The patch that waits for a new machine's agent in short looks instead of one long task.
BOOT_LOOKS_PATCH = "boot-looks-v1"
# The patch that tells the pool of a boot phase only when it has something to learn from
# it (issue 21): each report costs the node a workflow task and the pool a signal, and a
# ramp of a thousand nodes spent a third of the server's writes on them.
BOOT_REPORTS_PATCH = "boot-reports-v1"
CORDONED_VERDICT_PATCH = "cordoned-verdict-v1"
# The patch that sends the pool one report for the changes of one workflow task (issue 21):
# a fault's cordon and its repair request were two signals, each costing the pool an event
# and the node an event and a workflow task, while a thousand nodes failed at once.
ONE_REPORT_PATCH = "one-report-per-task-v1"
# The patch that asks a new machine's agent for its boot checks at once (issue 21): their
# result carries the inventory, so the agent's first answer registers it and judges it in
# one activity and one workflow task, where the inventory and the checks were two of each.
BOOT_IN_ONE_PATCH = "boot-in-one-v1"
# Every patch of this code. A run started by this code (a pool's new node, a continue-as-
# new) is told in its input that they are all in force, and takes them as applied: asking
# `workflow.patched` in a new run records a marker and upserts TemporalChangeVersion, one
# history event and one visibility write each, three per node before it is ready.
NODE_PATCHES = (OWNERSHIP_PATCH, INSTANCE_GONE_PATCH, REPAIR_LADDER_PATCH, BOOT_LOOKS_PATCH,
                BOOT_REPORTS_PATCH, CORDONED_VERDICT_PATCH, ONE_REPORT_PATCH, BOOT_IN_ONE_PATCH)
RESET_TIMEOUT = timedelta(minutes=5)
REBOOT_CALL_TIMEOUT = timedelta(minutes=2)
REBOOT_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2),
                           non_retryable_error_types=[CloudErrorType.INVALID_REQUEST])
# While a rebooted machine comes back: each look at its agent waits this long at most,
# and the looks are this far apart once the old boot still answers.
BOOT_LOOK_TIMEOUT = timedelta(seconds=30)
BOOT_LOOK_INTERVAL = timedelta(seconds=2)
BOOT_LOOK_RUN = timedelta(seconds=5)  # a look taken by a host that then went down is lost
LOOKUP_TIMEOUT = timedelta(minutes=1)
LOOKUP_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2),
                           non_retryable_error_types=[CloudErrorType.INVALID_REQUEST])

RUN_ONCE = RetryPolicy(maximum_attempts=1)
SSH_HEARTBEAT_TIMEOUT = timedelta(minutes=1)  # the SSH activity beats every few seconds
DESCRIBE_TIMEOUT = timedelta(minutes=1)
DESCRIBE_RETRY = RetryPolicy(maximum_attempts=3, non_retryable_error_types=[
    CloudErrorType.INVALID_REQUEST])
PROVISION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1), maximum_attempts=6,
    non_retryable_error_types=[CloudErrorType.CAPACITY, CloudErrorType.INVALID_REQUEST],
)
TERMINATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2), maximum_attempts=0,
    non_retryable_error_types=[CloudErrorType.INVALID_REQUEST],
)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
    maximum_attempts=5, non_retryable_error_types=["NotifierConfigError"],
)

_FAILED_END = frozenset({
    TransitionReason.PROVISION_FAILED,
    TransitionReason.BOOTSTRAP_FAILED,
    TransitionReason.BOOT_TIMEOUT,
    TransitionReason.BOOT_CHECK_FAILED,
})


_T = TypeVar("_T")


class _RepairInPlace(Exception):
    """The pool approved a repair the ladder does in place (a reset or a reboot)."""

    def __init__(self, choice: ladder.RungChoice):
        self.choice = choice


class _Leave(Exception):
    def __init__(self, reason: TransitionReason, grace: timedelta | None, detail: str = ""):
        self.reason = reason
        self.grace = grace
        self.detail = detail


@workflow.defn(name="NodeWorkflow")
class NodeWorkflow:
    @workflow.init
    def __init__(self, params: NodeInput) -> None:
        spec = self._spec = params.spec
        # Commands from signals and updates, each with a ticket; an update waits for its
        # ticket's outcome.
        self._commands: deque[tuple[NodeCommand, int]] = deque()
        self._tickets = 0
        self._waiting: set[int] = set()  # tickets an update waits on
        self._outcomes: dict[int, str] = {}
        self._monitoring = False  # commands are applied as they come (not queued for later)
        self._closing = False
        self._said = ""  # the last thing the workload scheduler said, as recorded
        self._background: list[asyncio.Task[None]] = []
        self._rotation, self._avoid = params.rotation, list(params.avoid)
        self._in_force = frozenset(params.patches)
        self._outbox: NodeReport | None = None  # the report this task sends the pool
        self._owned = True  # the ownership rules (False: a run from before OWNERSHIP_PATCH)
        self._quiet_boot = False  # boot phases reported only when worth it (BOOT_REPORTS_PATCH)
        self._unreported = False  # a boot phase the pool has not heard of yet
        self._misses_reported = 0  # capacity refusals the pool has heard of
        self._repairing = False  # an in-place repair is under way
        self._woken = False  # a `check_upgrade` signal: look at the target build now
        # All of the node's state but its spec, in one model: what continue-as-new carries.
        resume = params.resume
        if resume is not None:
            self._rec = resume.model_copy(update={"pending": []})
            self._rec.status.report_seq = resume.report_seq  # a record from before the field
            for command in resume.pending:
                self._enqueue(command)
        else:
            self._rec = NodeRecord(status=NodeStatus(
                node_id=params.node_id, pool=spec.name, state=NodeState.PROVISIONING,
                instance_type=spec.instance_type, replacement_of=params.replacement_of,
            ))

    # ------------------------------------------------------------------ handlers

    @workflow.query(name="status")
    def status(self) -> NodeStatus:
        return self._rec.status

    # Signals are fire-and-forget: a payload that does not validate is refused with one
    # warning and a line in the status's `rejected`, and can never fail a workflow task.

    @workflow.signal(name="cordon")
    def cordon(self, *payloads: Any) -> None:
        self._queue("cordon", CordonInput, payloads)

    @workflow.signal(name="uncordon")
    def uncordon(self, *payloads: Any) -> None:
        self._queue("uncordon", UncordonInput, payloads)

    @workflow.signal(name="drain")
    def drain(self, *payloads: Any) -> None:
        self._queue("drain", DrainInput, payloads)

    @workflow.signal(name="terminate")
    def terminate(self, *payloads: Any) -> None:
        self._queue("terminate", TerminateInput, payloads)

    @workflow.signal(name="retire")
    def retire(self, *payloads: Any) -> None:
        self._queue("retire", RetireInput, payloads)

    @workflow.signal(name="clear")
    def clear(self, *payloads: Any) -> None:
        self._queue("clear", ClearInput, payloads)

    @workflow.signal(name="instance_gone")
    def instance_gone(self, *payloads: Any) -> None:
        """From the orphan sweep: the cloud no longer runs this node's machine."""
        self._queue("instance_gone", InstanceGoneInput, payloads)

    @workflow.signal(name="update_spec")
    def update_spec(self, *payloads: Any) -> None:
        """From the pool: its spec changed; adopt what can change on a running machine."""
        try:
            params = decode_payload(SpecUpdate, payloads, optional=False)
        except InvalidPayload as exc:
            self._reject("update_spec", str(exc))
            return
        if params.spec.name != self._st().pool:
            self._reject("update_spec", f"the spec is for pool {params.spec.name!r}")
            return
        self._enqueue(params)

    @workflow.signal(name="check_upgrade")
    def check_upgrade(self, *payloads: Any) -> None:
        """Wake and look whether a newer build is the target (send it after making a build
        current): a quiet node moves now instead of at its daily continue-as-new."""
        self._woken = True

    @workflow.signal(name="approve_repair")
    def approve_repair(self, *payloads: Any) -> None:
        try:
            expect_no_payload(payloads)
        except InvalidPayload as exc:
            self._reject("approve_repair", str(exc))
            return
        self._enqueue(ApproveRepair())

    def _queue(self, name: str, model: type[SignalModel], payloads: tuple[Any, ...]) -> None:
        try:
            params = cast(NodeCommand, decode_payload(model, payloads))
        except InvalidPayload as exc:
            self._reject(name, str(exc))
            return
        self._enqueue(params)

    def _enqueue(self, command: NodeCommand) -> int:
        self._tickets += 1
        self._commands.append((command, self._tickets))
        return self._tickets

    def _reject(self, signal: str, problem: str) -> None:
        st = self._st()
        workflow.logger.warning("%s: %s refused: %s", workflow.info().workflow_id, signal,
                                problem)
        st.rejected.append(Rejected(at=workflow.now(), signal=signal, problem=problem))
        del st.rejected[:-KEEP_REJECTED]

    # Updates: the same four operations, confirmed. The validator refuses a malformed or
    # impossible request before it enters history, with the reason; the caller gets the
    # outcome (`NodeOperationResult`).

    @workflow.update(name="cordon")
    async def cordon_op(self, *payloads: Any) -> NodeOperationResult:
        return await self._operate("cordon", decode_payload(CordonInput, payloads))

    @cordon_op.validator
    def _validate_cordon(self, *payloads: Any) -> None:
        self._validate("cordon", CordonInput, payloads)

    @workflow.update(name="uncordon")
    async def uncordon_op(self, *payloads: Any) -> NodeOperationResult:
        return await self._operate("uncordon", decode_payload(UncordonInput, payloads))

    @uncordon_op.validator
    def _validate_uncordon(self, *payloads: Any) -> None:
        self._validate("uncordon", UncordonInput, payloads)

    @workflow.update(name="drain")
    async def drain_op(self, *payloads: Any) -> NodeOperationResult:
        return await self._operate("drain", decode_payload(DrainInput, payloads))

    @drain_op.validator
    def _validate_drain(self, *payloads: Any) -> None:
        self._validate("drain", DrainInput, payloads)

    @workflow.update(name="terminate")
    async def terminate_op(self, *payloads: Any) -> NodeOperationResult:
        return await self._operate("terminate", decode_payload(TerminateInput, payloads))

    @terminate_op.validator
    def _validate_terminate(self, *payloads: Any) -> None:
        self._validate("terminate", TerminateInput, payloads)

    @workflow.update(name="clear")
    async def clear_op(self, *payloads: Any) -> NodeOperationResult:
        return await self._operate("clear", decode_payload(ClearInput, payloads))

    @clear_op.validator
    def _validate_clear(self, *payloads: Any) -> None:
        self._validate("clear", ClearInput, payloads)

    def _validate(self, name: str, model: type[SignalModel], payloads: tuple[Any, ...]) -> None:
        try:
            params = cast(NodeCommand, decode_payload(model, payloads))
        except InvalidPayload as exc:
            raise invalid_request(name, exc) from None
        refusal = self._refusal(params)
        if refusal:
            raise refused(name, refusal)

    def _refusal(self, command: NodeCommand) -> str | None:
        """Why the node cannot apply `command` now; None when it can."""
        st = self._st()
        if st.state.is_terminal():
            return f"node is {st.state.value}"
        if self._closing:
            return "the node's workflow is ending this run; send it again in a moment"
        if st.state in (NodeState.DRAINING, NodeState.TERMINATING):
            return f"node is already {st.state.value}"
        if isinstance(command, UncordonInput):
            return decide.uncordon_refusal(st, command)
        if isinstance(command, ClearInput):
            return decide.clear_refusal(st)
        return None

    def _answer(self, ticket: int, outcome: str) -> None:
        if ticket in self._waiting:
            self._outcomes[ticket] = outcome

    async def _operate(self, name: str, params: NodeCommand) -> NodeOperationResult:
        ticket = self._enqueue(params)
        if self._monitoring:
            self._waiting.add(ticket)
            await workflow.wait_condition(lambda: ticket in self._outcomes or self._closing)
            self._waiting.discard(ticket)
        st = self._st()
        outcome = self._outcomes.pop(ticket, None)
        return NodeOperationResult(
            node_id=st.node_id, operation=name, applied=outcome is not None, state=st.state,
            cordoned=st.cordoned,
            detail=outcome if outcome is not None
            else "not applied: the node's run ended first; send it again" if self._closing
            else f"queued: applies once the node is past {st.state.value}")

    # ------------------------------------------------------------------ main

    @workflow.run
    async def run(self, params: NodeInput) -> NodeStatus:
        self._owned = self._patched(OWNERSHIP_PATCH)
        if params.resume is None:
            self._quiet_boot = self._patched(BOOT_REPORTS_PATCH)
            self._record(NodeState.PROVISIONING, TransitionReason.CREATED,
                         f"replaces {params.replacement_of}" if params.replacement_of else "")
        try:
            if params.resume is None:
                await self._provision()
                await self._ssh_bootstrap()
                await self._boot()
            if await self._monitor():
                self._closing = True  # refuse new updates; queued signals carry over
                await self._finish_background()
                await self._close_handlers()
                continue_as_new(NodeInput(
                    node_id=params.node_id, spec=self._spec_(), resume=self._record_for_next(),
                    patches=list(NODE_PATCHES)))
        except _Leave as leave:
            await self._leave(leave)
        await self._finish_background()
        await self._close_handlers()
        return self._rec.status

    def _patched(self, patch: str) -> bool:
        """`workflow.patched`, for a patch the run's input does not already say is in force
        (NodeInput.patches: a run that code with this patch started)."""
        return patch in self._in_force or workflow.patched(patch)

    async def _close_handlers(self) -> None:
        """Updates still waiting answer now (refusing new ones) before this run ends."""
        self._closing = True
        await workflow.wait_condition(workflow.all_handlers_finished)

    def _record_for_next(self) -> NodeRecord:
        """Everything the next run needs, commands not yet applied included (a waiting
        update was told "not applied", so its command does not carry over)."""
        answered = set(self._waiting) | set(self._outcomes)
        return self._rec.model_copy(update={
            "cordon_source": self._st().cordon_source(),
            "pending": [c for c, ticket in self._commands if ticket not in answered]})

    # ------------------------------------------------------------------ provisioning

    async def _provision(self) -> None:
        """Try the pool's placements in order. Only "no capacity" moves on to the next zone,
        region or provider; any other error was already retried on the same provider by
        the activity's retry policy, and ends the attempt."""
        spec, st = self._spec_(), self._st()
        tried: list[str] = []
        prices: dict[str, float | None] = {}
        capacity: dict[str, list[str] | None] = {}
        if spec.strategy in ("cost", "availability"):
            for choice, info in zip(spec.providers, await asyncio.gather(
                    *(self._describe(c) for c in spec.providers)), strict=True):
                prices[choice.name] = info.price_per_hour if info else None
                capacity[choice.name] = info.available_regions if info else None
        for choice, region, zone in spec.placements(self._rotation, frozenset(self._avoid),
                                                    prices=prices, capacity=capacity):
            request = ProvisionRequest(
                node_id=st.node_id, pool=spec.name, provider=choice, region=region or None,
                zone=zone or None, labels=spec.labels, ssh_keys=spec.ssh_keys,
                cluster_id=spec.cluster_id,
            )
            where = "/".join(p for p in (choice.name, region, zone) if p) or choice.name
            try:
                instance = await workflow.execute_activity(
                    provision, request,
                    start_to_close_timeout=PROVISION_TIMEOUT, retry_policy=PROVISION_RETRY,
                    heartbeat_timeout=WORK_HEARTBEAT_TIMEOUT,
                )
            except ActivityError as err:
                tried.append(f"{where}: {activity_cause(err)}")
                if _error_type(err) == CloudErrorType.CAPACITY:
                    self._rec.capacity_misses.append(placement_key(choice, region, zone))
                    metrics.count("capacity_errors", {"provider": choice.name,
                                                      "zone": zone or region or "-"},
                                  "no-capacity answers while provisioning")
                    continue
                break
            self._rec.instance, self._rec.provider = instance, choice
            st.provider, st.region, st.zone = choice.name, instance.region, instance.zone
            st.instance_type, st.instance_id = instance.instance_type, instance.instance_id
            st.agent_task_queue = instance.agent_task_queue or ""
            self._record(NodeState.BOOTING, TransitionReason.PROVISIONED,
                         f"{instance.instance_id} on {choice.name}/{instance.region}"
                         + (f" after {len(tried)} refusal(s)" if tried else ""))
            metrics.observe_seconds("provisioning_seconds",
                                    workflow.now() - st.transitions[0].at,
                                    {"provider": choice.name,
                                     "instance_type": instance.instance_type},
                                    "from the node's creation to its instance existing")
            self._take_early_commands()
            return
        detail = "tried " + "; ".join(tried) if tried else "no provider configured"
        self._record(NodeState.FAILED, TransitionReason.PROVISION_FAILED, detail)
        raise _Leave(TransitionReason.PROVISION_FAILED, None, detail)

    async def _describe(self, choice: ProviderChoice) -> InstanceTypeInfo | None:
        """Price and capacity of the choice's type; None when the provider cannot say."""
        try:
            info: InstanceTypeInfo = await workflow.execute_activity(
                describe_instance_type, choice,
                start_to_close_timeout=DESCRIBE_TIMEOUT, retry_policy=DESCRIBE_RETRY)
        except ActivityError as err:
            workflow.logger.info("no type info from %s: %s", choice.name, activity_cause(err))
            return None
        return info

    async def _ssh_bootstrap(self) -> None:
        """The pool's `file_uploads` and `setup_commands` over SSH, run by the control-plane
        worker once the machine has an address. A failure ends the node (and the pool
        replaces it); a terminate or drain sent meanwhile cancels it."""
        spec, st = self._spec_(), self._st()
        if not (spec.setup_commands or spec.file_uploads) or self._leave_requested():
            return
        if not spec.ssh_private_key_path:
            raise _Leave(TransitionReason.BOOTSTRAP_FAILED, None,
                         "setup_commands need ssh_private_key_path")
        assert self._rec.instance is not None and self._rec.provider is not None
        params = SshBootstrapInput(
            node_id=st.node_id, pool=spec.name, provider=self._rec.provider,
            instance_id=st.instance_id, region=st.region, instance_type=st.instance_type,
            host=self._rec.instance.public_ip or self._rec.instance.private_ip, port=spec.ssh_port,
            user=spec.ssh_user, private_key_path=spec.ssh_private_key_path,
            commands=spec.setup_commands, uploads=spec.file_uploads,
            ip_wait_timeout=spec.ip_wait_timeout, ssh_timeout=spec.ssh_timeout,
            connect_timeout=spec.ssh_connect_timeout, command_timeout=spec.command_timeout)
        pending = workflow.start_activity(
            ssh_bootstrap, params,
            start_to_close_timeout=params.deadline(), heartbeat_timeout=SSH_HEARTBEAT_TIMEOUT,
            retry_policy=RUN_ONCE)
        await workflow.wait_condition(
            lambda: pending.done() or self._leave_requested() is not None)
        if not pending.done():
            pending.cancel()
            await _settle(pending)
            self._take_early_commands()
        try:
            result = pending.result()
        except ActivityError as err:
            raise _Leave(TransitionReason.BOOTSTRAP_FAILED, None, activity_cause(err)) from None
        self._record(NodeState.BOOTING, TransitionReason.BOOTSTRAPPED,
                     f"{len(result.commands)} setup command(s), {len(result.uploaded)} "
                     f"file(s) on {result.host} in "
                     f"{sum(c.seconds for c in result.commands) + result.ssh_wait_seconds:.1f} s"
                     + (f"; host key {result.host_key}" if result.host_key else ""))

    async def _boot(self) -> None:
        spec = self._spec_()
        if self._patched(BOOT_IN_ONE_PATCH):
            await self._boot_in_one(spec.boot_deadline)
            return
        if self._patched(BOOT_LOOKS_PATCH):
            inventory = await self._first_answer(spec.boot_deadline, self._inventory_look,
                                                 failed="inventory failed")
        else:
            inventory = await self._first_answer_in_one_look(spec.boot_deadline)
        self._register(inventory)
        try:
            result = await self._boot_check()
        except ActivityError as err:
            raise _Leave(TransitionReason.BOOT_CHECK_FAILED, None, activity_cause(err)) from None
        self._boot_judged(result)

    def _register(self, inventory: Inventory, *, publish: bool = True) -> None:
        """The new machine's agent answered: what it runs, as the agent told it."""
        st = self._st()
        st.gpus, st.hostname, st.boot_id = inventory.gpus, inventory.hostname, inventory.boot_id
        self._record(NodeState.BOOT_CHECKING, TransitionReason.AGENT_REGISTERED,
                     f"{len(inventory.gpus)} GPU(s), driver {inventory.driver_version}",
                     publish=publish)

    def _boot_judged(self, result: BootCheckResult) -> None:
        """Ready on passed boot checks; otherwise the node leaves, saying which failed."""
        self._st().boot_checks = result.checks
        if not result.passed:
            failed = "; ".join(f"{c.name}: {c.detail}" for c in result.checks
                               if c.status == "fail")
            raise _Leave(TransitionReason.BOOT_CHECK_FAILED, None, failed)
        self._take_early_commands()
        self._record(NodeState.READY, TransitionReason.BOOT_CHECK_PASSED)

    async def _boot_in_one(self, within: timedelta) -> None:
        """The agent's first answer is its boot checks, and their result its inventory: the
        node registers the machine and judges it in the same workflow task."""
        st = self._st()
        result: BootCheckResult = await self._first_answer(within, self._boot_check_look,
                                                           failed="boot checks failed")
        inventory = result.inventory
        if inventory is None and result.passed:  # an agent from before checks carried it
            try:
                inventory = await workflow.execute_activity(
                    gpu_inventory, st.node_id, task_queue=st.agent_queue(),
                    schedule_to_start_timeout=BOOT_LOOK_TIMEOUT,
                    start_to_close_timeout=INVENTORY_TIMEOUT, retry_policy=RUN_ONCE)
            except ActivityError as err:
                raise _Leave(TransitionReason.BOOT_CHECK_FAILED, None,
                             f"inventory failed: {activity_cause(err)}") from None
        if inventory is not None:
            # Kept in the node's transitions; the search attributes and the UI's details
            # skip to where the same task ends (ready, or leaving).
            self._register(inventory, publish=False)
        self._boot_judged(result)

    def _inventory_look(self, wait: timedelta) -> asyncio.Future[Any]:
        return workflow.start_activity(
            gpu_inventory, self._st().node_id, task_queue=self._st().agent_queue(),
            schedule_to_start_timeout=wait, start_to_close_timeout=INVENTORY_TIMEOUT,
            retry_policy=RUN_ONCE)

    def _boot_check_look(self, wait: timedelta) -> asyncio.Future[Any]:
        return workflow.start_activity(
            boot_check, self._boot_check_input(), task_queue=self._st().agent_queue(),
            schedule_to_start_timeout=wait, start_to_close_timeout=BOOT_CHECK_TIMEOUT,
            heartbeat_timeout=WORK_HEARTBEAT_TIMEOUT, retry_policy=RUN_ONCE)

    async def _first_answer(self, within: timedelta,
                            start_look: Callable[[timedelta], asyncio.Future[Any]], *,
                            failed: str) -> Any:
        """The new machine's agent, asked in looks of BOOT_LOOK_TIMEOUT (each started by
        `start_look`) until `within` is over; `failed` heads the reason a look that failed
        gives the node for leaving. One long-waiting task would sit in a task-queue
        partition's backlog by the time the agent starts (a cold start takes minutes), and
        an agent's single poller can take minutes more to come to that partition; a fresh
        look is matched at once."""
        deadline = workflow.now() + within
        while (left := deadline - workflow.now()) > timedelta(0):
            look = start_look(min(left, BOOT_LOOK_TIMEOUT))
            await workflow.wait_condition(functools.partial(self._answered_or_leaving, look))
            if not look.done():  # told to leave while waiting for the agent
                look.cancel()
                await _settle(look)
                self._take_early_commands()
            try:
                return look.result()
            except ActivityError as err:
                if not _is_timeout(err, TimeoutType.SCHEDULE_TO_START):
                    raise _Leave(TransitionReason.BOOT_CHECK_FAILED, None,
                                 f"{failed}: {activity_cause(err)}") from None
                self._tell_slow_boot()
        raise _Leave(TransitionReason.BOOT_TIMEOUT, None,
                     f"no agent picked up work within {within}")

    def _answered_or_leaving(self, look: asyncio.Future[Any]) -> bool:
        return look.done() or self._leave_requested() is not None

    async def _first_answer_in_one_look(self, within: timedelta) -> Inventory:
        """Runs started before BOOT_LOOKS_PATCH: one inventory task for the whole deadline.
        Remove when no such run is still booting."""
        st = self._st()
        # The deadline is a workflow timer; the activity's own schedule-to-start timeout is
        # a backstop set a little later, so the timer always decides.
        pending = workflow.start_activity(
            gpu_inventory, st.node_id, task_queue=st.agent_queue(),
            schedule_to_start_timeout=within + BOOT_DEADLINE_BACKSTOP,
            start_to_close_timeout=INVENTORY_TIMEOUT, retry_policy=RUN_ONCE,
        )
        timed_out = False
        try:
            await workflow.wait_condition(
                lambda: pending.done() or self._leave_requested() is not None,
                timeout=within)
        except TimeoutError:
            timed_out = True
            pending.cancel()
            await _settle(pending)
        if not pending.done():  # told to leave while waiting for the agent
            pending.cancel()
            await _settle(pending)
            self._take_early_commands()
        try:
            inventory = pending.result() if not timed_out else None
        except ActivityError as err:
            if not _is_timeout(err, TimeoutType.SCHEDULE_TO_START):
                raise _Leave(TransitionReason.BOOT_CHECK_FAILED, None,
                             f"inventory failed: {activity_cause(err)}") from None
            timed_out = True
        if inventory is None or timed_out:
            raise _Leave(TransitionReason.BOOT_TIMEOUT, None,
                         f"no agent picked up work within {within}")
        return inventory

    def _boot_check_input(self) -> BootCheckInput:
        spec, st = self._spec_(), self._st()
        shape = ((self._rec.provider.gpu_shape() if self._rec.provider else None)
                 or gpu_shape(st.instance_type) or gpu_shape(spec.instance_type))
        return BootCheckInput(
            node_id=st.node_id,
            expected_gpu_count=shape.count if shape and spec.shape_check != "off" else None,
            expected_gpu_model=shape.model if shape and spec.shape_check == "strict" else None,
            required_services=spec.required_services,
        )

    async def _boot_check(self) -> BootCheckResult:
        spec, st = self._spec_(), self._st()
        return await workflow.execute_activity(
            boot_check, self._boot_check_input(),
            task_queue=st.agent_queue(),
            schedule_to_start_timeout=spec.heartbeat_timeout,
            start_to_close_timeout=BOOT_CHECK_TIMEOUT, retry_policy=RUN_ONCE,
            heartbeat_timeout=WORK_HEARTBEAT_TIMEOUT,
        )

    def _leave_requested(self) -> tuple[NodeCommand, int] | None:
        return next((c for c in self._commands if isinstance(
            c[0], TerminateInput | DrainInput | RetireInput | InstanceGoneInput)), None)

    def _take_early_commands(self) -> None:
        """Commands that arrived before the node was ready: a terminate, drain or retire
        wins (nothing runs on the node yet, so there is nothing to drain); keep the rest."""
        request = self._leave_requested()
        if request is not None:
            self._commands.remove(request)
            command, ticket = request
            leave = self._leave_for(command)
            self._answer(ticket, f"{command.kind}: leaving before it served (no drain needed)")
            raise _Leave(leave.reason, None, leave.detail)

    # ------------------------------------------------------------------ monitoring

    async def _monitor(self) -> bool:
        """Watch until the node leaves (raises _Leave) or a new run is due (True): history
        grew long, the run is a day old, a newer build is the target, or the node adopted a
        changed pool spec."""
        act: asyncio.Future[Any] | None = None
        cadence: asyncio.Future[None] | None = None
        quiet: asyncio.Future[None] | None = None  # the end of a flapping node's hold
        # A workload scheduler's periodic look (someone else's drain there): its timer.
        scheduler = self._spec_().notifier.scheduler
        look: asyncio.Future[None] | None = None
        kind = ""
        self._monitoring = True
        while True:
            st = self._st()
            if scheduler is not None and look is None:
                look = asyncio.ensure_future(workflow.sleep(scheduler.check_interval))
            if act is None:
                kind = "probe" if st.state is NodeState.UNREACHABLE else "watch"
                act = self._start_probe() if kind == "probe" else self._start_watch()
            current = act
            if self._owned and cadence is None:  # one timer for the whole run
                cadence = asyncio.ensure_future(workflow.sleep(RUN_CADENCE))
            until = st.held_degraded_until
            if quiet is None and until is not None:
                quiet = asyncio.ensure_future(workflow.sleep(
                    max(until - workflow.now(), timedelta(seconds=1))))
            await workflow.wait_condition(
                lambda c=current, t=cadence, q=quiet, s=look: (  # type: ignore[misc]
                    c.done() or bool(self._commands) or (t is not None and t.done())
                    or (q is not None and q.done()) or (s is not None and s.done())
                    or self._woken))
            self._woken = False
            day_old = cadence is not None and cadence.done()
            if (day_old or upgrade_due()) and not self._commands:
                await self._stop_watching(current)  # a new run, on the target build
                return True
            if quiet is not None and quiet.done():
                quiet = None
                self._carry_out(decide.quiet(self._st(), workflow.now()))
                continue
            if look is not None and look.done():
                look = None
                await self._check_scheduler()
                continue
            if self._commands:
                command, ticket = self._commands.popleft()
                try:
                    self._answer(ticket, self._apply_command(command))
                except _RepairInPlace as repair:
                    self._answer(ticket, f"repair: {repair.choice.why}")
                    await self._stop_watching(current)
                    self._monitoring = True  # commands are still applied as they come
                    await self._repair(repair.choice)
                    act = None  # a new watch, of the repaired machine
                    continue
                except _Leave:
                    self._answer(ticket, f"{command.kind}: leaving")
                    await self._stop_watching(current)
                    raise
                if isinstance(command, SpecUpdate) and self._owned:
                    await self._stop_watching(current)  # the next run watches by the new spec
                    return True
                continue
            if not current.done():
                continue  # woken to look at the target build, and nothing else to do
            act = None
            try:
                outcome = current.result()
            except ActivityError as err:
                if kind == "watch":
                    self._record(NodeState.UNREACHABLE, TransitionReason.UNREACHABLE,
                                 activity_cause(err))
                    if self._patched(INSTANCE_GONE_PATCH):
                        gone = await self._gone_at_cloud()
                        if gone:
                            await self._stop_watching(current)
                            raise _Leave(TransitionReason.INSTANCE_GONE, None, gone) from None
                elif not st.awaiting_repair:
                    silent = self._spec_().health.unreachable_toleration
                    self._request_repair(TransitionReason.UNREACHABLE, f"silent for {silent}")
                continue
            if kind == "probe":
                self._reachable_again()
            elif outcome.handover:  # the agent is restarting: the next watch is its new one
                workflow.logger.info("agent handed over its watch (restarting)")
            elif self._owned:
                st.occurrences = outcome.occurrences
                if outcome.health is st.health:  # a repeat counted, nothing else changed
                    st.last_events = outcome.events[-10:]
                else:
                    self._apply_health(outcome)
            else:
                self._apply_health_before_ownership(outcome)
            if workflow.info().is_continue_as_new_suggested():
                self._monitoring = False
                return True

    async def _stop_watching(self, current: asyncio.Future[Any]) -> None:
        self._monitoring = False
        current.cancel()
        await _settle(current)

    def _start_watch(self) -> asyncio.Future[Any]:
        spec, st = self._spec_(), self._st()
        return workflow.start_activity(
            watch_health,
            WatchHealthInput(
                node_id=st.node_id, policy=spec.health_policy, last_health=st.health,
                check_interval=spec.health_check_interval,
                unhealthy_after=spec.health.unhealthy_after,
                recover_after=spec.health.recover_after, occurrences=st.occurrences,
            ),
            task_queue=st.agent_queue(),
            schedule_to_start_timeout=spec.heartbeat_timeout,
            start_to_close_timeout=WATCH_FOREVER, heartbeat_timeout=spec.heartbeat_timeout,
            retry_policy=RUN_ONCE,
        )

    def _start_probe(self) -> asyncio.Future[Any]:
        spec, st = self._spec_(), self._st()
        return workflow.start_activity(
            gpu_inventory, st.node_id,
            task_queue=st.agent_queue(),
            # Schedule-to-close as well: a host that took the probe and then went silent
            # (a simulated host on a shared queue, a host that dies mid-call) is unreachable
            # after the same toleration as one that never picked it up.
            schedule_to_start_timeout=spec.health.unreachable_toleration,
            schedule_to_close_timeout=spec.health.unreachable_toleration,
            start_to_close_timeout=INVENTORY_TIMEOUT, retry_policy=RUN_ONCE,
        )

    async def _gone_at_cloud(self) -> str:
        """Ask the cloud, where the machine lives, whether it still runs it: what it said
        when it does not ("" when it does, or when the answer is unsure)."""
        inst, choice = self._rec.instance, self._rec.provider
        if inst is None or choice is None:
            return ""
        try:
            now = await workflow.execute_activity(
                get_instance, TerminateRequest(provider=choice, instance_id=inst.instance_id,
                                               node_id=self._st().node_id, region=inst.region),
                start_to_close_timeout=LOOKUP_TIMEOUT, retry_policy=LOOKUP_RETRY)
        except ActivityError as err:
            workflow.logger.info("could not look up %s: %s", inst.instance_id,
                                 activity_cause(err))
            return ""
        if now is not None and now.state not in (InstanceState.TERMINATED,
                                                 InstanceState.STOPPING):
            return ""
        state = now.state.value if now is not None else "absent"
        return f"agent silent and {inst.instance_id} is {state} at {choice.name}"

    def _is_my_machine(self, command: InstanceGoneInput) -> bool:
        inst = self._rec.instance
        return inst is not None and inst.instance_id == command.instance_id

    def _reachable_again(self) -> None:
        st = self._st()
        if st.awaiting_repair and self._rec.repair_cause is TransitionReason.UNREACHABLE:
            st.awaiting_repair, self._rec.repair_cause = False, None
        self._record(decide.resting_state(st), TransitionReason.REACHABLE_AGAIN)

    def _apply_health(self, result: WatchHealthResult) -> None:
        st = self._st()
        st.last_events = result.events[-10:]
        health = self._spec_().health
        decision = decide.apply_health(st, result.health, result.rule, workflow.now(),
                                       damping=decide.Damping(health.flap_limit,
                                                              health.flap_window))
        if decision.fault_started:
            self._rec.fault_at = _fault_time(result)
            self._rec.remedy = result.remedy
        was_cordoned = st.state is NodeState.CORDONED
        self._carry_out(decision, TransitionReason.UNHEALTHY)
        if (result.health is HealthResult.UNHEALTHY and not was_cordoned
                and self._rec.fault_at is not None):
            metrics.observe_seconds("fault_to_cordon_seconds", workflow.now() - self._rec.fault_at,
                                    {"pool": st.pool}, "from a GPU fault to its node's cordon")
        if self._st().verdict is not HealthResult.UNHEALTHY:
            self._rec.fault_at, self._rec.remedy = None, None

    def _carry_out(self, decision: decide.Decision,
                   cause: TransitionReason = TransitionReason.UNHEALTHY) -> str:
        """Do what a decision says: take its status, record its steps, send its
        notifications, ask for its repair. Returns its answer."""
        self._rec.status = decision.status
        if self._repairing:  # the repair under way is the node's repair
            decision.request_repair = None
            decision.notify = [n for n in decision.notify if n[0] != "uncordon"]
        if not decision.status.awaiting_repair and decision.request_repair is None:
            self._rec.repair_cause = None  # no repair pending any more (cleared, released)
        for step in decision.steps:
            state = NodeState.REPAIRING if self._repairing and not step.state.is_leaving() \
                else step.state
            self._record(state, step.reason, step.detail, report=step.report)
        for event, reason in decision.notify:
            self._notify(event, reason)
        if decision.request_repair is not None:
            self._request_repair(cause, decision.request_repair)
        return decision.answer

    def _apply_health_before_ownership(self, result: WatchHealthResult) -> None:
        """The rules of runs started before OWNERSHIP_PATCH (one cordon owner, a verdict that
        lifts when the hardware recovers), kept so those runs replay; they end at the run's
        next continue-as-new. Remove when no such run remains."""
        st = self._st()
        st.health, st.health_rule = result.health, result.rule
        st.verdict, st.verdict_rule = result.health, result.rule
        st.last_events = result.events[-10:]
        detail = f"rule {result.rule}" if result.rule else ""
        now = workflow.now()
        if result.health is HealthResult.UNHEALTHY:
            if self._rec.fault_at is None:
                self._rec.fault_at = _fault_time(result)
            if not st.cordoned:
                st.cordoned, st.holds = True, [Hold(owner=CordonSource.UNHEALTHY, at=now)]
                self._record(NodeState.CORDONED, TransitionReason.UNHEALTHY, detail)
                self._notify("cordon", f"unhealthy: {detail}")
                metrics.observe_seconds("fault_to_cordon_seconds", now - self._rec.fault_at,
                                        {"pool": st.pool},
                                        "from a GPU fault to its node's cordon")
            elif self._patched(CORDONED_VERDICT_PATCH):
                self._record(NodeState.CORDONED, TransitionReason.UNHEALTHY, detail,
                             report=False)  # the repair request below reports it
            self._request_repair(TransitionReason.UNHEALTHY, detail)
            return
        self._rec.fault_at = None
        if st.cordon_source() is CordonSource.UNHEALTHY:
            st.cordoned, st.holds = False, []
            st.awaiting_repair, self._rec.repair_cause = False, None
            self._notify("uncordon", "recovered")
        reason = (TransitionReason.DEGRADED if result.health is HealthResult.DEGRADED
                  else TransitionReason.HEALTHY)
        self._record(decide.resting_state(st), reason, detail)

    def _request_repair(self, cause: TransitionReason, detail: str) -> None:
        st = self._st()
        st.awaiting_repair, self._rec.repair_cause = True, cause
        self._report(cause, f"repair requested: {detail}")

    def _apply_command(self, command: NodeCommand) -> str:
        """Apply one command; what happened, in words (an update's answer)."""
        st, now = self._st(), workflow.now()
        if isinstance(command, CordonInput):
            if not self._owned and st.cordoned:  # before OWNERSHIP_PATCH: nothing recorded
                return f"already cordoned ({st.cordon_source() or 'leaving'})"
            return self._carry_out(decide.cordon(st, command, now))
        if isinstance(command, UncordonInput):
            answer = self._carry_out(decide.uncordon(st, command, now))
            if answer.startswith("refused"):
                workflow.logger.warning("uncordon %s: %s", st.node_id, answer)
            return answer
        if isinstance(command, ClearInput):
            return self._carry_out(decide.clear(st, command, now))
        if isinstance(command, SpecUpdate):
            return self._adopt(command.spec)
        if isinstance(command, InstanceGoneInput) and not self._is_my_machine(command):
            return f"{command.instance_id} is not this node's machine"
        if isinstance(command, ApproveRepair):
            if st.awaiting_repair and self._rec.repair_cause is not None:
                st.awaiting_repair = False
                unreachable = self._rec.repair_cause is TransitionReason.UNREACHABLE
                if not unreachable:
                    choice = self._choose_rung()
                    if choice.rung != "replace" and self._patched(REPAIR_LADDER_PATCH):
                        if choice.rung is None:
                            self._record(st.state, TransitionReason.REPAIR, choice.why)
                            return choice.why
                        raise _RepairInPlace(choice)
                    raise _Leave(self._rec.repair_cause, self._spec_().health.drain_grace,
                                 choice.why)
                raise _Leave(self._rec.repair_cause, None)
            return "no repair pending" if not self._repairing else "a repair is under way"
        raise self._leave_for(command)

    def _adopt(self, spec: PoolSpec) -> str:
        """Take the pool's changed spec at a safe point (between checks). What cannot change
        on a running machine (its instance type, provider, region) stays as it is."""
        changed, _ = decide.spec_changes(self._spec_(), spec)
        self._spec = spec
        if not changed:
            return "spec unchanged for this node"
        detail = "adopted the pool's spec: " + ", ".join(changed) + " changed"
        self._record(self._st().state, TransitionReason.SPEC_ADOPTED, detail, report=False)
        return detail

    def _leave_for(self, command: NodeCommand) -> _Leave:
        if isinstance(command, DrainInput):
            return _Leave(TransitionReason.OPERATOR, timedelta(seconds=command.grace_seconds),
                          decide.said(command.reason, command.by))
        if isinstance(command, RetireInput):
            return _Leave(command.reason, timedelta(seconds=command.grace_seconds))
        if isinstance(command, TerminateInput):
            return _Leave(TransitionReason.OPERATOR, None, decide.said(command.reason, command.by))
        if isinstance(command, InstanceGoneInput):
            return _Leave(TransitionReason.INSTANCE_GONE, None,
                          command.detail or f"{command.instance_id} is {command.state}")
        raise ValueError(f"{command.kind} is not a way to leave")  # not reached

    # ------------------------------------------------------------------ repairing in place

    def _choose_rung(self, above: Rung | None = None) -> ladder.RungChoice:
        st, health = self._st(), self._spec_().health
        remedy = self._rec.remedy or Remedy(fault=fault_class(st.verdict_rule, None))
        return ladder.next_rung(remedy, health.remediation, st.repairs, workflow.now(),
                                health.remediation_window, above=above)

    async def _repair(self, choice: ladder.RungChoice) -> None:
        """The repair ladder, from `choice` up: drain, then reset the GPU or reboot the
        machine, then validate before the node returns to service. A rung that fails moves
        up; the last rung, replace, leaves (raises _Leave). An operator's hold stops the
        ladder before its next rung; a terminate or drain sent meanwhile ends it."""
        health = self._spec_().health
        remedy = self._rec.remedy or Remedy(fault=fault_class(self._st().verdict_rule, None))
        drained = False
        self._repairing = True
        try:
            while True:
                st = self._st()  # a command carried out meanwhile replaces the status
                rung = choice.rung
                if rung == "replace":
                    raise _Leave(TransitionReason.UNHEALTHY,
                                 None if drained else health.drain_grace, choice.why)
                stopped = ladder.ladder_stopped(st)
                if rung is None or stopped:
                    self._repairing = False
                    self._record(decide.resting_state(st), TransitionReason.REPAIR,
                                 choice.why if rung is None
                                 else f"{rung} not started: {stopped}; the repair waits "
                                      "for them")
                    return
                started = workflow.now()
                st.repairs.append(RepairAttempt(at=started, rung=rung, fault=remedy.fault,
                                                rule=st.verdict_rule or ""))
                del st.repairs[:-MAX_REPAIRS]
                self._record(NodeState.REPAIRING, TransitionReason.REPAIR,
                             f"{choice.why}; {self._tries(remedy)}")
                if not drained:
                    said = await self._guarded(self._wait_work_gone(
                        health.drain_grace, f"repair: {choice.why}"))
                    drained = True
                    self._record(NodeState.REPAIRING, TransitionReason.REPAIR, said,
                                 report=False)
                outcome, detail = await self._guarded(
                    self._reset_gpus(remedy) if rung == "reset" else self._reboot())
                if outcome == "ok":
                    self._record(NodeState.REPAIRING, TransitionReason.REPAIR, detail,
                                 report=False)
                    outcome, detail = await self._guarded(self._validate_repair(rung))
                attempt = self._st().repairs[-1]  # ours: only a repair adds one
                attempt.seconds = (workflow.now() - started).total_seconds()
                attempt.outcome = "returned" if outcome == "ok" else outcome  # type: ignore[assignment]
                attempt.detail = detail
                if outcome == "ok":
                    self._repairing = False
                    self._returned(remedy, rung, detail)
                    return
                metrics.count("repairs", {"pool": st.pool, "rung": rung, "outcome": outcome},
                              "in-place repairs by rung and outcome")
                choice = self._choose_rung(above=rung)
                self._record(NodeState.REPAIRING, TransitionReason.REPAIR,
                             f"{rung} {outcome.replace('_', ' ')}: {detail}", report=False)
        finally:
            self._repairing = False

    def _tries(self, remedy: Remedy) -> str:
        """The ladder's counts for a fault, for the node's story: `reset 1/1, reboot 0/2`."""
        st, health = self._st(), self._spec_().health
        now = workflow.now()
        return ", ".join(
            f"{r} {ladder.tried(st.repairs, r, remedy.fault, now, health.remediation_window)}"
            f"/{remedy.attempts.of(r)}" for r in ("reset", "reboot") if r in health.remediation)

    def _returned(self, remedy: Remedy, rung: Rung, detail: str) -> None:
        st = self._st()
        fault_at = self._rec.fault_at
        self._carry_out(decide.repaired(st, f"{rung} fixed {remedy.fault}: {detail}"))
        self._rec.remedy, self._rec.fault_at = None, None
        if fault_at is not None:
            metrics.observe_seconds("fault_to_service_seconds", workflow.now() - fault_at,
                                    {"pool": st.pool, "rung": rung},
                                    "from a GPU fault to its node back in service, repaired")
        metrics.count("repairs", {"pool": st.pool, "rung": rung, "outcome": "returned"},
                      "in-place repairs by rung and outcome")

    async def _guarded(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run one repair step while applying the commands that arrive: a cordon, uncordon
        or clear is recorded (an operator's hold stops the ladder after this step); a
        terminate, drain or retire, or the machine found gone, ends the repair at once."""
        task = asyncio.ensure_future(work)
        while True:
            await workflow.wait_condition(lambda: task.done() or bool(self._commands))
            if task.done():
                return task.result()
            command, ticket = self._commands.popleft()
            try:
                self._answer(ticket, self._apply_command(command))
            except _Leave:
                self._answer(ticket, f"{command.kind}: leaving (the repair is called off)")
                task.cancel()
                await _settle(task)
                raise

    async def _wait_work_gone(self, grace: timedelta, why: str) -> str:
        spec = self._spec_()
        if spec.notifier.scheduler is not None:
            return await self._scheduler_drain(grace, why)
        self._notify("drain", why)
        return await self._wait_idle(grace)

    async def _reset_gpus(self, remedy: Remedy) -> tuple[str, str]:
        spec, st = self._spec_(), self._st()
        try:
            result = await workflow.execute_activity(
                reset_gpu, ResetGpuInput(node_id=st.node_id, gpus=remedy.gpus),
                task_queue=st.agent_queue(), schedule_to_start_timeout=spec.heartbeat_timeout,
                start_to_close_timeout=RESET_TIMEOUT, heartbeat_timeout=WORK_HEARTBEAT_TIMEOUT,
                retry_policy=RUN_ONCE)
        except ActivityError as err:
            return "failed", f"reset could not run: {activity_cause(err)}"
        if result.outcome != "reset":
            return "failed", f"reset {result.outcome}: {result.detail}"
        gpus = ", ".join(map(str, result.gpus)) or "all"
        return "ok", f"GPU {gpus} reset ({result.detail})"

    async def _reboot(self) -> tuple[str, str]:
        """Reboot through the cloud where the machine lives, else from inside (the agent's
        `systemctl reboot`); then wait for the agent of a new boot."""
        spec, st = self._spec_(), self._st()
        inst, choice = self._rec.instance, self._rec.provider
        assert inst is not None and choice is not None
        before = st.boot_id
        try:
            known = await workflow.execute_activity(
                reboot_instance, TerminateRequest(provider=choice, instance_id=inst.instance_id,
                                                  node_id=st.node_id, region=inst.region),
                start_to_close_timeout=REBOOT_CALL_TIMEOUT, retry_policy=REBOOT_RETRY,
                heartbeat_timeout=WORK_HEARTBEAT_TIMEOUT)
            if not known:
                raise _Leave(TransitionReason.INSTANCE_GONE, None,
                             f"{inst.instance_id} is not at {choice.name}: nothing to reboot")
            how = f"rebooted through {choice.name}"
        except ActivityError as err:
            cloud = activity_cause(err)
            try:
                said = await workflow.execute_activity(
                    reboot_host, RebootHostInput(node_id=st.node_id),
                    task_queue=st.agent_queue(), schedule_to_start_timeout=spec.heartbeat_timeout,
                    start_to_close_timeout=REBOOT_CALL_TIMEOUT, retry_policy=RUN_ONCE)
            except ActivityError as inner:
                return "failed", (f"reboot failed: {choice.name}: {cloud}; the agent: "
                                  f"{activity_cause(inner)}")
            how = f"{choice.name} could not reboot it ({cloud}); the agent ran {said}"
        started = workflow.now()
        back = await self._await_boot(before, spec.health.reboot_timeout)
        if back is None:
            return "no_return", (f"{how}; no agent of a new boot within "
                                 f"{spec.health.reboot_timeout}")
        st = self._st()
        st.boot_id, st.gpus = back.boot_id, back.gpus
        return "ok", (f"{how}; its agent was back after "
                      f"{(workflow.now() - started).total_seconds():.0f} s")

    async def _await_boot(self, before: str, within: timedelta) -> Inventory | None:
        """The agent's inventory from a boot other than `before`, or None at the deadline.
        Until the machine goes down, the old boot's agent may still answer."""
        st = self._st()
        deadline = workflow.now() + within
        went_down = False
        while (left := deadline - workflow.now()) > timedelta(0):
            try:
                inventory = await workflow.execute_activity(
                    gpu_inventory, st.node_id, task_queue=st.agent_queue(),
                    schedule_to_close_timeout=min(left, BOOT_LOOK_TIMEOUT),
                    start_to_close_timeout=BOOT_LOOK_RUN, retry_policy=RUN_ONCE)
            except ActivityError:
                went_down = True
                continue
            # A host that reports boot ids is back once its id changed; one that does not,
            # once it answers after having gone silent.
            rebooted = (inventory.boot_id != before) if (inventory.boot_id or before) \
                else went_down
            if rebooted:
                return inventory
            await workflow.sleep(min(BOOT_LOOK_INTERVAL, max(left, timedelta(seconds=1))))
        return None

    async def _validate_repair(self, rung: Rung) -> tuple[str, str]:
        """Boot checks, then the pool's checks under load: a repair returns a node only on
        a pass (a check that could not run is not one)."""
        spec, st = self._spec_(), self._st()
        try:
            boot = await self._boot_check()
        except ActivityError as err:
            return "not_validated", f"boot checks could not run: {activity_cause(err)}"
        self._st().boot_checks = boot.checks
        if not boot.passed:
            return "not_validated", "boot checks failed: " + "; ".join(
                f"{c.name}: {c.detail}" for c in boot.checks if c.status == "fail")
        passed = ["boot checks"]
        for check in spec.health.validation:
            try:
                result = await workflow.execute_activity(
                    run_diagnostic,
                    DiagnosticInput(node_id=st.node_id, kind=check.kind, level=check.level,
                                    seconds=check.seconds, command=check.command,
                                    min_bus_gbps=check.min_bus_gbps),
                    task_queue=st.agent_queue(), schedule_to_start_timeout=spec.heartbeat_timeout,
                    start_to_close_timeout=diagnostic_limit(check.kind, check.level,
                                                            check.seconds),
                    heartbeat_timeout=spec.heartbeat_timeout, retry_policy=RUN_ONCE)
            except ActivityError as err:
                return "not_validated", f"{check.kind} could not run: {activity_cause(err)}"
            if result.status != "pass":
                return "not_validated", f"{check.kind} {result.status} after the {rung}: " \
                                        f"{result.detail}"
            passed.append(f"{check.kind}" + (f" level {check.level}" if check.kind == "dcgm"
                                             else f" {check.seconds} s"))
        return "ok", " and ".join(passed) + " passed"

    # ------------------------------------------------------------------ leaving

    async def _leave(self, leave: _Leave) -> None:
        st = self._st()
        if leave.reason is TransitionReason.PROVISION_FAILED:
            self._report(leave.reason, leave.detail)
            return
        drained = ""
        if leave.grace is not None and st.state not in (NodeState.UNREACHABLE,
                                                        NodeState.REPAIRING):
            drained = await self._drain(leave.reason, leave.grace, leave.detail)
        await self._terminate_instance(leave.reason, "; ".join(
            p for p in (leave.detail, drained) if p))

    async def _drain(self, reason: TransitionReason, grace: timedelta, detail: str) -> str:
        st = self._st()
        st.cordoned = True
        self._record(NodeState.DRAINING, reason, detail)
        return await self._wait_work_gone(grace, detail or reason.value)

    async def _wait_idle(self, grace: timedelta) -> str:
        """Wait for the GPU work (and a webhook's drain status) to end, up to `grace`."""
        spec, st = self._spec_(), self._st()
        waits: list[asyncio.Future[Any]] = [workflow.start_activity(
            wait_idle, WaitIdleInput(node_id=st.node_id, grace=grace),
            task_queue=st.agent_queue(),
            schedule_to_start_timeout=max(min(spec.heartbeat_timeout, grace),
                                          timedelta(seconds=1)),
            start_to_close_timeout=grace + timedelta(minutes=1),
            heartbeat_timeout=spec.heartbeat_timeout, retry_policy=RUN_ONCE,
        )]
        webhook = spec.notifier.webhook
        if spec.notifier.type == "webhook" and webhook and webhook.drain_status_url:
            waits.append(asyncio.ensure_future(self._wait_drain_status(grace)))
        try:
            await workflow.wait_condition(lambda: all(w.done() for w in waits), timeout=grace)
        except TimeoutError:
            for w in waits:
                w.cancel()
            for w in waits:
                await _settle(w)
            return "drain grace expired"
        try:
            idle = waits[0].result()
        except ActivityError as err:
            return f"could not wait for GPU work to end: {activity_cause(err)}"
        if idle.outcome == "grace_expired":
            return f"drain grace expired with {idle.remaining_processes} GPU process(es) left"
        return "drained"

    async def _scheduler_drain(self, grace: timedelta, why: str) -> str:
        """Drain through the workload scheduler: it stops placing work on the node, and the
        node waits for its answer that the work is gone, never reading an error or an
        unknown node as drained. At the grace's end, the notifier's `on_grace_end`:
        requeue or cancel the jobs, delete the pods, or keep waiting."""
        notifier = self._spec_().notifier
        await self._send_notify("drain", why)  # set before the first look at the node
        waiter = asyncio.ensure_future(self._wait_scheduler(grace))
        try:
            await workflow.wait_condition(waiter.done, timeout=grace)
            return waiter.result()
        except TimeoutError:
            pass
        if notifier.on_grace_end == "wait":
            self._scheduler_said(f"drain grace {grace} over; waiting for {notifier.type} "
                                 "(on_grace_end: wait)")
            await workflow.wait_condition(waiter.done)
            return f"after the grace, {waiter.result()}"
        waiter.cancel()
        await _settle(waiter)
        target = self._scheduler_node()
        assert target is not None
        try:
            forced = await workflow.execute_activity(
                force_drain, ForceDrainInput(notifier=notifier, target=target),
                start_to_close_timeout=self._notifier_timeout(), retry_policy=NOTIFY_RETRY)
        except ActivityError as err:
            self._notifier_failed(err)
            return (f"drain grace expired; {notifier.on_grace_end} failed: "
                    f"{activity_cause(err)}")
        self._scheduler_said(f"drain grace {grace} over: {forced.detail}")
        settle = asyncio.ensure_future(self._wait_scheduler(grace))
        try:
            await workflow.wait_condition(settle.done, timeout=FORCE_SETTLE)
            return f"drain grace expired; {forced.detail}; {settle.result()}"
        except TimeoutError:
            settle.cancel()
            await _settle(settle)
            return f"drain grace expired; {forced.detail}; still not drained"

    async def _ask_scheduler(self, *, probe_only: bool) -> DrainStatus | None:
        """The scheduler's answer about the node; None (said, counted) when it gave none."""
        spec, st = self._spec_(), self._st()
        try:
            answer: DrainStatus = await workflow.execute_activity(
                drain_status, DrainStatusInput(notifier=spec.notifier, node_id=st.node_id,
                                               target=self._scheduler_node(),
                                               probe_only=probe_only),
                start_to_close_timeout=self._notifier_timeout(), retry_policy=NOTIFY_RETRY)
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise  # the wait itself was called off (the grace ended)
            self._notifier_failed(err)
            self._scheduler_said(f"{spec.notifier.type} unreachable: {activity_cause(err)}",
                                 error="unreachable")
            return None
        if not answer.known:
            self._scheduler_said(answer.message, error="node_unknown")
        return answer

    async def _wait_scheduler(self, grace: timedelta) -> str:
        """Ask the scheduler until it says the node's work is gone: its words."""
        poll = min(DRAIN_STATUS_POLL, max(grace / 10, timedelta(milliseconds=200)))
        while True:
            answer = await self._ask_scheduler(probe_only=False)
            if answer is not None and answer.known:
                if answer.drained:
                    return f"drained: {answer.message}"
                self._scheduler_said(answer.message)
            await workflow.sleep(poll)

    async def _check_scheduler(self) -> None:
        """A node in service: has someone else drained it at the scheduler (an
        administrator, Slurm's own health check)? That holds it until the scheduler
        returns it; a node the scheduler does not know is said plainly."""
        answer = await self._ask_scheduler(probe_only=True)
        if answer is None or not answer.known:
            return
        self._said = ""
        self._carry_out(decide.scheduler_hold(self._st(), answer.foreign_hold, workflow.now()))

    async def _wait_drain_status(self, grace: timedelta) -> None:
        spec, st = self._spec_(), self._st()
        poll = min(DRAIN_STATUS_POLL, max(grace / 10, timedelta(milliseconds=200)))
        while True:
            try:
                answer = await workflow.execute_activity(
                    drain_status, DrainStatusInput(notifier=spec.notifier, node_id=st.node_id),
                    start_to_close_timeout=spec.notifier.webhook.timeout
                    + NOTIFY_TIMEOUT_MARGIN if spec.notifier.webhook else NOTIFY_TIMEOUT_MARGIN,
                    retry_policy=NOTIFY_RETRY,
                )
                if answer.drained:
                    return
            except ActivityError as err:
                self._notifier_failed(err)
            await workflow.sleep(poll)

    async def _terminate_instance(self, reason: TransitionReason, detail: str) -> None:
        st = self._st()
        self._record(NodeState.TERMINATING, reason, detail)
        if self._rec.instance is not None and self._rec.provider is not None:
            try:
                await workflow.execute_activity(
                    terminate_instance,
                    TerminateRequest(provider=self._rec.provider,
                                     instance_id=self._rec.instance.instance_id,
                                     node_id=st.node_id, region=self._rec.instance.region),
                    start_to_close_timeout=TERMINATE_TIMEOUT, retry_policy=TERMINATE_RETRY,
                    heartbeat_timeout=WORK_HEARTBEAT_TIMEOUT,
                )
            except ActivityError as err:
                self._record(NodeState.FAILED, reason,
                             f"terminate failed, instance may still run: {activity_cause(err)}")
                return
        final = NodeState.FAILED if reason in _FAILED_END else NodeState.TERMINATED
        self._record(final, reason, detail)
        if reason is TransitionReason.UNHEALTHY and self._rec.fault_at is not None:
            metrics.observe_seconds("fault_to_terminate_seconds",
                                    workflow.now() - self._rec.fault_at, {"pool": st.pool},
                                    "from a GPU fault to its machine's termination")

    # ------------------------------------------------------------------ bookkeeping

    def _record(self, state: NodeState, reason: TransitionReason, detail: str = "", *,
                report: bool = True, publish: bool = True) -> None:
        """A transition: kept in the node's status, published (search attributes, the
        UI's details) unless a later one in the same task will be, and told to the pool
        when it should hear of it."""
        st = self._st()
        st.transitions.append(Transition(at=workflow.now(), from_state=st.state if
                                         st.transitions else None, to_state=state,
                                         reason=reason, detail=detail))
        if len(st.transitions) > MAX_TRANSITIONS:
            del st.transitions[1:-MAX_TRANSITIONS + 1]
        st.state = state
        if state.is_terminal():
            st.awaiting_repair = False
        metrics.count("node_transitions", {"pool": st.pool, "to_state": state.value,
                                           "reason": reason.value}, "node state changes")
        if publish:
            self._publish(reason, detail)
        if report and self._tells_pool(state):
            self._report(reason, detail)

    def _publish(self, reason: TransitionReason, detail: str) -> None:
        st = self._st()
        attrs = [SA_POOL.value_set(st.pool), SA_NODE_STATE.value_set(st.state.value),
                 SA_HEALTH.value_set(st.health.value),
                 SA_INSTANCE_TYPE.value_set(st.instance_type)]
        if self._owned:
            attrs.append(SA_VERDICT.value_set(st.verdict.value))
        if st.provider:
            attrs.append(SA_PROVIDER.value_set(st.provider))
        if st.region:
            attrs.append(SA_REGION.value_set(st.region))
        workflow.upsert_search_attributes(attrs)
        workflow.set_current_details(self._details(reason, detail))

    def _tells_pool(self, state: NodeState) -> bool:
        """Whether the pool hears of this change now (decide.tells_pool); a boot phase held
        back is told if it outlasts a look at the agent (`_tell_slow_boot`)."""
        told = decide.tells_pool(
            state, quiet_boot=self._quiet_boot,
            new_refusals=len(self._rec.capacity_misses) > self._misses_reported)
        self._unreported = not told
        return told

    def _tell_slow_boot(self) -> None:
        """A look at the new machine's agent went unanswered: the boot is a slow one (a
        cloud's cold start), so the pool's view should say where the node is."""
        if self._unreported:
            self._unreported = False
            last = self._st().transitions[-1]
            self._report(last.reason, last.detail)

    def _details(self, reason: TransitionReason, detail: str) -> str:
        """The UI's current details: the node at a glance, with a link to its pool."""
        st = self._st()
        shape = ((self._rec.provider.gpu_shape() if self._rec.provider else None)
                 or gpu_shape(st.instance_type))
        gpus = f" · {shape.count}× {shape.model}" if shape else ""
        pool_link = (f"/namespaces/{workflow.info().namespace}/workflows?query="
                     f"WorkflowId%3D%22pool%2F{st.pool}%22")
        where = f"\n\n{st.provider}/{st.region} · {st.instance_id}" if st.instance_id else ""
        repairs = ""
        if st.repairs:
            tried: dict[str, int] = {}
            for r in st.repairs:
                tried[f"{r.rung} {r.fault}"] = tried.get(f"{r.rung} {r.fault}", 0) + 1
            last = st.repairs[-1]
            repairs = ("\n\nrepairs: " + ", ".join(f"{k} ×{n}" for k, n in tried.items())
                       + f" · last: {last.rung} {last.outcome.replace('_', ' ')}")
        return (f"node {st.node_id[:8]} · **{st.state.value}**{gpus} · "
                f"pool [{st.pool}]({pool_link}) · health {st.health.value}\n\n"
                f"{reason.value}{': ' + detail if detail else ''}{where}{repairs}")

    def _report(self, reason: TransitionReason, detail: str) -> None:
        st = self._st()
        report = NodeReport(
            node_id=st.node_id, state=st.state, health=st.health, reason=reason,
            at=workflow.now(), awaiting_repair=st.awaiting_repair, provider=st.provider,
            region=st.region, detail=detail, seq=self._next_report_seq(),
            capacity_misses=list(self._rec.capacity_misses), cordon_source=st.cordon_source(),
            holds=st.owners(), verdict=st.verdict,
            run_chain=workflow.info().first_execution_run_id,
        )
        self._misses_reported = len(report.capacity_misses)
        if not self._patched(ONE_REPORT_PATCH):
            self._background.append(asyncio.ensure_future(self._send_report(report)))
            return
        # The report goes out when this task's code yields: a later change in the same
        # stretch replaces it (the pool keeps a node's latest state; its seq is higher).
        if self._outbox is None:
            self._background.append(asyncio.ensure_future(self._send_outbox()))
        self._outbox = report

    async def _send_outbox(self) -> None:
        report, self._outbox = self._outbox, None
        if report is not None:
            await self._send_report(report)

    def _next_report_seq(self) -> int:
        # Signals to the pool may arrive out of order; the pool keeps the highest seq.
        self._rec.report_seq += 1
        self._rec.status.report_seq = self._rec.report_seq
        return self._rec.report_seq

    async def _send_report(self, report: NodeReport) -> None:
        # A signal that lands while the pool is between runs (continue-as-new) fails; try
        # again shortly. A pool that stays gone (deleted) is given up on: the node's life
        # goes on without it.
        handle = workflow.get_external_workflow_handle(pool_workflow_id(self._st().pool))
        for attempt in range(REPORT_ATTEMPTS):
            try:
                await handle.signal("node_state_changed", report)
                return
            except Exception as exc:
                if attempt == REPORT_ATTEMPTS - 1:
                    workflow.logger.info("could not tell pool %s: %s", self._st().pool, exc)
                    return
                await workflow.sleep(REPORT_RETRY_DELAY * 2**attempt)

    def _notify(self, event: str, reason: str) -> None:
        spec = self._spec_()
        if spec.notifier.scheduler is None and (spec.notifier.type != "webhook"
                                                or spec.notifier.webhook is None):
            return
        self._background.append(asyncio.ensure_future(self._send_notify(event, reason)))

    async def _send_notify(self, event: str, reason: str) -> None:
        spec, st = self._spec_(), self._st()
        try:
            await workflow.execute_activity(
                notify,
                NotifyInput(notifier=spec.notifier, event=event, node_id=st.node_id,
                            reason=reason, timestamp=workflow.now(),
                            target=self._scheduler_node()),
                start_to_close_timeout=self._notifier_timeout(), retry_policy=NOTIFY_RETRY,
            )
        except ActivityError as err:
            self._notifier_failed(err)
            if spec.notifier.scheduler is not None:
                self._scheduler_said(f"{spec.notifier.type} {event} failed: "
                                     f"{activity_cause(err)}", error="notify")

    def _notifier_timeout(self) -> timedelta:
        notifier = self._spec_().notifier
        scheduler = notifier.scheduler
        if scheduler is not None:  # a Kubernetes status may evict several pods in turn
            return 4 * scheduler.timeout + NOTIFY_TIMEOUT_MARGIN
        return (notifier.webhook.timeout if notifier.webhook else timedelta()) \
            + NOTIFY_TIMEOUT_MARGIN

    def _scheduler_node(self) -> SchedulerNode | None:
        """What the workload scheduler may know this node by (None for a webhook)."""
        spec, st = self._spec_(), self._st()
        if spec.notifier.scheduler is None:
            return None
        choice = self._rec.provider
        return SchedulerNode(node_id=st.node_id, pool=st.pool, hostname=st.hostname,
                             instance_id=st.instance_id, zone=st.zone,
                             provider_type=choice.type if choice else "",
                             project=(choice.project or "") if choice else "")

    def _scheduler_said(self, detail: str, *, error: str = "") -> None:
        """Put what the scheduler said in the node's story, once per new thing said."""
        if detail == self._said:
            return
        self._said = detail
        self._record(self._st().state, TransitionReason.SCHEDULER, detail, report=False)
        if error:
            metrics.count("scheduler_errors", {"notifier": self._spec_().notifier.type,
                                               "kind": error},
                          "workload scheduler calls that failed or found no node")

    def _notifier_failed(self, err: ActivityError) -> None:
        st = self._st()
        st.notifier_failures += 1
        st.notifier_last_error = activity_cause(err)
        workflow.logger.warning("notifier failed for %s: %s", st.node_id, st.notifier_last_error)

    async def _finish_background(self) -> None:
        while self._background:
            task = self._background.pop(0)
            await _settle(task)

    def _st(self) -> NodeStatus:
        return self._rec.status

    def _spec_(self) -> PoolSpec:
        return self._spec


async def _settle(future: asyncio.Future[Any]) -> None:
    with contextlib.suppress(ActivityError, asyncio.CancelledError, ApplicationError):
        await future


def activity_cause(err: ActivityError) -> str:
    """The root reason an activity failed, e.g. `CapacityError: no H100 in us-east-1`."""
    cause = err.cause
    while isinstance(cause, FailureError) and cause.cause is not None and not str(cause):
        cause = cause.cause
    if cause is None:
        return str(err)
    kind = getattr(cause, "type", None) or getattr(cause, "timeout_type", None) or ""
    return f"{kind}: {cause}" if kind and str(kind) not in str(cause) else str(cause)


def _fault_time(result: WatchHealthResult) -> datetime:
    """When a fault happened: its earliest event (never later than now)."""
    now = workflow.now()
    return min([e.timestamp for e in result.events
                if e.timestamp.tzinfo is not None and e.timestamp <= now], default=now)


def _error_type(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _is_timeout(err: ActivityError, which: TimeoutType) -> bool:
    cause = err.cause
    return isinstance(cause, TemporalTimeoutError) and cause.type == which
