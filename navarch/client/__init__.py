"""The Python API of a Navarch fleet: `await Navarch.connect()`, then pools and nodes as
typed handles that answer with the contract models (`navarch.contracts`). The `navarch`
command is a thin layer over it; `connect_sync()` serves scripts and notebooks.

    from navarch.client import Navarch

    fleet = await Navarch.connect()
    await fleet.apply("config.yaml")
    for node in await fleet.nodes(pool="training", health="unhealthy"):
        await fleet.node(node.node_id).cordon("looking at it")

Errors are typed: `NotConnected`, `NotFound`, `Refused` (with the workflow's reason),
`InvalidRequest` and `TimedOut`, all `NavarchError`.

May import: `navarch.temporal`, `navarch.contracts`, `navarch.config`, `navarch.health`, the
leaf modules.
"""

from navarch.client.errors import (
    InvalidRequest,
    NavarchError,
    NotConnected,
    NotFound,
    Refused,
    TimedOut,
)
from navarch.client.fleet import ApplyResult, Navarch, Node, Pool
from navarch.client.sync import SyncNavarch, SyncNode, SyncPool, connect_sync
from navarch.client.upgrades import Upgrades

__all__ = [
    "ApplyResult", "InvalidRequest", "Navarch", "NavarchError", "Node", "NotConnected",
    "NotFound", "Pool", "Refused", "SyncNavarch", "SyncNode", "SyncPool", "TimedOut",
    "Upgrades", "connect_sync",
]
