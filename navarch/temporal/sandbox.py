"""Keeping the workflow sandbox's cost per workflow instance small.

The sandbox imports a workflow's module (and the Navarch workflow modules it needs) afresh
for every workflow instance it creates: each new node, and each workflow brought back after
a cache eviction. Python loads those modules from their cached bytecode; where none may be
written (PYTHONDONTWRITEBYTECODE, which many container images set) every one of those
imports compiles the source again. That was more than half of a busy worker's CPU while a
fleet ramped (measured on 200 nodes with `py-spy`), so the worker keeps its own bytecode
cache instead, outside the source tree: the user's wish not to write next to the sources
still holds."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions


def keep_bytecode(cache_dir: Path | None = None) -> Path | None:
    """Where bytecode may not be written, write it under `cache_dir` (default: a per-user
    directory in the temp dir); the directory used, or None where Python already caches."""
    if not sys.dont_write_bytecode:
        return None
    if sys.pycache_prefix is None:
        where = cache_dir or Path(tempfile.gettempdir()) / f"navarch-pycache-{os.getuid()}"
        where.mkdir(parents=True, exist_ok=True)
        sys.pycache_prefix = str(where)
    sys.dont_write_bytecode = False
    return Path(sys.pycache_prefix)


# The workflow package, imported once and shared by every workflow instance (see
# `workflow_runner`).
WORKFLOW_PACKAGE = "navarch.workflows"
STRICT_ENV = "NAVARCH_STRICT_SANDBOX"


def strict_requested() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def workflow_runner(strict: bool | None = None) -> SandboxedWorkflowRunner:
    """The sandbox the control-plane worker runs workflows in.

    By default Navarch's own workflow modules are passed through: imported once by the
    worker and shared by every instance, instead of executed afresh in each new instance's
    sandbox. Each NodeWorkflow instance used to carry its own copy of `workflows/node.py`
    (its class, ~90 functions, their code objects): about 0.25 MiB of a cached workflow's
    memory and the largest single cost of creating one (600-node ramp, worker RSS 436 →
    288 MiB). The price: calls inside those modules are no longer intercepted, so a
    `datetime.now()` there would not be refused at run time. That guard stays where it
    catches mistakes before production: every recorded history replays in the strict
    sandbox (`tests/test_replay.py`), the lifecycle tests run strict, and a test forbids
    non-deterministic imports and module state in `workflows/`. The modules hold no
    mutable state (the same test checks it), which is what per-instance import protected.

    `strict=True` (or NAVARCH_STRICT_SANDBOX=1) restores the SDK's default, where each
    instance imports the workflow modules afresh under the sandbox's restrictions."""
    if strict is None:
        strict = strict_requested()
    if strict:
        return SandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(WORKFLOW_PACKAGE))
