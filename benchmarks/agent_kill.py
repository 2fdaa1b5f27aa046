"""Agent killed (SIGKILL, no goodbye) → its node `unreachable`, as a ratio of the heartbeat
timeout. Each node's agent is a real `navarch-agent` process (fake GPU backend); nothing
tells the control plane the agent died: only the missing heartbeats of its watch do.
Figures print and go to results/agent_kill.json.

    python benchmarks/agent_kill.py [--nodes 5] [--heartbeat-timeout 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import Fleet, fleet, pool_spec, report, run_and_exit, summary, until

from navarch.config.schema import HealthConfig
from navarch.contracts.node import NodeState, NodeStatus


def start_agent(node_id: str, world: Path, address: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "navarch.agent.main", "--node-id", node_id, "--fake-gpus", "8",
         "--fake-world", str(world), "--metrics-port", "0", "--log-level", "ERROR",
         "--temporal-address", address],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _unreachable(f: Fleet, node_id: str, within: float) -> NodeStatus:
    return await until(lambda: f.node(node_id),
                       lambda s: any(t.to_state is NodeState.UNREACHABLE
                                     for t in s.transitions), within=within)


async def main(nodes: int, heartbeat_timeout: float) -> None:
    agents: dict[str, subprocess.Popen[bytes]] = {}
    async with fleet(simulate_hosts=False) as f:
        address = f.client.service_client.config.target_host
        spec = pool_spec(nodes, heartbeat_timeout=timedelta(seconds=heartbeat_timeout),
                         health=HealthConfig(unhealthy_after=1,
                                             unreachable_toleration=timedelta(minutes=10)),
                         name=f"kill-{uuid.uuid4().hex[:6]}")
        await f.start_pool(spec)
        for _ in range(600):
            for inst in f.world.instances(spec.name, live_only=True):
                if inst.node_id not in agents:
                    agents[inst.node_id] = start_agent(inst.node_id, f.world.path, address)
            if len(agents) >= nodes:
                break
            await asyncio.sleep(0.1)
        status = await until(lambda: f.pool(spec.name), lambda s: s.ready == nodes, within=120)
        await asyncio.sleep(heartbeat_timeout)  # every watch past its first heartbeats
        # Each agent killed at its own random moment of its heartbeat cycle (one per 0.8 x
        # the timeout), all in one window: each node's detection is independent.

        async def kill_and_time(node_id: str) -> float:
            await asyncio.sleep(random.uniform(0, 0.8 * heartbeat_timeout))
            killed = datetime.now(UTC)
            agents[node_id].send_signal(signal.SIGKILL)
            await asyncio.to_thread(agents[node_id].wait)
            node = await _unreachable(f, node_id, heartbeat_timeout * 4)
            at = next(t.at for t in node.transitions if t.to_state is NodeState.UNREACHABLE)
            return (at - killed).total_seconds()

        seconds = list(await asyncio.gather(*(kill_and_time(n.node_id) for n in status.nodes)))
        ratios = [s / heartbeat_timeout for s in seconds]
        figures = {"nodes": nodes, "heartbeat_timeout_s": heartbeat_timeout,
                   "kill_to_unreachable_s": summary(seconds),
                   "as_ratio_of_heartbeat_timeout": summary(ratios)}
    for proc in agents.values():
        if proc.poll() is None:
            proc.kill()
    report("agent_kill", figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--heartbeat-timeout", type=float, default=10.0)
    args = parser.parse_args()
    run_and_exit(main(args.nodes, args.heartbeat_timeout))
