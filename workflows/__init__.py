"""Navarch's Temporal workflows (deterministic orchestration only)."""

from __future__ import annotations

from typing import Any

# Every workflow class the control-plane worker runs. The lifecycle issue adds
# PoolWorkflow and NodeWorkflow here.
WORKFLOWS: list[type[Any]] = []
