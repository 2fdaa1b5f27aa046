"""Where Navarch keeps local state on an operator's machine."""

from __future__ import annotations

import os
from pathlib import Path


def navarch_home() -> Path:
    """~/.navarch, or $NAVARCH_HOME: the dev server's database, the fake cloud, logs."""
    return Path(os.environ.get("NAVARCH_HOME", "~/.navarch")).expanduser()


def fake_world_path() -> Path:
    """The fake cloud's SQLite file ($NAVARCH_FAKE_WORLD overrides)."""
    explicit = os.environ.get("NAVARCH_FAKE_WORLD")
    return Path(explicit).expanduser() if explicit else navarch_home() / "fake-cloud.db"
