"""The contract between PoolWorkflow and the autoscaling metrics activity of the control
plane, and the `report_queue_depth` signal a workload scheduler sends to a pool."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from temporalio import activity

from navarch.config.schema import QueueSource, UtilizationSource
from navarch.contracts.base import SignalModel, StoredModel

GATHER_METRICS = "autoscale.gather_metrics"
MAX_IDLE_REPORTED = 100  # idle node ids returned per evaluation (history stays small)


class MetricsRequest(StoredModel):
    pool: str
    utilization: UtilizationSource | None = None  # None: not needed this time
    queue: QueueSource | None = None  # None, or a signal source: not fetched


class PoolMetrics(StoredModel):
    """One evaluation's aggregate: a few numbers, whatever the pool's size."""

    utilization: float | None = None  # mean GPU utilization, percent
    gpus: int = 0  # GPUs the mean is over
    nodes: int = 0  # nodes that reported
    queue_depth: int | None = None
    pending_jobs: int | None = None
    idle_nodes: list[str] = Field(default_factory=list)  # no GPU processes (agents source)
    errors: list[str] = Field(default_factory=list)  # sources that did not answer


class QueueReport(SignalModel):
    """Signal `report_queue_depth`: what a scheduler pushes to a pool."""

    queue_depth: int = Field(ge=0)
    pending_jobs: int | None = Field(default=None, ge=0)


class ScaleDecision(StoredModel):
    """A change of the pool's target, kept in its status."""

    at: datetime
    from_target: int
    to_target: int
    reason: str
    utilization: float | None = None
    queue_depth: int | None = None


# ------------------------------------------------------------------------ activities
# Each activity's signature, declared once under its stable name: workflows call these stubs
# (so mypy checks every call), workers register implementations under the same names; a
# stub itself never runs.


@activity.defn(name=GATHER_METRICS)
async def gather_metrics(request: MetricsRequest) -> PoolMetrics:
    """The numbers a pool's autoscaler decides on: utilization, queue depth, idle nodes."""
    raise NotImplementedError
