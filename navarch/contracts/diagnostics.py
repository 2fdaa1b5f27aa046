"""The DiagnosticsWorkflow's input and report.

Defined outside the workflow module so the workflow sandbox does not rebuild these models
for every workflow it runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from navarch.config.schema import DiagnosticCheck
from navarch.contracts.agent import DiagnosticResult
from navarch.contracts.base import StoredModel
from navarch.durations import GoDuration


class DiagnosticsInput(StoredModel):
    pool: str
    checks: list[DiagnosticCheck] = Field(default_factory=list)
    max_parallel: int = Field(default=1, ge=1)
    heartbeat_timeout: GoDuration = timedelta(seconds=90)
    # Only these nodes of the pool (empty: every ready node).
    nodes: list[str] = Field(default_factory=list)


class NodeDiagnostics(StoredModel):
    node_id: str
    outcome: Literal["pass", "fail", "skipped", "busy", "unreachable"]
    results: list[DiagnosticResult] = Field(default_factory=list)
    detail: str = ""


class DiagnosticsReport(StoredModel):
    pool: str
    nodes: list[NodeDiagnostics] = Field(default_factory=list)
