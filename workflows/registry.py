"""Every workflow class the control-plane worker runs.

Not in the package's `__init__`: the sandbox runs the package's `__init__` again for every
workflow instance it creates, so an `__init__` that imported every workflow module made a
new NodeWorkflow import the pool's, the sweep's and the diagnostics' modules too."""

from __future__ import annotations

from typing import Any

from .diagnostics import DiagnosticsWorkflow
from .node import NodeWorkflow
from .pool import PoolWorkflow
from .sweep import OrphanSweepWorkflow

WORKFLOWS: tuple[type[Any], ...] = (PoolWorkflow, NodeWorkflow, DiagnosticsWorkflow,
                                    OrphanSweepWorkflow)
