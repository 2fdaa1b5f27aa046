"""The NodeWorkflow's contract: its states, why it moves between them, what its `status`
query returns, the signals that move it, what it reports to its pool, and its input (with
what it carries across continue-as-new).

Defined outside the workflow module so the workflow sandbox does not rebuild these models
for every workflow it runs. Stored models are lenient, signal models strict (`base`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from navarch.contracts.agent import CheckResult, GpuInfo
from navarch.contracts.base import SignalModel, StoredModel
from navarch.contracts.cloud import Instance
from navarch.contracts.names import node_task_queue
from navarch.contracts.spec import PoolSpec, ProviderChoice
from navarch.health.events import HealthEvent, HealthResult
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


class CordonSource(StrEnum):
    """Who holds a node's cordon."""

    OPERATOR = "operator"  # a person, through the CLI or a signal
    DIAGNOSTICS = "diagnostics"  # a diagnostics run checking the node (it lifts it after)
    UNHEALTHY = "unhealthy"  # the health policy's verdict


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
    health_rule: str | None = None
    cordoned: bool = False
    awaiting_repair: bool = False
    notifier_failures: int = 0
    notifier_last_error: BoundedText = ""
    replacement_of: str | None = None
    rejected: list[Rejected] = Field(default_factory=list)  # the latest, newest last
    # Where the node's GPU-local activities go: from the provisioned instance; empty means
    # the node's own queue, navarch-node-<node_id> (a real host's agent).
    agent_task_queue: str = ""

    def agent_queue(self) -> str:
        return self.agent_task_queue or node_task_queue(self.node_id)


# ----------------------------------------------------------------------------- signals

MAX_GRACE_SECONDS = 7 * 24 * 3600.0  # a drain grace longer than a week is a mistake
MAX_NODE_ID = 128
KEEP_REJECTED = 10  # the latest refused signals a node's status shows


class Rejected(StoredModel):
    """A signal a workflow refused: when, which, and why (the sender is told nothing else)."""

    at: datetime
    signal: str
    problem: BoundedText


class CordonInput(SignalModel):
    reason: BoundedText = ""
    # Who cordons: an operator (default), or a diagnostics run (the pool will not pick such a
    # node for scale-down while it is being checked). Health automation cordons from inside.
    source: Literal[CordonSource.OPERATOR, CordonSource.DIAGNOSTICS] = CordonSource.OPERATOR


class UncordonInput(SignalModel):
    reason: BoundedText = ""


class DrainInput(SignalModel):
    grace_seconds: float = Field(default=600.0, ge=0, le=MAX_GRACE_SECONDS)
    reason: BoundedText = ""


class TerminateInput(SignalModel):
    reason: BoundedText = ""


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
    # The node workflow's first run id (kept across continue-as-new): the pool accepts a
    # report only from the run chain it started for that node id.
    run_chain: str = ""


# ----------------------------------------------------------------------------- inputs


class NodeResume(StoredModel):
    """What a node carries across continue-as-new."""

    status: NodeStatus
    instance: Instance
    provider: ProviderChoice
    cordon_source: CordonSource | None = None
    repair_cause: TransitionReason | None = None
    report_seq: int = 0


class NodeInput(StoredModel):
    node_id: str
    spec: PoolSpec
    replacement_of: str | None = None
    resume: NodeResume | None = None
    rotation: int = 0  # this node's turn, for round-robin placement
    avoid: list[str] = Field(default_factory=list)  # placements recently out of capacity


class RetireInput(SignalModel):
    """Sent by the pool: drain and terminate this node (scale-down, pool deletion)."""

    reason: TransitionReason = TransitionReason.SCALE_DOWN
    grace_seconds: float = Field(default=600.0, ge=0, le=MAX_GRACE_SECONDS)
