"""Control-plane activities: cloud providers and the notifier."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Every activity function the control-plane worker runs (cloud providers, notifier).
ACTIVITIES: list[Callable[..., Any]] = []
