"""The worker keeps bytecode for the modules the sandbox re-imports per workflow instance,
and a NodeWorkflow instance does not import the other workflow modules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from navarch.temporal.sandbox import keep_bytecode

WORKFLOWS = Path(__file__).parent.parent / "workflows"


def test_where_bytecode_may_not_be_written_the_worker_writes_it_outside_the_sources(
        tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    assert keep_bytecode(tmp_path / "cache") == tmp_path / "cache"
    assert sys.dont_write_bytecode is False and sys.pycache_prefix == str(tmp_path / "cache")


def test_where_python_caches_bytecode_nothing_changes(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    assert keep_bytecode() is None and sys.pycache_prefix is None


def test_the_workflow_package_init_imports_nothing():
    """The sandbox runs it for every workflow instance: the registry lives elsewhere."""
    tree = ast.parse((WORKFLOWS / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


# The worker shares the workflow modules between instances (navarch.temporal.sandbox):
# what per-instance import protected must hold in the code itself.

NON_DETERMINISTIC = {"time", "random", "uuid", "secrets", "os", "sys", "threading",
                     "socket", "subprocess", "multiprocessing", "concurrent", "logging",
                     "requests", "sqlite3", "pathlib", "shutil", "tempfile"}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(WORKFLOWS.glob("*.py"))]


def test_workflow_modules_import_nothing_that_reads_the_clock_chance_or_the_world():
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}:{getattr(node, 'lineno', 0)} imports {n}" for n in names
                      if n.split(".")[0] in NON_DETERMINISTIC]
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in CLOCK_CALLS
                    and ast.unparse(node.func.value) in ("datetime", "date", "time")):
                found.append(f"{path.name}:{node.lineno} calls {ast.unparse(node.func)}")
    assert not found, "use workflow.now() / workflow.random() / an activity: " + "; ".join(found)


def test_workflow_modules_hold_no_mutable_state_shared_by_instances():
    """Module-level names are constants (immutable values); nothing is declared global."""
    mutable = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
    found = []
    for path, tree in _modules():
        for node in tree.body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, mutable):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)[:60]}")
            if isinstance(value, ast.Call) and ast.unparse(value.func) in (
                    "list", "dict", "set", "defaultdict", "deque", "metrics.gauge_set"):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)[:60]}")
        found += [f"{path.name}:{n.lineno} global {', '.join(n.names)}"
                  for n in ast.walk(tree) if isinstance(n, ast.Global | ast.Nonlocal)]
    assert not found, "; ".join(found)


def test_the_worker_shares_the_workflow_modules_unless_asked_for_the_strict_sandbox(
        monkeypatch):
    from navarch.temporal.sandbox import WORKFLOW_PACKAGE, workflow_runner

    monkeypatch.delenv("NAVARCH_STRICT_SANDBOX", raising=False)
    shared = workflow_runner()
    assert WORKFLOW_PACKAGE in shared.restrictions.passthrough_modules
    assert WORKFLOW_PACKAGE not in workflow_runner(strict=True).restrictions.passthrough_modules
    monkeypatch.setenv("NAVARCH_STRICT_SANDBOX", "1")
    assert WORKFLOW_PACKAGE not in workflow_runner().restrictions.passthrough_modules
