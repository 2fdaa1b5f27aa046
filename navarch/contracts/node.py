"""The NodeWorkflow's contract: its states, why it moves between them, what its `status`
query returns, the signals that move it, what it reports to its pool, and its input (with
what it carries across continue-as-new).

Defined outside the workflow module so the workflow sandbox does not rebuild these models
for every workflow it runs. Stored models are lenient, signal models strict (`base`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from navarch.contracts.agent import CheckResult, GpuInfo, Occurrence
from navarch.contracts.base import SignalModel, StoredModel
from navarch.contracts.cloud import Instance
from navarch.contracts.names import node_task_queue
from navarch.contracts.spec import PoolSpec, ProviderChoice
from navarch.health.events import HealthEvent, HealthResult
from navarch.health.remedy import Remedy, Rung
from navarch.validation import BoundedText


class NodeState(StrEnum):
    PROVISIONING = "provisioning"
    BOOTING = "booting"
    BOOT_CHECKING = "boot_checking"
    READY = "ready"
    DEGRADED = "degraded"
    CORDONED = "cordoned"
    DRAINING = "draining"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    # Out of service for an in-place repair (a GPU reset or a reboot, then validation).
    REPAIRING = "repairing"

    def is_terminal(self) -> bool:
        return self in (NodeState.TERMINATED, NodeState.FAILED)

    def is_schedulable(self) -> bool:
        """Capacity a workload may use: ready or degraded, never cordoned or leaving."""
        return self in (NodeState.READY, NodeState.DEGRADED)

    def is_leaving(self) -> bool:
        return self in (NodeState.DRAINING, NodeState.TERMINATING) or self.is_terminal()


class TransitionReason(StrEnum):
    """Why a node changed state. A closed set: reports and alerts can rely on it."""

    CREATED = "created"
    PROVISIONED = "provisioned"
    PROVISION_FAILED = "provision_failed"
    BOOTSTRAPPED = "bootstrapped"  # setup commands ran over SSH
    BOOTSTRAP_FAILED = "bootstrap_failed"
    AGENT_REGISTERED = "agent_registered"
    BOOT_CHECK_PASSED = "boot_check_passed"
    BOOT_CHECK_FAILED = "boot_check_failed"
    BOOT_TIMEOUT = "boot_timeout"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNREACHABLE = "unreachable"
    REACHABLE_AGAIN = "reachable_again"
    OPERATOR = "operator"
    SCALE_DOWN = "scale_down"
    POOL_DELETED = "pool_deleted"
    DRAINED = "drained"
    DRAIN_GRACE_EXPIRED = "drain_grace_expired"
    INSTANCE_GONE = "instance_gone"
    VERDICT_CLEARED = "verdict_cleared"  # an operator cleared an unhealthy verdict
    SPEC_ADOPTED = "spec_adopted"  # the node took its pool's changed spec
    SCHEDULER = "scheduler"  # what the workload scheduler (Slurm, Kubernetes) said or did
    REPAIR = "repair"  # a step of an in-place repair (reset, reboot, validation)
    REPAIRED = "repaired"  # an in-place repair passed validation: back in service


class CordonSource(StrEnum):
    """Who holds a node's cordon (its owners: a node is schedulable only when none does)."""

    OPERATOR = "operator"  # a person, through the CLI or a signal: only a person lifts it
    DIAGNOSTICS = "diagnostics"  # a diagnostics run checking the node (it lifts it after)
    UNHEALTHY = "unhealthy"  # the health policy's verdict: lifted by a repair or a clear
    # The workload scheduler drained the node and Navarch did not (an administrator, Slurm's
    # own health check): lifted only when the scheduler itself returns the node.
    SCHEDULER = "scheduler"


class Hold(StoredModel):
    """One owner's cordon on a node: who, why, and since when."""

    owner: CordonSource
    reason: BoundedText = ""
    by: BoundedText = ""  # who asked (an operator's identity), when known
    at: datetime


# Reasons a node left the pool that call for a replacement (unless the pool shrank).
REPLACE_REASONS = frozenset({
    TransitionReason.PROVISION_FAILED,
    TransitionReason.BOOTSTRAP_FAILED,
    TransitionReason.BOOT_CHECK_FAILED,
    TransitionReason.BOOT_TIMEOUT,
    TransitionReason.UNHEALTHY,
    TransitionReason.UNREACHABLE,
    TransitionReason.INSTANCE_GONE,
    TransitionReason.OPERATOR,
})


class Transition(StoredModel):
    at: datetime
    from_state: NodeState | None = None
    to_state: NodeState
    reason: TransitionReason
    detail: BoundedText = ""


MAX_REPAIRS = 50  # repair attempts a node keeps (newest kept)


class RepairAttempt(StoredModel):
    """One rung of the repair ladder tried on a node: what, for which fault, and how it
    went. The ladder counts these (within the pool's window) to decide the next rung."""

    at: datetime
    rung: Rung
    fault: str  # the fault class: "xid 119", "sxid 12028", a rule's name
    rule: str = ""
    outcome: Literal["running", "returned", "failed", "no_return", "not_validated",
                     "stopped"] = "running"
    detail: BoundedText = ""
    seconds: float = 0.0  # from the rung's start to its outcome


class Rejected(StoredModel):
    """A signal a workflow refused: when, which, and why (the sender is told nothing else)."""

    at: datetime
    signal: str
    problem: BoundedText


class NodeStatus(StoredModel):
    """What `status` on a NodeWorkflow returns."""

    node_id: str
    pool: str
    state: NodeState
    health: HealthResult = HealthResult.HEALTHY
    provider: str = ""
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    instance_id: str = ""
    gpus: list[GpuInfo] = Field(default_factory=list)
    boot_checks: list[CheckResult] = Field(default_factory=list)
    transitions: list[Transition] = Field(default_factory=list)
    last_events: list[HealthEvent] = Field(default_factory=list)
    health_rule: str | None = None  # the rule behind `health` (what the hardware says now)
    # The sticky lifecycle decision: once the policy judges the node unhealthy it stays so,
    # whatever later checks say, until the machine is repaired or an operator clears it.
    verdict: HealthResult = HealthResult.HEALTHY
    verdict_rule: str | None = None
    verdict_at: datetime | None = None
    holds: list[Hold] = Field(default_factory=list)  # who holds the cordon, oldest first
    # Flap damping: when the node turned degraded (within the pool's flap window), and, for
    # a node that flapped too often, until when it stays degraded though its checks pass.
    degraded_at: list[datetime] = Field(default_factory=list)
    held_degraded_until: datetime | None = None
    # Events the policy's `repeats` rules counted, kept here so a count outlives the agent.
    occurrences: list[Occurrence] = Field(default_factory=list)
    cordoned: bool = False  # any hold, or leaving
    awaiting_repair: bool = False
    notifier_failures: int = 0
    hostname: str = ""  # as the agent reports it (a scheduler may know the node by it)
    boot_id: str = ""  # the host's boot as the agent last reported it
    repairs: list[RepairAttempt] = Field(default_factory=list)  # the ladder's attempts
    notifier_last_error: BoundedText = ""
    replacement_of: str | None = None
    rejected: list[Rejected] = Field(default_factory=list)  # the latest, newest last
    # The seq of the node's latest report to its pool: a pool that adopts the node takes
    # it, so a retried older report landing afterwards cannot roll its view back.
    report_seq: int = 0
    # Where the node's GPU-local activities go: from the provisioned instance; empty means
    # the node's own queue, navarch-node-<node_id> (a real host's agent).
    agent_task_queue: str = ""

    def agent_queue(self) -> str:
        return self.agent_task_queue or node_task_queue(self.node_id)

    def held_by(self, owner: CordonSource) -> Hold | None:
        return next((h for h in self.holds if h.owner is owner), None)

    def owners(self) -> list[CordonSource]:
        return [h.owner for h in self.holds]

    def cordon_source(self) -> CordonSource | None:
        """The hold that matters most: an operator's, then a verdict's, then diagnostics'."""
        for owner in (CordonSource.OPERATOR, CordonSource.UNHEALTHY, CordonSource.SCHEDULER,
                      CordonSource.DIAGNOSTICS):
            if self.held_by(owner):
                return owner
        return None


class NodeSummary(StoredModel):
    """One node as the fleet listing shows it: from Temporal's visibility store (the node's
    search attributes), with when its agent last proved alive. States are the values of
    `NodeState` and `HealthResult` as the node last published them."""

    node_id: str
    pool: str | None = None
    provider: str | None = None
    region: str | None = None
    instance_type: str | None = None
    state: str | None = None
    health: str | None = None
    verdict: str | None = None
    gpus: str | None = None  # "8x H100", from the instance type
    started_at: datetime | None = None
    closed_at: datetime | None = None  # set once the node's workflow has ended
    last_heartbeat: datetime | None = None


# ----------------------------------------------------------------------------- signals

MAX_GRACE_SECONDS = 7 * 24 * 3600.0  # a drain grace longer than a week is a mistake
MAX_NODE_ID = 128
KEEP_REJECTED = 10  # the latest refused signals a node's status shows


# Commands: what signals and updates ask of a node, one typed union (`kind` tells them
# apart; a sender never needs to give it). A node queues them, carries the queue across
# continue-as-new, and applies them in order.

_BY = "who asks (an operator's name or identity); the CLI fills in its own"


class CordonInput(SignalModel):
    kind: Literal["cordon"] = "cordon"
    reason: BoundedText = ""
    # Who cordons: an operator (default), or a diagnostics run (the pool will not pick such a
    # node for scale-down while it is being checked). Health automation cordons from inside.
    source: Literal[CordonSource.OPERATOR, CordonSource.DIAGNOSTICS] = CordonSource.OPERATOR
    by: BoundedText = Field(default="", description=_BY)


class UncordonInput(SignalModel):
    kind: Literal["uncordon"] = "uncordon"
    reason: BoundedText = ""
    # Whose hold to lift: an operator's uncordon lifts the operator's and diagnostics' holds;
    # a diagnostics run lifts only its own. Neither lifts an unhealthy verdict's hold.
    source: Literal[CordonSource.OPERATOR, CordonSource.DIAGNOSTICS] = CordonSource.OPERATOR
    by: BoundedText = Field(default="", description=_BY)


class DrainInput(SignalModel):
    kind: Literal["drain"] = "drain"
    grace_seconds: float = Field(default=600.0, ge=0, le=MAX_GRACE_SECONDS)
    reason: BoundedText = ""
    by: BoundedText = Field(default="", description=_BY)


class TerminateInput(SignalModel):
    kind: Literal["terminate"] = "terminate"
    reason: BoundedText = ""
    by: BoundedText = Field(default="", description=_BY)


class ClearInput(SignalModel):
    """An operator clears a node's unhealthy verdict (the hardware was checked, or fixed)."""

    kind: Literal["clear"] = "clear"
    reason: BoundedText = ""
    by: BoundedText = Field(default="", description=_BY)


class ApproveRepair(SignalModel):
    """Sent by the pool: the repair the node asked for may go on."""

    kind: Literal["approve_repair"] = "approve_repair"


class SpecUpdate(SignalModel):
    """Sent by the pool when its spec changed: the node adopts what can change on a running
    machine (health policy and thresholds, timeouts, notifier, diagnostics, labels)."""

    kind: Literal["update_spec"] = "update_spec"
    spec: PoolSpec


class NodeOperationResult(StoredModel):
    """What the `cordon`, `uncordon`, `drain` and `terminate` updates answer."""

    node_id: str
    operation: str
    applied: bool  # False: queued, applies once the node has booted
    state: NodeState
    cordoned: bool = False
    detail: BoundedText = ""


class NodeReport(StoredModel):
    """What a node tells its pool when its state changes (signal `node_state_changed`)."""

    node_id: str
    state: NodeState
    health: HealthResult = HealthResult.HEALTHY
    reason: TransitionReason
    at: datetime
    awaiting_repair: bool = False
    provider: str = ""
    region: str = ""
    detail: BoundedText = ""
    seq: int = 0  # increases with every report: a later report supersedes an earlier one
    # "provider/region/instance_type" keys that answered "no capacity" while provisioning.
    capacity_misses: list[str] = Field(default_factory=list)
    cordon_source: CordonSource | None = None
    holds: list[CordonSource] = Field(default_factory=list)  # every owner holding it
    verdict: HealthResult = HealthResult.HEALTHY
    # The node workflow's first run id (kept across continue-as-new): the pool accepts a
    # report only from the run chain it started for that node id.
    run_chain: str = ""


class RetireInput(SignalModel):
    """Sent by the pool: drain and terminate this node (scale-down, pool deletion)."""

    kind: Literal["retire"] = "retire"
    reason: TransitionReason = TransitionReason.SCALE_DOWN
    grace_seconds: float = Field(default=600.0, ge=0, le=MAX_GRACE_SECONDS)


class InstanceGoneInput(SignalModel):
    """The cloud no longer runs this node's machine (terminated, stopped or unknown there),
    as the orphan sweep's check or the node's own lookup found: leave at once, no drain."""

    kind: Literal["instance_gone"] = "instance_gone"
    instance_id: BoundedText = ""  # the machine found gone; the node ignores another's
    state: BoundedText = ""  # what the cloud said: "terminated", "stopping", "absent"
    detail: BoundedText = ""


NodeCommand = Annotated[
    CordonInput | UncordonInput | DrainInput | TerminateInput | RetireInput | ClearInput
    | ApproveRepair | SpecUpdate | InstanceGoneInput,
    Field(discriminator="kind"),
]


# ----------------------------------------------------------------------------- inputs


class NodeRecord(StoredModel):
    """All of a node's state but its spec, in one model: the workflow keeps it so, the
    decisions in `navarch.decisions.node` read and return its status, and continue-as-new
    carries it whole (with the commands not yet applied)."""

    status: NodeStatus
    instance: Instance | None = None  # set once provisioned (always, when carried over)
    provider: ProviderChoice | None = None
    cordon_source: CordonSource | None = None  # runs before holds: the one hold there was
    repair_cause: TransitionReason | None = None
    report_seq: int = 0
    fault_at: datetime | None = None  # the current fault episode's first event
    remedy: Remedy | None = None  # what the current unhealthy verdict asks for
    capacity_misses: list[str] = Field(default_factory=list)
    pending: list[NodeCommand] = Field(default_factory=list)  # commands not yet applied

    def model_post_init(self, _context: object) -> None:
        st = self.status
        if st.cordoned and not st.holds and self.cordon_source is not None:
            st.holds = [Hold(owner=self.cordon_source, at=st.transitions[-1].at
                             if st.transitions else datetime.min)]


NodeResume = NodeRecord  # the name runs before issue 15 knew it by


class NodeInput(StoredModel):
    node_id: str
    spec: PoolSpec
    replacement_of: str | None = None
    resume: NodeResume | None = None
    rotation: int = 0  # this node's turn, for round-robin placement
    avoid: list[str] = Field(default_factory=list)  # placements recently out of capacity
    # Workflow patches in force from the run's start, set by the code that starts it (the
    # pool, a continue-as-new): the run takes them as applied instead of recording a marker
    # for each. Empty (a start from the CLI, an older pool): each is asked as it comes.
    patches: list[str] = Field(default_factory=list)
