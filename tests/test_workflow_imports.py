"""Workflow modules import Navarch code only as passed-through modules, by full name.

`from navarch import agent_api` inside the sandbox re-executes agent_api there: its
pydantic models are rebuilt for every workflow instance (most of a busy worker's CPU) and
are different classes from the host's, so a model built on the host rejects them. Models a
workflow takes or returns live in `navarch.contracts` for the same reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).parent.parent / "workflows").glob("*.py"))


def _passthrough_blocks(tree: ast.Module) -> list[ast.With]:
    return [n for n in tree.body if isinstance(n, ast.With)
            and "imports_passed_through" in ast.unparse(n.items[0].context_expr)]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_navarch_imports_are_passed_through_by_full_name(path):
    tree = ast.parse(path.read_text())
    inside = {id(n) for block in _passthrough_blocks(tree) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "navarch":
                pytest.fail(f"{path.name}:{node.lineno}: `from navarch import ...` runs the "
                            "module inside the sandbox; import names from navarch.<module>")
            if node.module.startswith("navarch.") and id(node) not in inside:
                pytest.fail(f"{path.name}:{node.lineno}: {node.module} imported outside "
                            "workflow.unsafe.imports_passed_through()")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_pydantic_models_are_defined_in_workflow_modules(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(b) for b in node.bases}
            assert not bases & {"BaseModel", "StoredModel", "SignalModel"}, (
                f"{path.name}: model {node.name} belongs in navarch.contracts")
