"""Several `navarch-worker` processes share one fleet (one task queue). One is SIGKILLed
while the pool provisions and another while a node is being repaired; the survivors finish
the work: every node ready, the faulty one replaced, one machine per node, none leaked."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from navarch.agent.fake_host import FakeHostManager
from navarch.sim.fakeworld import FakeWorld

from lifecycle_helpers import eventually, fast_spec, pool_status, start_pool


def start_worker(address: str, world: Path, queue: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "navarch.workers.main", "--fake-cloud", "--fake-world",
         str(world), "--no-simulated-hosts", "--task-queue", queue, "--metrics-port", "0",
         "--log-level", "WARNING"],
        env={**os.environ, "TEMPORAL_ADDRESS": address}, stdout=log.open("ab"),
        stderr=subprocess.STDOUT)


async def test_workers_sigkilled_while_provisioning_and_repairing_leave_no_duplicates(
        dev_env, tmp_path):
    client = dev_env.client
    address = client.service_client.config.target_host
    world = FakeWorld(tmp_path / "world.db")
    queue = f"scale-{uuid.uuid4().hex}"
    log = tmp_path / "workers.log"
    workers = [start_worker(address, world.path, queue, log) for _ in range(3)]
    stop = asyncio.Event()
    hosts = asyncio.create_task(FakeHostManager(client, world).run(stop))

    class Plane:  # what start_pool needs
        task_queue = queue

    spec = fast_spec(min_nodes=8, max_nodes=8)
    try:
        await start_pool(client, Plane(), spec)  # type: ignore[arg-type]
        await eventually(lambda: asyncio.to_thread(world.instances, spec.name),
                         lambda found: len(found) >= 3, within=60, what="machines being made")
        workers[0].send_signal(signal.SIGKILL)
        status = await eventually(lambda: pool_status(client, spec.name),
                                  lambda s: s.ready == 8, within=120, what="8 ready")
        victim = next(n.node_id for n in status.nodes if n.state.value == "ready")
        world.inject(victim, "xid", value=79)
        await eventually(lambda: pool_status(client, spec.name),
                         lambda s: any(n.node_id == victim and n.state.value != "ready"
                                       for n in s.nodes), what="repair under way")
        workers[1].send_signal(signal.SIGKILL)
        status = await eventually(
            lambda: pool_status(client, spec.name),
            lambda s: s.ready == 8 and any(n.replacement_of == victim
                                           and n.state.value == "ready" for n in s.nodes),
            within=120, what="the victim replaced and 8 ready")
        await asyncio.sleep(2)  # anything still in flight lands
        live = world.instances(spec.name, live_only=True)
        owners = {n.node_id for n in (await pool_status(client, spec.name)).nodes
                  if not n.state.is_terminal()}
        assert len(live) == 8, live
        assert len({i.node_id for i in live}) == 8  # one machine per node
        assert {i.node_id for i in live} == owners  # none leaked
        assert world.counter("provisioned") == 9  # 8 and one replacement, none made twice
        await client.get_workflow_handle(f"pool/{spec.name}").terminate()
    finally:
        stop.set()
        await hosts
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
