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
