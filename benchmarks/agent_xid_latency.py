"""Xid line written to the kernel log → node `cordoned`, through the real agent's path.

Each node's agent is a real `navarch-agent` process (`--fake-gpus 8`: only NVML is
simulated) following its own kernel log, a fifo read the way /dev/kmsg is read (one record
per read, `--kernel-log`). The benchmark writes a kmsg record of Xid 79 for one GPU there;
the agent's kernel-log reader parses it, the health watch judges it with the pool's policy
and completes, and the node workflow cordons. The latency is the node's own `cordoned`
transition time (server clock) against the moment the line was written. Cordoned nodes are
replaced; a replacement's machine gets its own agent. Figures print and go to
results/agent_xid_latency.json.

    python benchmarks/agent_xid_latency.py [--nodes 5] [--trials 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness import (
    Fleet,
    cordon_latency,
    fleet,
    pool_spec,
    repairs_at_once,
    report,
    run_and_exit,
    summary,
    until,
)

from navarch.contracts.node import NodeState

# GPU 3 of a simulated host (bus ids 0000:18:00.0 + index), as the NVIDIA driver writes it.
XID_RECORD = ("3,{seq},{usec},-;NVRM: Xid (PCI:0000:1b:00): 79, pid=2211, name=python, "
              "GPU has fallen off the bus.\n")


@dataclass
class _Agent:
    proc: subprocess.Popen[bytes]
    kernel_log: int  # the fifo, held open read-write so the agent never sees it close


class Agents:
    """A `navarch-agent` for every live machine of the pool, gone with its machine."""

    def __init__(self, f: Fleet, pool: str, address: str, workdir: Path) -> None:
        self.f, self.pool, self.address, self.workdir = f, pool, address, workdir
        self.agents: dict[str, _Agent] = {}
        self.seq = 1000

    async def run(self) -> None:
        while True:
            live = {i.node_id for i in await asyncio.to_thread(
                self.f.world.instances, self.pool, live_only=True)}
            for node_id in live - set(self.agents):
                self.agents[node_id] = self._start(node_id)
            for node_id in set(self.agents) - live:
                self._stop(node_id, signal.SIGKILL)  # the machine is gone
            await asyncio.sleep(0.2)

    def _start(self, node_id: str) -> _Agent:
        fifo = self.workdir / f"{node_id}.kmsg"
        os.mkfifo(fifo)
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        with (self.workdir / f"{node_id}.log").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "navarch.agent.main", "--node-id", node_id,
                 "--fake-gpus", "8", "--fake-world", str(self.f.world.path),
                 "--kernel-log", str(fifo), "--metrics-port", "0", "--log-level", "WARNING",
                 "--temporal-address", self.address],
                stdout=out, stderr=subprocess.STDOUT)
        return _Agent(proc, fd)

    def write_xid(self, node_id: str) -> None:
        self.seq += 1
        os.write(self.agents[node_id].kernel_log,
                 XID_RECORD.format(seq=self.seq, usec=self.seq * 1000).encode())

    def _stop(self, node_id: str, sig: signal.Signals) -> None:
        agent = self.agents.pop(node_id)
        if agent.proc.poll() is None:
            agent.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.proc.wait(15)
        os.close(agent.kernel_log)

    def stop_all(self) -> None:
        for node_id in list(self.agents):
            self._stop(node_id, signal.SIGTERM)


async def main(nodes: int, trials: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="navarch-bench-kmsg-"))
    async with fleet(simulate_hosts=False) as f:
        spec = pool_spec(nodes, health=repairs_at_once(), name=f"kmsg-{uuid.uuid4().hex[:6]}")
        agents = Agents(f, spec.name, f.client.service_client.config.target_host, workdir)
        keeper = asyncio.create_task(agents.run())
        try:
            await f.start_pool(spec)
            await until(lambda: f.pool(spec.name), lambda s: s.ready == nodes, within=180)
            hit: set[str] = set()
            latencies = []
            for _ in range(trials):
                status = await until(
                    lambda: f.pool(spec.name),
                    lambda s: any(n.state is NodeState.READY and n.node_id not in hit
                                  and n.node_id in agents.agents for n in s.nodes),
                    within=180)
                victim = next(n.node_id for n in status.nodes
                              if n.state is NodeState.READY and n.node_id not in hit
                              and n.node_id in agents.agents)
                hit.add(victim)
                # Its watch has started; land the line anywhere in the agent's read cycle.
                await asyncio.sleep(1 + random.random())
                written = datetime.now(UTC)
                agents.write_xid(victim)
                latencies.append(await cordon_latency(f, victim, written))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            agents.stop_all()
    report("agent_xid_latency", {"nodes": nodes, "trials": trials,
                                 "xid_line_to_cordoned_s": summary(latencies)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    run_and_exit(main(args.nodes, args.trials))
