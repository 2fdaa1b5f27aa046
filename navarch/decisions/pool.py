"""A pool's decisions: which nodes serve, which a shrinking pool retires, when the repair
valve closes, and how long to wait after machines fail to come up.

`PoolWorkflow` carries them out; each is table-tested in `tests/test_decisions.py`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from navarch.contracts.node import CordonSource, NodeState
from navarch.contracts.pool import PoolNode

PROVISION_BACKOFF_BASE = timedelta(seconds=10)
PROVISION_BACKOFF_MAX = timedelta(minutes=10)

NOT_SERVING = {NodeState.CORDONED, NodeState.DRAINING, NodeState.UNREACHABLE,
                NodeState.TERMINATING, NodeState.REPAIRING}


def operator_held(node: PoolNode) -> bool:
    """Held by a person: a Navarch operator, or a workload scheduler's administrator (a
    drain Navarch did not set). Only they return it; the pool never retires it."""
    return (CordonSource.OPERATOR in node.holds or CordonSource.SCHEDULER in node.holds
            or node.cordon_source is CordonSource.OPERATOR)


def in_count(node: PoolNode) -> bool:
    """Whether a node fills one of the pool's places. A node an operator holds does not: it
    is out of service until a person says otherwise, so the pool keeps its size with
    another machine (and never retires the held one)."""
    return not node.state.is_terminal() and not node.retiring and not operator_held(node)


def not_serving(nodes: Iterable[PoolNode]) -> int:
    """Counted nodes that cannot take work now. A node cordoned for diagnostics comes back
    within minutes: it still counts as capacity."""
    return sum(1 for n in nodes if in_count(n) and n.state in NOT_SERVING
               and n.cordon_source is not CordonSource.DIAGNOSTICS)


def removal_rank(n: PoolNode, idle: set[str]) -> tuple[int, float]:
    """A node's place in the retirement order (lower goes first): cordoned or unreachable,
    then still booting (nothing runs there yet), then idle (no GPU processes at the last
    evaluation), then degraded, then the rest; newest first within each."""
    if n.state in (NodeState.CORDONED, NodeState.UNREACHABLE, NodeState.REPAIRING):
        order = 0
    elif not n.state.is_schedulable():
        order = 1
    elif n.node_id in idle:
        order = 2
    elif n.state is NodeState.DEGRADED:
        order = 3
    else:
        order = 4
    return order, -n.created_at.timestamp()


def removal_order(nodes: Iterable[PoolNode], idle: set[str], count: int) -> list[PoolNode]:
    """Which nodes a shrinking pool retires, by `removal_rank`. Never a node an operator
    holds, nor one a diagnostics run is checking."""
    candidates = [n for n in nodes if in_count(n)
                  and n.cordon_source is not CordonSource.DIAGNOSTICS
                  and CordonSource.DIAGNOSTICS not in n.holds]
    return sorted(candidates, key=lambda n: removal_rank(n, idle))[:max(0, count)]


def repairs_allowed(size: int, share: float) -> int:
    """How many repairs within the window the valve lets through before it closes."""
    return max(1, math.floor(share * size))


def valve_closes(requests: dict[str, datetime], now: datetime, window: timedelta,
                 size: int, share: float) -> tuple[dict[str, datetime], bool]:
    """The repair requests still inside the window, and whether they are too many."""
    recent = {k: v for k, v in requests.items() if v >= now - window}
    return recent, len(recent) > repairs_allowed(size, share)


def provision_backoff(streak: int) -> timedelta:
    """The wait before the next start after `streak` machines in a row failed to come up."""
    wait: timedelta = PROVISION_BACKOFF_BASE * 2 ** max(0, streak - 1)
    return min(wait, PROVISION_BACKOFF_MAX)
