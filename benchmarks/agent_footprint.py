"""Idle footprint of `navarch-agent`: resident memory and CPU while it watches a healthy node.

Starts a Temporal dev server (headless, random port), the control-plane worker in this
process, one NodeWorkflow, and a `navarch-agent --fake-gpus 8` process serving that node.
The fake agent follows a quiet kernel log (a fifo read as /dev/kmsg is). Once the node is
ready (watch_health running: the policy judged twice a second, heartbeats going out),
samples the agent's RSS and CPU time over a window and prints them.
Target from the agent issue: <= 96 MiB RSS and <= 1% of a core.

    python benchmarks/agent_footprint.py [--seconds 30] [--real-gpus]

With `--real-gpus` the agent uses NVML on this machine's GPUs (and the node's instance has
as many GPUs as NVML reports), so the figure is the agent's footprint on a real GPU host.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from harness import run_and_exit
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from navarch.config.instance_types import gpu_shape
from navarch.contracts.names import SEARCH_ATTRIBUTES, node_workflow_id
from navarch.contracts.node import NodeInput, NodeStatus
from navarch.contracts.spec import PoolSpec, ProviderChoice
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.client import temporal_cli_path
from navarch.workers.control_plane import ControlPlane
from navarch.workflows.node import NodeWorkflow


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _nvml_gpu_count() -> int:
    import pynvml

    pynvml.nvmlInit()
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


async def main(seconds: float, real_gpus: bool) -> None:
    gpus = _nvml_gpu_count() if real_gpus else 8
    # The boot check expects the GPU count of the instance type, so name one that has it.
    instance_type = f"h100-{gpus}x" if gpu_shape(f"h100-{gpus}x") else "h100-8x"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES)
    tmp = Path(tempfile.mkdtemp(prefix="navarch-bench-"))
    world = FakeWorld(tmp / "world.db")
    plane = ControlPlane(env.client, world=world, simulate_hosts=False,
                         task_queue=f"bench-{uuid.uuid4().hex[:8]}")
    stop = asyncio.Event()
    worker = asyncio.create_task(plane.run(stop))
    spec = PoolSpec(name="bench", providers=[ProviderChoice(name="sim", type="fake",
                                                            instance_type=instance_type,
                                                            gpu_count=gpus)],
                    instance_type=instance_type, min_nodes=1, max_nodes=1,
                    health_check_interval=timedelta(seconds=60),
                    heartbeat_timeout=timedelta(seconds=90))
    node_id = f"bench-{uuid.uuid4().hex[:8]}"
    handle = await env.client.start_workflow(
        NodeWorkflow.run, NodeInput(node_id=node_id, spec=spec),
        id=node_workflow_id(node_id), task_queue=plane.task_queue)
    backend = [] if real_gpus else ["--fake-gpus", str(gpus)]
    # As on a real host, the agent follows a kernel log (a quiet one: a fifo, read the way
    # /dev/kmsg is), so its idle cost is in the figure. With real GPUs it opens /dev/kmsg.
    kernel_log: list[str] = []
    if not real_gpus:
        os.mkfifo(tmp / "kmsg")
        held = os.open(tmp / "kmsg", os.O_RDWR | os.O_NONBLOCK)
        kernel_log = ["--kernel-log", str(tmp / "kmsg")]
    agent = subprocess.Popen(  # noqa: ASYNC220 - the agent is a separate process on purpose
        [sys.executable, "-m", "navarch.agent.main", "--node-id", node_id, *backend, *kernel_log,
         "--fake-world", str(world.path), "--log-level", "WARNING",
         "--temporal-address", env.client.service_client.config.target_host])
    try:
        for _ in range(300):
            status = await handle.query("status", result_type=NodeStatus)
            if status.state.value in ("ready", "failed", "terminated"):
                break
            await asyncio.sleep(0.1)
        if status.state.value != "ready":
            steps = [f"{t.to_state.value} ({t.reason.value}: {t.detail})"
                     for t in status.transitions]
            raise SystemExit(f"node never became ready: {' -> '.join(steps)}")
        await asyncio.sleep(3)  # let start-up settle
        cpu0, t0 = _cpu_seconds(agent.pid), time.monotonic()
        peak = 0.0
        while time.monotonic() - t0 < seconds:
            peak = max(peak, _rss_mib(agent.pid))
            await asyncio.sleep(1)
        cpu = (_cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0) * 100
        kind = "NVML backend" if real_gpus else "fake backend"
        print(f"navarch-agent ({kind}, {gpus} GPUs, watching a healthy node) over "
              f"{seconds:.0f} s: RSS {_rss_mib(agent.pid):.1f} MiB (peak {peak:.1f} MiB), "
              f"CPU {cpu:.2f}% of one core")
    finally:
        agent.terminate()
        agent.wait(30)
        if kernel_log:
            os.close(held)
        stop.set()
        await worker
        await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--real-gpus", action="store_true",
                        help="the agent reads this machine's GPUs through NVML")
    args = parser.parse_args()
    run_and_exit(main(args.seconds, args.real_gpus))
