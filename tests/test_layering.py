"""The rooms of `navarch/` are layered, and the role packages keep to their side: checked from
the imports (every `import`, at module level or inside a function), as
test_workflow_imports checks the sandbox rule.

Bottom to top: the leaf modules at the top of `navarch/` (durations, validation, the
bootstrap templates); `health`; `config` (a config names a health policy); `contracts`
(config and health for their value types); `decisions`, `sim` and `temporal`, side by side;
`client` (the Python API) on `temporal`; `cli`, which may use everything. Nothing imports upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEAVES = {"durations", "validation", "redact", "bootstrap", ""}  # "" is `navarch` itself (__version__)
ROLES = ("workflows", "activities", "workers", "agent")
BELOW = {
    "health": set(),
    "config": {"health"},
    "contracts": {"config", "health"},
    "decisions": {"contracts", "config", "health"},
    "sim": {"contracts", "config", "health"},
    "temporal": {"contracts", "config", "health"},
    "client": {"contracts", "config", "health", "temporal"},
    "cli": {"contracts", "config", "health", "decisions", "sim", "temporal", "client", *ROLES},
}
ROOMS = tuple(BELOW)
CORE = {"contracts", "config", "health"}
# What each role package may import from navarch. `agent/` never imports `workflows/`.
ROLE_USES = {
    "workflows": {*CORE, "decisions"},
    "activities": {*CORE, "temporal", "sim"},
    "agent": {*CORE, "temporal", "sim"},
    "workers": {*CORE, "temporal", "sim", "workflows", "activities", "agent"},
}


def _part(module: str) -> str | None:
    """The room or role a `navarch...` module belongs to ("" for the top of navarch/)."""
    if module == "navarch":
        return ""
    if not module.startswith("navarch."):
        return None
    return module.split(".")[1]


def _all_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.append((node.lineno, node.module or ""))
    return found


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) for every navarch import in a file; relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "navarch":  # `from navarch import x`: x may be a module
                found += [(node.lineno, "navarch" if a.name.startswith("__")
                           else f"navarch.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, module))
    return [(line, m) for line, m in found if _part(m) is not None]


def _files() -> list[tuple[Path, str, str]]:
    """(file, its package, its room or role) for every module of Navarch."""
    out = []
    for path in sorted((ROOT / "navarch").rglob("*.py")):
        rel = path.relative_to(ROOT / "navarch").parts
        room = rel[0].removesuffix(".py") if len(rel) > 1 else ""
        out.append((path, ".".join(("navarch", *rel[:-1])), room))
    for role in ROLES:
        for path in sorted((ROOT / role).rglob("*.py")):
            out.append((path, f"navarch.{role}", role))
    return out


def _allowed(part: str) -> set[str]:
    if part in LEAVES:
        return set(LEAVES)
    uses = BELOW[part] if part in BELOW else ROLE_USES[part]
    return {part, *uses, *LEAVES}


@pytest.mark.parametrize("path,package,part", _files(),
                         ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else "")
def test_imports_follow_the_layers(path: Path, package: str, part: str) -> None:
    allowed = _allowed(part)
    wrong = [f"{path.relative_to(ROOT)}:{line}: {module}"
             for line, module in _imports(path, package) if _part(module) not in allowed]
    assert not wrong, (f"{part or 'a leaf module'} may import only "
                       f"{sorted(p or 'navarch' for p in allowed)}:\n" + "\n".join(wrong))


def test_every_room_exists_with_a_docstring_saying_what_it_may_import() -> None:
    for room in ROOMS:
        init = ROOT / "navarch" / room / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc, f"navarch/{room}/__init__.py: say what lives here and " \
                                    "what it may import"


def test_the_top_of_navarch_holds_only_leaves() -> None:
    top = {p.stem for p in (ROOT / "navarch").glob("*.py")} - {"__init__"}
    packages = {p.name for p in (ROOT / "navarch").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert top <= LEAVES, f"modules that belong in a room: {sorted(top - LEAVES)}"
    assert packages <= {*ROOMS, *LEAVES}, sorted(packages - {*ROOMS, *LEAVES})


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from navarch.cli.output import out\nfrom ..sim import fakeworld\n")
    assert _imports(bad, "navarch.health") == [(1, "navarch.cli.output"),
                                               (2, "navarch.sim")]
    assert {_part(m) for _, m in _imports(bad, "navarch.health")} - _allowed("health")


def test_no_test_module_imports_another() -> None:
    """Shared fixtures live in conftest.py, shared helpers in helper modules."""
    wrong = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for line, module in _all_imports(path):
            if module.split(".")[0].startswith("test_"):
                wrong.append(f"{path.name}:{line}: {module}")
    assert not wrong, wrong
