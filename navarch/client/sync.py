"""The client without `await`, for scripts and notebooks: `connect_sync()` runs the async
client on an event loop of its own, in a background thread, so it works where an event loop
already runs (Jupyter) as well as in a plain script.

    from navarch.client import connect_sync

    fleet = connect_sync()
    print(fleet.pool("training").status().ready)
    fleet.node("3f2a...").cordon("bad fan")
    fleet.close()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from datetime import datetime
from typing import Any, TypeVar

from navarch.client.fleet import ApplyResult, ConfigSource, Navarch, Node, Pool, Progress
from navarch.contracts.node import NodeOperationResult, NodeStatus, NodeSummary, Transition
from navarch.contracts.pool import PoolStatus, PoolUpdateResult
from navarch.contracts.sweep import SweepStatus

T = TypeVar("T")


class _Loop:
    """An event loop on a daemon thread; `run` waits for one coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="navarch-client",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


def connect_sync(profile: str | None = None, **options: Any) -> SyncNavarch:
    """`Navarch.connect` without `await` (the same settings and options)."""
    loop = _Loop()
    try:
        fleet = loop.run(Navarch.connect(profile, **options))
    except BaseException:
        loop.stop()
        raise
    return SyncNavarch(fleet, loop)


class SyncNavarch:
    """`Navarch`'s methods, each waited for."""

    def __init__(self, fleet: Navarch, loop: _Loop) -> None:
        self.fleet, self._loop = fleet, loop

    def close(self) -> None:
        self._loop.stop()

    def __enter__(self) -> SyncNavarch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def apply(self, *sources: ConfigSource) -> ApplyResult:
        return self._loop.run(self.fleet.apply(*sources))

    def pools(self) -> list[PoolStatus]:
        return self._loop.run(self.fleet.pools())

    def pool(self, name: str) -> SyncPool:
        return SyncPool(self.fleet.pool(name), self._loop)

    def wait_ready(self, names: Iterable[str], *, within: float = 600.0,
                   progress: Progress | None = None) -> dict[str, PoolStatus]:
        return self._loop.run(self.fleet.wait_ready(names, within=within, progress=progress))

    def nodes(self, **filters: Any) -> list[NodeSummary]:
        return self._loop.run(self.fleet.nodes(**filters))

    def node(self, node_id: str) -> SyncNode:
        return SyncNode(self.fleet.node(node_id), self._loop)

    def report_queue_depth(self, pool: str, queue_depth: int,
                           pending_jobs: int | None = None) -> None:
        self._loop.run(self.fleet.report_queue_depth(pool, queue_depth, pending_jobs))

    def sweep(self, *, now: bool = False) -> SweepStatus:
        return self._loop.run(self.fleet.sweep(now=now))


class SyncPool:
    """`Pool`'s methods, each waited for."""

    def __init__(self, pool: Pool, loop: _Loop) -> None:
        self.pool, self._loop = pool, loop
        self.name = pool.name

    def status(self) -> PoolStatus:
        return self._loop.run(self.pool.status())

    def scale(self, target: int | None = None, *, min_nodes: int | None = None,
              max_nodes: int | None = None) -> PoolUpdateResult:
        return self._loop.run(self.pool.scale(target, min_nodes=min_nodes,
                                              max_nodes=max_nodes))

    def delete(self, *, wait: bool = False, within: float = 1800.0) -> bool:
        return self._loop.run(self.pool.delete(wait=wait, within=within))

    def report_queue_depth(self, queue_depth: int, pending_jobs: int | None = None) -> None:
        self._loop.run(self.pool.report_queue_depth(queue_depth, pending_jobs))


class SyncNode:
    """`Node`'s methods, each waited for."""

    def __init__(self, node: Node, loop: _Loop) -> None:
        self.node, self._loop = node, loop
        self.node_id = node.node_id

    def status(self) -> NodeStatus:
        return self._loop.run(self.node.status())

    def history(self) -> list[Transition]:
        return self._loop.run(self.node.history())

    def last_heartbeat(self) -> datetime | None:
        return self._loop.run(self.node.last_heartbeat())

    def cordon(self, reason: str = "", *, by: str | None = None) -> NodeOperationResult:
        return self._loop.run(self.node.cordon(reason, by=by))

    def uncordon(self, reason: str = "", *, by: str | None = None) -> NodeOperationResult:
        return self._loop.run(self.node.uncordon(reason, by=by))

    def clear(self, reason: str = "", *, by: str | None = None) -> NodeOperationResult:
        return self._loop.run(self.node.clear(reason, by=by))

    def drain(self, reason: str = "", *, grace: float = 600.0,
              by: str | None = None) -> NodeOperationResult:
        return self._loop.run(self.node.drain(reason, grace=grace, by=by))

    def terminate(self, reason: str = "", *, by: str | None = None) -> NodeOperationResult:
        return self._loop.run(self.node.terminate(reason, by=by))
