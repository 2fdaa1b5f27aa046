"""Benchmark 5: the largest steady fleet on this machine, with faults flowing.

A dev server with its SQLite file (as `navarch up` runs it), the real `navarch-worker`
process with the fake cloud and simulated hosts sharing one task queue, and pools of
production NodeWorkflows at the pool defaults (60 s health checks, 90 s heartbeat timeout).
Once every node is ready, fatal Xids are injected at a steady rate for the measuring
window; the pools cordon, drain, terminate and replace those nodes. Prints, and writes to
results/steady_fleet-<nodes>.json: the ramp time, CPU (% of one core) and RSS of the dev
server and of the worker over the window, Xid → cordoned latencies, replacements made.

    python benchmarks/steady_fleet.py --nodes 5000 [--pool-size 500] [--window 180]
        [--faults-per-minute 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import pool_spec, save, summary
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from navarch.config.schema import HealthConfig
from navarch.contracts.names import SA_NODE_STATE, node_workflow_id, pool_workflow_id
from navarch.contracts.node import NodeState, NodeStatus
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.devserver import DevServer, free_port

TICK = os.sysconf("SC_CLK_TCK")



def start_worker(address: str, world: Path, queue: str, log: Path, cache: int,
                 *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "navarch.workers.main", "--fake-cloud", "--task-queue", queue,
         "--fake-world", str(world), "--simulated-hosts", "shared",
         "--max-cached-workflows", str(cache),
         "--metrics-port", "0", "--log-level", "WARNING", *extra],
        env={**os.environ, "TEMPORAL_ADDRESS": address},
        stdout=log.open("ab"), stderr=subprocess.STDOUT)


class ProcessMeter:
    """CPU seconds and resident memory of one process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def ready_count(client: Client) -> int:
    """Ready nodes, from the nodes' search attributes (one call, however busy the pools)."""
    count = await client.count_workflows(
        f'WorkflowType="NodeWorkflow" AND ExecutionStatus="Running" AND '
        f'{SA_NODE_STATE.name}="ready"')
    return count.count


async def cordoned_after(client: Client, node_id: str, at: datetime) -> float | None:
    """Seconds from `at` to the node's first `cordoned` after it, from its own transitions."""
    status: NodeStatus = await client.get_workflow_handle(
        node_workflow_id(node_id)).query("status", result_type=NodeStatus)
    cordoned = next((t.at for t in status.transitions
                     if t.to_state is NodeState.CORDONED and t.at >= at), None)
    return None if cordoned is None else (cordoned - at).total_seconds()


async def watch_completed_after(client: Client, node_id: str, at: datetime) -> float | None:
    """Seconds from `at` to the server recording the node's first activity completion after
    it (the watch that saw the fault): the agent's half of Xid -> cordoned."""
    handle = client.get_workflow_handle(node_workflow_id(node_id))
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_completed_event_attributes"):
            when = event.event_time.ToDatetime(tzinfo=UTC)
            if when >= at:
                return (when - at).total_seconds()
    return None


async def burst(client: Client, world: FakeWorld, count: int, nodes: int,
                meters: dict[str, ProcessMeter]) -> dict[str, Any]:
    """`count` ready nodes get a fatal Xid at once, each timed from its own write; waits
    (on one count query) until they have left `ready`, then reads each one's cordon. CPU
    seconds of each process from the first write until all have left `ready`."""
    victims = [i.node_id for i in world.instances(live_only=True)][:count]
    cpu0 = {name: m.cpu_seconds() for name, m in meters.items()}
    t0 = time.monotonic()
    written: dict[str, datetime] = {}
    for node_id in victims:
        written[node_id] = datetime.now(UTC)
        await asyncio.to_thread(world.inject, node_id, "xid", value=79)
    spread = (max(written.values()) - min(written.values())).total_seconds()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if await ready_count(client) <= nodes - len(victims):
            break
        await asyncio.sleep(0.5)
    took = time.monotonic() - t0
    cpu = {name: round(m.cpu_seconds() - cpu0[name], 1) for name, m in meters.items()}
    latencies = [s for n in victims
                 if (s := await cordoned_after(client, n, written[n])) is not None]
    # Where the time went, on every tenth victim: the agent's half (write -> the server
    # has the watch's completion) and the control plane's (-> the node's task cordons).
    sample = victims[::10]
    agent_half = [s for n in sample
                  if (s := await watch_completed_after(client, n, written[n])) is not None]
    return {"nodes": len(victims), "writes_took_s": round(spread, 2),
            "all_left_ready_s": round(took, 1), "cpu_s": cpu,
            "cordoned": len(latencies), "xid_to_cordoned_s": summary(latencies),
            "xid_to_watch_completed_s": summary(agent_half)}


async def main(args: argparse.Namespace) -> int:
    from navarch.contracts.pool import PoolInput, PoolStatus

    folder = Path(tempfile.mkdtemp(prefix="navarch-steady-"))
    # --partitions 0 leaves the server's default, and runs against a tree from before the
    # setting (old-and-new comparisons run this script against an older checkout).
    server = DevServer(folder / "temporal", port=free_port(), ui_port=free_port(),
                       **({"partitions": args.partitions} if args.partitions else {}))
    server.start()
    assert server.process is not None
    address = f"127.0.0.1:{server.port}"
    world_path = folder / "world.db"
    world = FakeWorld(world_path)
    queue = f"steady-{uuid.uuid4().hex[:6]}"
    cache = args.max_cached_workflows or args.nodes + args.nodes // args.pool_size + 200
    extra = ["--strict-sandbox"] if args.strict_sandbox else []
    hosts = None
    if args.hosts_process:
        # The simulated hosts in a process of their own (an idle worker on an unused queue
        # serves them), so the worker's memory and CPU are the control plane's alone.
        extra.append("--no-simulated-hosts")
        hosts = start_worker(address, world_path, f"{queue}-idle", folder / "hosts.log", 10)
    worker = start_worker(address, world_path, queue, folder / "worker.log", cache, *extra)
    figures: dict[str, Any] = {"nodes": args.nodes, "gpus": args.nodes * 8,
                               "pool_size": args.pool_size, "window_s": args.window,
                               "faults_per_minute": args.faults_per_minute,
                               "host_mode": "shared", "persistence": "dev server SQLite (WAL)",
                               "max_cached_workflows": cache,
                               "sandbox": "strict" if args.strict_sandbox else "shared modules",
                               "hosts_process": args.hosts_process,
                               "write_partitions": args.partitions or "server default (4)"}
    try:
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        pools = []
        dev, wrk = ProcessMeter(server.process.pid), ProcessMeter(worker.pid)
        await asyncio.sleep(5)  # the worker has imported and connected
        idle_rss = wrk.rss_mib()
        ramp_cpu0 = (dev.cpu_seconds(), wrk.cpu_seconds())
        started = time.monotonic()
        left = args.nodes
        while left > 0:
            size = min(args.pool_size, left)
            spec = pool_spec(size, health_check_interval=timedelta(seconds=60),
                             heartbeat_timeout=timedelta(seconds=90),
                             boot_deadline=timedelta(minutes=10),
                             health=HealthConfig(unhealthy_after=1, drain_grace=timedelta(0),
                                                 auto_replace=not args.no_replace))
            await client.start_workflow("PoolWorkflow", PoolInput(spec=spec),
                                        id=pool_workflow_id(spec.name), task_queue=queue)
            pools.append(spec.name)
            left -= size
        last_print = 0.0
        while True:
            ready = await ready_count(client)
            now = time.monotonic() - started
            if now - last_print >= 10:
                made = (await client.count_workflows(
                    'WorkflowType="NodeWorkflow" AND ExecutionStatus="Running"')).count
                print(f"  {now:6.0f} s: {ready}/{args.nodes} ready, {made} started; CPU-s "
                      f"dev server {dev.cpu_seconds() - ramp_cpu0[0]:.0f}, worker "
                      f"{wrk.cpu_seconds() - ramp_cpu0[1]:.0f}", flush=True)
                last_print = now
            if ready >= args.nodes:
                break
            if now > args.ramp_limit:
                print(f"not all ready within {args.ramp_limit} s: {ready}/{args.nodes}")
                figures["ramp_incomplete"] = ready
                break
            await asyncio.sleep(2)
        figures["ramp_s"] = round(time.monotonic() - started, 1)
        figures["ramp_cpu_s"] = {"dev_server": round(dev.cpu_seconds() - ramp_cpu0[0], 1),
                                 "worker": round(wrk.cpu_seconds() - ramp_cpu0[1], 1)}
        print(f"{ready} nodes ready in {figures['ramp_s']} s; CPU-s over the ramp: "
              f"{figures['ramp_cpu_s']}")
        ready_rss = wrk.rss_mib()
        workflows = args.nodes + len(pools)
        figures["worker_rss_mib"] = {
            "before_ramp": round(idle_rss), "all_ready": round(ready_rss),
            "per_workflow_kib": round((ready_rss - idle_rss) * 1024 / workflows, 1),
            "includes_simulated_hosts": not args.hosts_process}
        print(f"worker RSS {figures['worker_rss_mib']}", flush=True)
        await asyncio.sleep(args.settle)
        if args.burst:
            meters = {"dev_server": dev, "worker": wrk}
            if hosts is not None:
                meters["hosts"] = ProcessMeter(hosts.pid)
            figures["burst"] = await burst(client, world, args.burst, args.nodes, meters)
            print(f"burst: {figures['burst']}", flush=True)

        cpu0 = (dev.cpu_seconds(), wrk.cpu_seconds(), *machine_busy())
        t0 = time.monotonic()
        rng = random.Random(1)
        injected: list[tuple[str, datetime]] = []
        victims = [i.node_id for i in world.instances(live_only=True)]
        rng.shuffle(victims)
        gap = 60.0 / args.faults_per_minute if args.faults_per_minute > 0 else float("inf")
        next_fault = t0 + gap / 2
        peak_dev = peak_wrk = 0.0
        while time.monotonic() - t0 < args.window:
            if time.monotonic() >= next_fault and victims:
                node_id = victims.pop()
                injected.append((node_id, datetime.now(UTC)))
                await asyncio.to_thread(world.inject, node_id, "xid", value=79,
                                        gpu_index=rng.randrange(8))
                next_fault += gap
            peak_dev, peak_wrk = max(peak_dev, dev.rss_mib()), max(peak_wrk, wrk.rss_mib())
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - t0
        cpu1 = (dev.cpu_seconds(), wrk.cpu_seconds(), *machine_busy())
        figures["dev_server"] = {"cpu_pct_of_one_core": round(100 * (cpu1[0] - cpu0[0]) /
                                                              elapsed, 1),
                                 "rss_mib": round(dev.rss_mib()), "peak_rss_mib": round(peak_dev)}
        figures["worker"] = {"cpu_pct_of_one_core": round(100 * (cpu1[1] - cpu0[1]) / elapsed, 1),
                             "rss_mib": round(wrk.rss_mib()), "peak_rss_mib": round(peak_wrk)}
        figures["machine_busy_pct"] = round(100 * (cpu1[2] - cpu0[2]) / (cpu1[3] - cpu0[3]), 1)
        await asyncio.sleep(15)  # let the last faults reach their nodes
        latencies = [s for node_id, at in injected
                     if (s := await cordoned_after(client, node_id, at)) is not None]
        figures["faults_injected"] = len(injected)
        figures["xid_to_cordoned_s"] = summary(latencies)
        replacements = 0
        for name in pools:
            pool = await client.get_workflow_handle(pool_workflow_id(name)).query(
                "status", result_type=PoolStatus)
            replacements += pool.replacements
        figures["replacements"] = replacements
        figures["ready_at_end"] = await ready_count(client)
        figures["db_mib"] = round(sum(p.stat().st_size for p in (folder / "temporal").glob(
            "temporal.db*")) / 2**20)
    finally:
        for process in (worker, hosts):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        server.stop()
    print(f"steady fleet: {args.nodes} nodes ({args.nodes * 8} GPUs) in pools of "
          f"{args.pool_size}")
    for key in ("ramp_s", "ramp_cpu_s", "worker_rss_mib", "burst", "dev_server", "worker",
                "machine_busy_pct", "faults_injected", "xid_to_cordoned_s", "replacements",
                "ready_at_end", "db_mib"):
        print(f"  {key}: {figures.get(key)}")
    print(f"wrote {save(f'steady_fleet-{args.nodes}', figures)}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pool-size", type=int, default=500)
    parser.add_argument("--window", type=float, default=180.0, help="seconds measured")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds after the ramp before measuring")
    parser.add_argument("--faults-per-minute", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=0,
                        help="before the window: this many ready nodes get a fatal Xid at "
                             "once (e.g. 1000); Xid -> cordoned for each. Use with "
                             "--faults-per-minute 0")
    parser.add_argument("--no-replace", action="store_true",
                        help="pools with auto_replace off: a fault cordons its node and "
                             "nothing follows (the cordon path alone)")
    parser.add_argument("--ramp-limit", type=float, default=1800.0)
    parser.add_argument("--partitions", type=int, default=1,
                        help="task-queue partitions the dev server writes to (0: the server's "
                             "default, 4; default %(default)s, as navarch up runs it)")
    parser.add_argument("--hosts-process", action="store_true",
                        help="run the simulated hosts in a process of their own: the "
                             "worker's figures are then the control plane's alone")
    parser.add_argument("--strict-sandbox", action="store_true",
                        help="the worker imports the workflow modules afresh per instance "
                             "(the SDK's default; the tree before issue 21's sharing)")
    parser.add_argument("--max-cached-workflows", type=int, default=0,
                        help="the worker's workflow cache (default: every node and pool)")
    sys.exit(asyncio.run(main(parser.parse_args())))
