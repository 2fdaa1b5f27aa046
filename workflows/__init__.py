"""Navarch's Temporal workflows (deterministic orchestration only)."""

from __future__ import annotations

from typing import Any

from .node import NodeWorkflow
from .pool import PoolWorkflow

# Every workflow class the control-plane worker runs.
WORKFLOWS: list[type[Any]] = [PoolWorkflow, NodeWorkflow]

__all__ = ["WORKFLOWS", "NodeWorkflow", "PoolWorkflow"]
