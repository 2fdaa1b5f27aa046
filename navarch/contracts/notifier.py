"""The contract between workflows and the workload-notifier activities."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from temporalio import activity

from navarch.config.schema import NotifierConfig
from navarch.contracts.base import StoredModel

NOTIFY = "notifier.notify"
DRAIN_STATUS = "notifier.drain_status"


class NotifyInput(StoredModel):
    notifier: NotifierConfig
    event: Literal["cordon", "uncordon", "drain"]
    node_id: str
    reason: str = ""
    timestamp: datetime


class DrainStatusInput(StoredModel):
    notifier: NotifierConfig
    node_id: str


class DrainStatus(StoredModel):
    drained: bool
    message: str = ""


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
