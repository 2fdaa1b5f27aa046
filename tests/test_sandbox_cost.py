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
