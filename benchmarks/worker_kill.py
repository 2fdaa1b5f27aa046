"""Reliability run: kill the control-plane worker (SIGKILL, no goodbye) at random moments
while a pool provisions, restart it each time, and check that the fake cloud ends with
exactly the pool's size in live instances — no machine made twice, none lost.

The worker is the real `navarch-worker` process (fake cloud in a SQLite file, simulated
hosts); the server is a real dev server. Prints the outcome, writes
results/worker_kill.json, exits 1 if the count is wrong.

    python benchmarks/worker_kill.py [--nodes 50] [--kills 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import pool_spec, report, run_and_exit
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from navarch.contracts.names import SEARCH_ATTRIBUTES, pool_workflow_id
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.client import temporal_cli_path


def start_worker(address: str, world: Path, queue: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TEMPORAL_ADDRESS": address}
    return subprocess.Popen(
        [sys.executable, "-m", "navarch.workers.main", "--fake-cloud", "--task-queue", queue,
         "--fake-world", str(world), "--metrics-port", "0", "--log-level", "WARNING"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def main(nodes: int, kills: int, seed: int) -> int:
    from navarch.contracts.pool import PoolInput, PoolStatus

    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="navarch-kill-"))
    world_path, log = folder / "world.db", folder / "worker.log"
    world = FakeWorld(world_path)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES, ip="127.0.0.1", ui=False,
        dev_server_log_level="error")
    address = env.client.service_client.config.target_host
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    spec = pool_spec(nodes)
    worker = start_worker(address, world_path, queue, log)
    started = time.monotonic()
    killed_at: list[float] = []
    try:
        await env.client.start_workflow("PoolWorkflow", PoolInput(spec=spec),
                                        id=pool_workflow_id(spec.name), task_queue=queue)
        handle = env.client.get_workflow_handle(pool_workflow_id(spec.name))
        for _ in range(kills):
            # Kill it while it works: once it has made a machine since it started (or after
            # 8 s), at a random moment within the next 1.5 s.
            before = len(world.instances(spec.name))
            for _ in range(160):  # up to 8 s
                if len(world.instances(spec.name)) != before:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            killed_at.append(round(time.monotonic() - started, 2))
            live = len(world.instances(spec.name, live_only=True))
            print(f"killed the worker at {killed_at[-1]} s ({live} instance(s) so far)")
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            worker = start_worker(address, world_path, queue, log)
        deadline = time.monotonic() + 300
        status = None
        while time.monotonic() < deadline:
            status = await handle.query("status", result_type=PoolStatus)
            if status.ready == nodes:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(3)  # anything still in flight lands
        instances = world.instances(spec.name, live_only=True)
        per_node: dict[str, int] = {}
        for inst in instances:
            per_node[inst.node_id] = per_node.get(inst.node_id, 0) + 1
        doubles = {k: v for k, v in per_node.items() if v > 1}
        ok = len(instances) == nodes and not doubles and status is not None \
            and status.ready == nodes
        figures = {"nodes": nodes, "kills": kills, "seed": seed, "killed_at_s": killed_at,
                   "live_instances": len(instances), "nodes_with_two_instances": doubles,
                   "pool_ready": status.ready if status else None,
                   "provisioned": status.provisioned if status else None,
                   "converged_s": round(time.monotonic() - started, 1), "ok": ok}
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        await env.shutdown()
    report("worker_kill", figures)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    run_and_exit(main(args.nodes, args.kills, args.seed))
