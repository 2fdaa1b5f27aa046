"""What the fleet benchmarks share: a real Temporal dev server (headless, random port), the
control-plane worker with the fake cloud and simulated hosts in this process, and a way to
write each benchmark's figures as JSON next to printing them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from navarch.config.schema import HealthConfig
from navarch.contracts.names import SEARCH_ATTRIBUTES, node_workflow_id, pool_workflow_id
from navarch.contracts.node import NodeStatus
from navarch.contracts.spec import PoolSpec, ProviderChoice
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.client import temporal_cli_path
from navarch.workers.control_plane import ControlPlane

T = TypeVar("T")
RESULTS = Path(__file__).parent / "results"


@dataclass
class Fleet:
    client: Client
    world: FakeWorld
    plane: ControlPlane
    env: WorkflowEnvironment

    async def start_pool(self, spec: PoolSpec) -> None:
        from navarch.contracts.pool import PoolInput

        await self.client.start_workflow("PoolWorkflow", PoolInput(spec=spec),
                                         id=pool_workflow_id(spec.name),
                                         task_queue=self.plane.task_queue)

    async def pool(self, name: str) -> Any:
        from navarch.contracts.pool import PoolStatus

        return await self.client.get_workflow_handle(pool_workflow_id(name)).query(
            "status", result_type=PoolStatus)

    async def node(self, node_id: str) -> NodeStatus:
        status: NodeStatus = await self.client.get_workflow_handle(
            node_workflow_id(node_id)).query("status", result_type=NodeStatus)
        return status


@contextlib.asynccontextmanager
async def fleet(boot_seconds: float = 0.2, metrics_port: int = 0,
                simulate_hosts: bool = True, host_mode: str = "per-host") -> AsyncIterator[Fleet]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES, ip="127.0.0.1", ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=["--metrics-port", str(metrics_port)] if metrics_port else [])
    world = FakeWorld(Path(tempfile.mkdtemp(prefix="navarch-bench-")) / "world.db")
    plane = ControlPlane(env.client, world=world, boot_seconds=boot_seconds,
                         simulate_hosts=simulate_hosts, host_mode=host_mode,
                         max_cached_workflows=20_000,
                         task_queue=f"bench-{uuid.uuid4().hex[:8]}")
    stop = asyncio.Event()
    worker = asyncio.create_task(plane.run(stop))
    try:
        yield Fleet(env.client, world, plane, env)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await worker
        await env.shutdown()


def pool_spec(nodes: int, **overrides: Any) -> PoolSpec:
    values: dict[str, Any] = {
        "name": f"bench-{uuid.uuid4().hex[:8]}",
        "providers": [ProviderChoice(name="sim", type="fake", instance_type="h100-8x")],
        "instance_type": "h100-8x", "min_nodes": nodes, "max_nodes": max(nodes, 1),
        "health_check_interval": timedelta(seconds=1), "heartbeat_timeout": timedelta(seconds=10),
        "boot_deadline": timedelta(minutes=5),
        "health": HealthConfig(unhealthy_after=1, unreachable_toleration=timedelta(seconds=2),
                               drain_grace=timedelta(seconds=1)),
    }
    values.update(overrides)
    return PoolSpec(**values)


def repairs_at_once() -> HealthConfig:
    """Every fault acted on at its first judgement, and every repair approved (the valve
    would rightly pause a pool losing this many nodes)."""
    return HealthConfig(unhealthy_after=1, unreachable_toleration=timedelta(seconds=2),
                        drain_grace=timedelta(seconds=1), max_unhealthy_share=1.0,
                        unhealthy_window=timedelta(seconds=1))


async def cordon_latency(f: Fleet, node_id: str, written: datetime) -> float:
    """Seconds from `written` to the node's own `cordoned` transition (server clock)."""
    from navarch.contracts.node import NodeState

    status: NodeStatus = await until(
        lambda: f.node(node_id),
        lambda s: any(t.to_state is NodeState.CORDONED for t in s.transitions), within=60)
    cordoned = next(t.at for t in status.transitions if t.to_state is NodeState.CORDONED)
    return float((cordoned - written).total_seconds())


async def until(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool],
                within: float, interval: float = 0.05) -> T:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        with contextlib.suppress(Exception):
            value = await probe()
            if check(value):
                return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"not within {within} s")
        await asyncio.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "mean": statistics.fmean(values) if values else 0.0,
            "max": max(values, default=0.0)}


def report(name: str, figures: dict[str, Any]) -> None:
    """Print a benchmark's figures, one per line, and keep them in results/NAME.json."""
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"written to {save(name, figures)}")


def run_and_exit(main: Coroutine[Any, Any, int | None]) -> NoReturn:
    """Run a benchmark's main and exit with its code through os._exit, output flushed: the
    SDK's exit crash (sdk-python #300, ../shared/TOOLCHAIN.md) must not decide the code."""
    code = asyncio.run(main)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def save(name: str, figures: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({
        "benchmark": name, "at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        **figures}, indent=2) + "\n")
    return path
