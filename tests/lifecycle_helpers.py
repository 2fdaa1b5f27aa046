"""Helpers for end-to-end lifecycle tests: a control plane with simulated hosts on a real
Temporal server, fast timings, and polling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import WorkerDeploymentConfig

from navarch.config.schema import HealthConfig
from navarch.contracts.diagnostics import DiagnosticsInput, DiagnosticsReport
from navarch.contracts.names import node_workflow_id, pool_workflow_id
from navarch.contracts.node import NodeStatus
from navarch.contracts.pool import PoolInput, PoolStatus
from navarch.contracts.spec import PoolSpec, ProviderChoice
from navarch.contracts.sweep import SweepConfig, SweepInput, SweepMode, SweepStatus, SweepTarget
from navarch.sim.fakeworld import FakeInstance, FakeWorld
from navarch.temporal.client import temporal_cli_path
from navarch.workers.control_plane import ControlPlane
from navarch.workflows.diagnostics import DiagnosticsWorkflow
from navarch.workflows.pool import PoolWorkflow
from navarch.workflows.registry import WORKFLOWS

T = TypeVar("T")


def fast_spec(name: str | None = None, **overrides: Any) -> PoolSpec:
    """A pool on the fake cloud with timings short enough for tests."""
    health = overrides.pop("health", {})
    values: dict[str, Any] = {
        "name": name or f"p-{uuid.uuid4().hex[:10]}",
        "providers": [ProviderChoice(name="sim", type="fake", instance_type="h100-8x")],
        "instance_type": "h100-8x",
        "min_nodes": 3,
        "max_nodes": 10,
        "health_check_interval": timedelta(milliseconds=100),
        # The agent's SDK sends a heartbeat once per 0.8 x this timeout, so the server
        # hears from a live watch with 20% of the timeout to spare: 1 s here. At 2 s (0.4 s
        # to spare) a CI machine busy starting a CLI process timed out a live node's watch
        # and the node went unreachable mid-test.
        "heartbeat_timeout": timedelta(seconds=5),
        "boot_deadline": timedelta(seconds=20),
        "autoscale_interval": timedelta(seconds=2),
        "health": HealthConfig(**{
            "unhealthy_after": 1,
            "unreachable_toleration": timedelta(seconds=2),
            "drain_grace": timedelta(seconds=3),
            **health,
        }),
    }
    values.update(overrides)
    return PoolSpec(**values)


@dataclass
class SimPlane:
    """A running control plane with its fake world, as tests see it."""

    plane: ControlPlane
    world: FakeWorld

    @property
    def task_queue(self) -> str:
        return self.plane.task_queue


@contextlib.asynccontextmanager
async def control_plane(client: Client, tmp_path: Path, *, boot_seconds: float = 0.1,
                        world: FakeWorld | None = None, task_queue: str | None = None,
                        provision_delay: float = 0.0, simulate_hosts: bool = True,
                        host_mode: str = "per-host",
                        deployment: WorkerDeploymentConfig | None = None,
                        workflows: Sequence[type] | None = None,
                        fleet_gauges_seconds: float = 10.0,
                        ) -> AsyncIterator[SimPlane]:
    """A control-plane worker on its own task queue, with simulated hosts (each on its own
    queue, or all on one shared queue of this plane's)."""
    world = world or FakeWorld(tmp_path / "world.db")
    queue = task_queue or f"navarch-{uuid.uuid4().hex}"
    plane = ControlPlane(client, world=world,
                         boot_seconds=boot_seconds, provision_delay=provision_delay,
                         simulate_hosts=simulate_hosts, task_queue=queue, host_mode=host_mode,
                         shared_host_queue=f"{queue}-hosts", deployment=deployment,
                         workflows=workflows if workflows is not None else tuple(WORKFLOWS),
                         fleet_gauges_seconds=fleet_gauges_seconds)
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))
    try:
        yield SimPlane(plane, world)
    finally:
        stop.set()
        await task


async def start_pool(client: Client, plane: SimPlane, spec: PoolSpec) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        PoolWorkflow.run, PoolInput(spec=spec), id=pool_workflow_id(spec.name),
        task_queue=plane.task_queue,
    )


async def ready_pool(client: Client, plane: SimPlane,
                     **overrides: Any) -> tuple[PoolSpec, PoolStatus]:
    """A pool (fast_spec with overrides) started and waited for until min_nodes are ready."""
    spec = fast_spec(**overrides)
    await start_pool(client, plane, spec)
    status = await eventually(lambda: pool_status(client, spec.name),
                              lambda s: s.ready == spec.min_nodes, what="pool ready")
    return spec, status


async def pool_status(client: Client, name: str) -> PoolStatus:
    handle = client.get_workflow_handle(pool_workflow_id(name))
    status: PoolStatus = await handle.query("status", result_type=PoolStatus)
    return status


async def node_status(client: Client, node_id: str) -> NodeStatus:
    handle = client.get_workflow_handle(node_workflow_id(node_id))
    status: NodeStatus = await handle.query("status", result_type=NodeStatus)
    return status


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *,
                     within: float = 30.0, interval: float = 0.1, what: str = "") -> T:
    """Poll `probe` until `check` holds; fail with the last value seen."""
    deadline = asyncio.get_running_loop().time() + within
    last: T | None = None
    while True:
        try:
            last = await probe()
            if check(last):
                return last
        except Exception as exc:  # a query before the workflow exists, etc.
            last = exc  # type: ignore[assignment]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}: last={last!r}")
        await asyncio.sleep(interval)


def states(status: PoolStatus) -> dict[str, int]:
    return status.counts


def transitions(node: NodeStatus) -> list[tuple[str, str]]:
    return [(t.to_state.value, t.reason.value) for t in node.transitions]


async def run_diagnostics(client, plane, spec,
                          nodes: list[str] | None = None) -> DiagnosticsReport:
    """A DiagnosticsWorkflow for a pool (or some of its nodes), as its schedule runs it."""
    report: DiagnosticsReport = await client.execute_workflow(
        DiagnosticsWorkflow.run,
        DiagnosticsInput(pool=spec.name, checks=spec.diagnostics.checks,
                         heartbeat_timeout=spec.heartbeat_timeout, nodes=nodes or []),
        id=f"diagnostics/{spec.name}-{uuid.uuid4().hex[:6]}", task_queue=plane.task_queue)
    return report


async def navarch_cli(env: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """The `navarch` CLI against the test's server, as an operator runs it (in a thread:
    the worker answering it runs on this event loop)."""
    address = env.client.service_client.config.target_host
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "navarch.cli", *args], capture_output=True,
        text=True, timeout=60, env={**os.environ, "TEMPORAL_ADDRESS": address,
                                    "TEMPORAL_NAMESPACE": "default", "COLUMNS": "200"})


def run_temporal_cli(env: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """The `temporal` CLI against the test's server, as an operator runs it."""
    address = env.client.service_client.config.target_host
    return subprocess.run([temporal_cli_path(), *args, "--address", address],
                          capture_output=True, text=True, timeout=60)


def temporal_cli(env: Any, *args: str) -> str:
    result = run_temporal_cli(env, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def moto_hosts(endpoint: str, regions: tuple[str, ...] = ("us-east-1",)) -> Callable[
        [], list[FakeInstance]]:
    """A `discover` for FakeHostManager: the running Navarch machines moto holds in these
    regions, each to be brought to life as a simulated GPU host."""
    import boto3

    clients = {r: boto3.client("ec2", endpoint_url=endpoint, region_name=r) for r in regions}

    def discover() -> list[FakeInstance]:
        out = []
        for region, ec2 in clients.items():
            found = ec2.describe_instances(Filters=[
                {"Name": "tag:navarch:managed-by", "Values": ["navarch"]},
                {"Name": "instance-state-name", "Values": ["running"]}])
            for reservation in found["Reservations"]:
                for inst in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                    if "navarch:node-id" not in tags:
                        continue
                    out.append(FakeInstance(
                        instance_id=inst["InstanceId"], node_id=tags["navarch:node-id"],
                        pool=tags.get("navarch:pool", ""), provider="aws",
                        instance_type=inst["InstanceType"], region=region, zone="",
                        state="running", created_at=0.0, boot_at=0.0, gpu_count=8,
                        gpu_model="H100", agent_enabled=True, never_boot=False))
        return out

    return discover


async def start_sweep(client: Client, task_queue: str, targets: list[SweepTarget], *,
                      mode: SweepMode = "terminate", grace: float = 2.0
                      ) -> WorkflowHandle[Any, Any]:
    """An orphan sweep every second, under an id of its own for this test (the dev server
    is shared by the session; `orphan-sweep` is the namespace's real one)."""
    config = SweepConfig(interval=timedelta(seconds=1), grace=timedelta(seconds=grace),
                         mode=mode, targets=targets)
    return await client.start_workflow("OrphanSweepWorkflow", SweepInput(config=config),
                                       id=f"orphan-sweep-{uuid.uuid4().hex[:8]}",
                                       task_queue=task_queue)


async def sweep_status(handle: WorkflowHandle[Any, Any]) -> SweepStatus:
    status: SweepStatus = await handle.query("status", result_type=SweepStatus)
    return status
