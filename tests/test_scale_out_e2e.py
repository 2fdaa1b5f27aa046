"""Several `navarch-worker` processes share one fleet (one task queue). One is SIGKILLed
while the pool provisions and another while a node is being repaired; the survivors finish
the work: every node ready, the faulty one replaced, one machine per node, none leaked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from navarch.agent.fake_host import FakeHostManager
from navarch.contracts.names import node_workflow_id
from navarch.contracts.pool import ScaleInput
from navarch.sim.fakeworld import FakeWorld
from navarch.workflows.registry import WORKFLOWS

from dead_worker import history_events, query_while_its_worker_is_dead
from lifecycle_helpers import eventually, fast_spec, pool_status, start_pool


def start_worker(address: str, world: Path, queue: str, log: Path,
                 *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "navarch.workers.main", "--fake-cloud", "--fake-world",
         str(world), "--no-simulated-hosts", "--task-queue", queue, "--metrics-port", "0",
         "--log-level", "WARNING", *flags],
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
        # Each workflow moved between workers: its whole history must replay in this process.
        replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
        ids = [f"pool/{spec.name}"] + [node_workflow_id(n.node_id) for n in status.nodes]
        for wid in ids:
            await replayer.replay_workflow(await client.get_workflow_handle(wid).fetch_history())
        await client.get_workflow_handle(f"pool/{spec.name}").terminate()
    finally:
        with contextlib.suppress(Exception):  # for a post-mortem
            history = await client.get_workflow_handle(f"pool/{spec.name}").fetch_history()
            (tmp_path / "pool-history.json").write_text(history.to_json())
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


async def test_a_query_answered_while_the_pools_worker_is_dead_does_not_fork_its_history(
        dev_env, tmp_path):
    """The pool's worker dies. A query (`navarch status`) waits for it, then goes to another
    worker, which replays the pool to answer; SDK core runs with it the events of a task
    still waiting for the dead worker, and keeps the pool in memory. When that task comes,
    it runs only the events that came after the query, where a replay runs them all at
    once: the pool, which started a timer at every turn of its loop, recorded a history
    its own replay failed on (nondeterminism; the pool stood still). The worker's fork
    guard refuses such a query instead (navarch/temporal/fork_guard.py), and the pool keeps
    one wake timer (a worker without the guard no longer forks it on timers alone)."""
    client = dev_env.client
    address = client.service_client.config.target_host
    world = FakeWorld(tmp_path / "world.db")
    queue = f"query-{uuid.uuid4().hex}"
    log = tmp_path / "workers.log"
    workers = [start_worker(address, world.path, queue, log, "--sticky-timeout", "3")
               for _ in range(2)]

    class Plane:  # what start_pool needs
        task_queue = queue

    spec = fast_spec(min_nodes=0, max_nodes=2)
    pool = client.get_workflow_handle(f"pool/{spec.name}")
    try:
        await start_pool(client, Plane(), spec)  # type: ignore[arg-type]
        await eventually(lambda: history_events(pool),
                         lambda ev: any(e.HasField("timer_started_event_attributes")
                                        for e in ev), what="the pool in its loop")
        refused = await query_while_its_worker_is_dead(
            pool, workers, lambda: start_worker(address, world.path, queue, log,
                                                "--sticky-timeout", "3"),
            lambda: pool_status(client, spec.name),
            lambda: pool.signal("scale", ScaleInput(target=0)))
        assert refused, "the fork guard let the query run the pool's pending events"
        replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
        await replayer.replay_workflow(await pool.fetch_history())
    finally:
        with contextlib.suppress(Exception):  # for a post-mortem
            (tmp_path / "pool-history.json").write_text((await pool.fetch_history()).to_json())
            await pool.terminate()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

