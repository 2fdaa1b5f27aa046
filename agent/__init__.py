"""The node agent: a Temporal worker on `navarch-node-<node_id>` running GPU-local activities.

Never imports `navarch.workflows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# GPU-local activities the agent serves (boot checks, watch_health, wait_idle, inventory).
AGENT_ACTIVITIES: list[Callable[..., Any]] = []
