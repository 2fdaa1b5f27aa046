"""The PoolWorkflow's inputs, state and status: the contract with the CLI and clients.

Defined outside the workflow module so the workflow sandbox does not rebuild these models
for every workflow it runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from temporalio.exceptions import ApplicationError

from navarch.contracts.autoscale import ScaleDecision
from navarch.contracts.base import FORBID_UNKNOWN, SignalModel, StoredModel, describe_errors
from navarch.contracts.node import (
    MAX_GRACE_SECONDS,
    MAX_NODE_ID,
    CordonSource,
    NodeState,
    TransitionReason,
)
from navarch.contracts.spec import PoolSpec
from navarch.health.events import HealthResult
from navarch.validation import BoundedText, shorten

# The failure type of a pool started with input that does not validate.
INVALID_POOL_INPUT = "InvalidPoolInput"


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
    holds: list[CordonSource] = Field(default_factory=list)  # every owner holding it
    verdict: HealthResult = HealthResult.HEALTHY
    fault_at: datetime | None = None  # when it first asked for repair
    replaced_ready: bool = False  # (a replacement) its fault-to-ready time was measured
    retiring: bool = False
    replacement_of: str | None = None
    run_chain: str = ""  # the node workflow's first run id, from its start


class PoolEvent(StoredModel):
    at: datetime
    kind: str
    detail: BoundedText = ""


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
    state: PoolState | None = None  # None: a first start; else carried by continue-as-new

    @model_validator(mode="before")
    @classmethod
    def _first_start_fails_loudly(cls, data: Any) -> Any:
        """A pool's first input comes from a person (`navarch pool apply`, `temporal
        workflow start`, a script). One that does not validate, or whose spec has keys the
        spec does not know, fails the workflow at once with the errors as its message
        (ApplicationError passes through decoding), instead of failing its first workflow
        task forever while the pool shows Running."""
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, dict):
            raise invalid_pool_input(f"expected {{\"spec\": {{...}}}}, got {shorten(data)}")
        if data.get("state") is None and not isinstance(data.get("spec"), PoolSpec):
            try:
                spec = PoolSpec.model_validate(data.get("spec"), context=FORBID_UNKNOWN)
            except ValidationError as exc:
                raise invalid_pool_input(describe_errors(exc, limit=10, prefix="spec")) from None
            return {**data, "spec": spec}  # validated once: the instance is taken as is
        return data


def invalid_pool_input(problem: str) -> ApplicationError:
    return ApplicationError(f"invalid pool input: {problem}", type=INVALID_POOL_INPUT,
                            non_retryable=True)


class PoolStatus(StoredModel):
    name: str
    target: int
    min_nodes: int
    max_nodes: int
    counts: dict[str, int] = Field(default_factory=dict)
    gpus: dict[str, int] = Field(default_factory=dict)  # GPUs of live nodes, by model
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
    node_id: str = Field(min_length=1, max_length=MAX_NODE_ID)
    reason: BoundedText = ""


class DrainNodeInput(NodeRef):
    grace_seconds: float = Field(default=600.0, ge=0, le=MAX_GRACE_SECONDS)


class ScaleInput(SignalModel):
    target: int | None = Field(default=None, ge=0)
    min_nodes: int | None = Field(default=None, ge=0)
    max_nodes: int | None = Field(default=None, ge=1)


class PoolUpdateResult(StoredModel):
    """What the `scale` and `update_spec` updates answer: the pool's bounds and target now."""

    name: str
    target: int
    min_nodes: int
    max_nodes: int
    detail: BoundedText = ""
