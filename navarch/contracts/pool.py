"""The PoolWorkflow's inputs, state and status: the contract with the CLI and clients.

Defined outside the workflow module so the workflow sandbox does not rebuild these models
for every workflow it runs."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from navarch.contracts.autoscale import ScaleDecision
from navarch.contracts.base import SignalModel, StoredModel
from navarch.contracts.node import CordonSource, NodeState, TransitionReason
from navarch.contracts.spec import PoolSpec
from navarch.health.events import HealthResult


class PoolNode(StoredModel):
    node_id: str
    state: NodeState
    health: HealthResult = HealthResult.HEALTHY
    reason: TransitionReason = TransitionReason.CREATED
    provider: str = ""
    region: str = ""
    since: datetime
    created_at: datetime
    seq: int = 0
    awaiting_repair: bool = False
    cordon_source: CordonSource | None = None
    fault_at: datetime | None = None  # when it first asked for repair
    replaced_ready: bool = False  # (a replacement) its fault-to-ready time was measured
    retiring: bool = False
    replacement_of: str | None = None


class PoolEvent(StoredModel):
    at: datetime
    kind: str
    detail: str = ""


class PoolState(StoredModel):
    target: int = 0
    nodes: dict[str, PoolNode] = Field(default_factory=dict)
    events: list[PoolEvent] = Field(default_factory=list)
    provisioned: int = 0
    replacements: int = 0
    repair_paused: bool = False
    repair_paused_reason: str = ""
    repair_requests: dict[str, datetime] = Field(default_factory=dict)
    pending_repairs: list[str] = Field(default_factory=list)
    boot_failure_streak: int = 0
    next_provision_at: datetime | None = None
    last_scale_at: datetime | None = None
    runs: int = 1
    deleting: bool = False
    capacity_misses: dict[str, datetime] = Field(default_factory=dict)  # key -> avoid until
    # Autoscaling (only with an `autoscaling` block).
    next_eval_at: datetime | None = None
    utilization: list[float] = Field(default_factory=list)  # newest last
    queue_depth: int | None = None
    pending_jobs: int | None = None
    queue_reported_at: datetime | None = None
    idle_nodes: list[str] = Field(default_factory=list)
    decisions: list[ScaleDecision] = Field(default_factory=list)
    last_evaluation: str = ""  # the latest decision's reason, changed or not
    metrics_errors: list[str] = Field(default_factory=list)


class PoolInput(StoredModel):
    spec: PoolSpec
    state: PoolState | None = None


class PoolStatus(StoredModel):
    name: str
    target: int
    min_nodes: int
    max_nodes: int
    counts: dict[str, int] = Field(default_factory=dict)
    ready: int = 0
    schedulable: int = 0
    nodes: list[PoolNode] = Field(default_factory=list)
    repair_paused: bool = False
    repair_paused_reason: str = ""
    awaiting_repair: list[str] = Field(default_factory=list)
    provisioned: int = 0
    replacements: int = 0
    events: list[PoolEvent] = Field(default_factory=list)
    runs: int = 1
    deleting: bool = False
    capacity_misses: dict[str, datetime] = Field(default_factory=dict)
    autoscaler: str | None = None  # the autoscaler's type
    utilization: float | None = None
    queue_depth: int | None = None
    last_evaluation: str = ""
    decisions: list[ScaleDecision] = Field(default_factory=list)
    metrics_errors: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------------------- signals


class NodeRef(SignalModel):
    node_id: str = Field(min_length=1)
    reason: str = ""


class DrainNodeInput(NodeRef):
    grace_seconds: float = Field(default=600.0, ge=0)


class ScaleInput(SignalModel):
    target: int | None = Field(default=None, ge=0)
    min_nodes: int | None = Field(default=None, ge=0)
    max_nodes: int | None = Field(default=None, ge=1)
