"""Navarch's Temporal workflows (deterministic orchestration only)."""

from __future__ import annotations

from typing import Any

from .diagnostics import DiagnosticsWorkflow
from .node import NodeWorkflow
from .pool import PoolWorkflow
from .sweep import OrphanSweepWorkflow

# Every workflow class the control-plane worker runs.
WORKFLOWS: list[type[Any]] = [PoolWorkflow, NodeWorkflow, DiagnosticsWorkflow,
                               OrphanSweepWorkflow]

__all__ = ["WORKFLOWS", "DiagnosticsWorkflow", "NodeWorkflow", "OrphanSweepWorkflow",
           "PoolWorkflow"]
