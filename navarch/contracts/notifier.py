"""The contract between workflows and the workload-notifier activities."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from navarch.config.schema import NotifierConfig

NOTIFY = "notifier.notify"
DRAIN_STATUS = "notifier.drain_status"


class NotifyInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    notifier: NotifierConfig
    event: Literal["cordon", "uncordon", "drain"]
    node_id: str
    reason: str = ""
    timestamp: datetime


class DrainStatusInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    notifier: NotifierConfig
    node_id: str


class DrainStatus(BaseModel):
    drained: bool
    message: str = ""
