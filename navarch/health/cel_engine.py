"""The CEL engine: the Rust extension of the `common-expression-language` package, loaded
without the package's `__init__`, which also imports its interactive REPL (typer,
prompt_toolkit, pygments: ~25 MiB of resident memory in every agent). Falls back to a plain
`import cel` if the extension cannot be loaded on its own."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any


def _load() -> Any:
    if "cel.cel" in sys.modules:  # already loaded (a pyo3 module can't be loaded twice)
        return sys.modules["cel.cel"]
    spec = importlib.util.find_spec("cel")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidates = [*Path(folder).glob("cel.*.so"), *Path(folder).glob("cel.*.pyd")]
            for path in sorted(candidates):
                loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(path))
                ext_spec = importlib.util.spec_from_file_location("cel.cel", path, loader=loader)
                if ext_spec is None:
                    continue
                try:
                    module = importlib.util.module_from_spec(ext_spec)
                    loader.exec_module(module)
                except ImportError:
                    continue
                # Registered under its real name, so a later `import cel` reuses it.
                sys.modules["cel.cel"] = module
                return module
    return importlib.import_module("cel")


_engine = _load()


def compile_expression(source: str) -> Any:
    """Compile a CEL expression; ValueError (with line and column) on a syntax error."""
    return _engine.compile(source)
