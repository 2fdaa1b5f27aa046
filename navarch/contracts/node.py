"""The NodeWorkflow's inputs: the contract with the pool, the simulator and clients.

Defined outside the workflow module so the workflow sandbox does not rebuild these models
for every workflow it runs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from navarch.contracts.cloud import Instance
from navarch.contracts.lifecycle import NodeStatus, SignalModel, StoredModel, TransitionReason
from navarch.contracts.spec import PoolSpec, ProviderChoice


class NodeResume(StoredModel):
    """What a node carries across continue-as-new."""

    status: NodeStatus
    instance: Instance
    provider: ProviderChoice
    cordon_source: str | None = None
    repair_cause: TransitionReason | None = None
    report_seq: int = 0


class NodeInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    node_id: str
    spec: PoolSpec
    replacement_of: str | None = None
    resume: NodeResume | None = None
    rotation: int = 0  # this node's turn, for round-robin placement
    avoid: list[str] = Field(default_factory=list)  # placements recently out of capacity


class RetireInput(SignalModel):
    """Sent by the pool: drain and terminate this node (scale-down, pool deletion)."""

    reason: TransitionReason = TransitionReason.SCALE_DOWN
    grace_seconds: float = 600.0
