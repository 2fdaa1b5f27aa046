"""The contract between workflows and the workload-notifier activities."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from temporalio import activity

from navarch.config.schema import NotifierConfig
from navarch.contracts.base import StoredModel

NOTIFY = "notifier.notify"
DRAIN_STATUS = "notifier.drain_status"
FORCE_DRAIN = "notifier.force_drain"


class SchedulerNode(StoredModel):
    """What a workload scheduler may know a Navarch node by."""

    node_id: str
    pool: str = ""
    hostname: str = ""  # from the agent's inventory
    instance_id: str = ""
    provider_type: str = ""  # aws, gcp, ...: the form of its Kubernetes providerID
    zone: str = ""
    project: str = ""

    def provider_id(self) -> str:
        """The Kubernetes `spec.providerID` the cloud's kubelet gives this machine."""
        if self.provider_type == "aws" and self.instance_id:
            return f"aws:///{self.zone}/{self.instance_id}"
        if self.provider_type == "gcp" and self.instance_id:
            return f"gce://{self.project}/{self.instance_id}"  # id is zone/name
        return ""


class NotifyInput(StoredModel):
    notifier: NotifierConfig
    event: Literal["cordon", "uncordon", "drain"]
    node_id: str
    reason: str = ""
    timestamp: datetime
    target: SchedulerNode | None = None  # None: only the node id is known


class DrainStatusInput(StoredModel):
    notifier: NotifierConfig
    node_id: str
    target: SchedulerNode | None = None
    # Only look (a periodic check of a node in service): no eviction is started.
    probe_only: bool = False


class DrainStatus(StoredModel):
    drained: bool
    message: str = ""
    # False: the scheduler does not know the node (still joining, or gone from it); never
    # drained then.
    known: bool = True
    remaining: int = 0  # jobs or pods still on the node
    # A drain (or cordon) on the node that Navarch did not set: who and why, as the
    # scheduler says (an administrator's, a health check's).
    foreign_hold: str = ""


class ForceDrainInput(StoredModel):
    notifier: NotifierConfig
    target: SchedulerNode


class ForceDrainResult(StoredModel):
    action: str  # "requeued", "cancelled", "deleted"
    count: int = 0
    detail: str = ""


# ------------------------------------------------------------------------ activities
# Each activity's signature, declared once under its stable name: workflows call these stubs
# (so mypy checks every call), workers register implementations under the same names; a
# stub itself never runs.


@activity.defn(name=NOTIFY)
async def notify(params: NotifyInput) -> bool:
    """Tell the workload scheduler a node was cordoned, uncordoned or is draining."""
    raise NotImplementedError


@activity.defn(name=DRAIN_STATUS)
async def drain_status(params: DrainStatusInput) -> DrainStatus:
    """Ask the workload scheduler whether a node's work has left it."""
    raise NotImplementedError


@activity.defn(name=FORCE_DRAIN)
async def force_drain(params: ForceDrainInput) -> ForceDrainResult:
    """At the drain grace's end: requeue or cancel the node's jobs, or delete its pods, as
    the notifier's `on_grace_end` says."""
    raise NotImplementedError
