"""The fork guard (navarch/temporal/fork_guard.py): a worker that answers a query for a
workflow whose worker died must not run that workflow's pending events, or the workflow's
history forks and its next replay fails with a nondeterminism error."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.worker import Replayer

from navarch.temporal.fork_guard import runs_pending_events

from dead_worker import query_while_its_worker_is_dead
from lifecycle_helpers import eventually
from turn_timer_worker import TurnTimer

WORKER = Path(__file__).parent / "turn_timer_worker.py"


def activation(seconds: int, length: int, *, replay: bool = False,
               job: str = "signal_workflow") -> WorkflowActivation:
    act = WorkflowActivation(run_id="r", timestamp=Timestamp(seconds=seconds),
                             is_replaying=replay, history_length=length)
    getattr(act.jobs.add(), job).SetInParent()
    return act


@pytest.mark.parametrize(("previous", "current", "refused"), [
    (None, activation(10, 3), False),  # a run's first activation
    (activation(10, 3), activation(12, 7), False),  # a new task: a new time
    (activation(10, 3, replay=True), activation(10, 7, replay=True), False),  # replaying
    (activation(10, 3), activation(10, 3), False),  # more of the same task
    (activation(10, 3), activation(10, 7, replay=True, job="query_workflow"), False),
    (activation(10, 3, replay=True), activation(10, 7), True),  # pending events: no time
])
def test_the_activation_that_runs_pending_events_is_the_one_refused(previous, current,
                                                                    refused):
    assert runs_pending_events(previous, current) is refused


def start(address: str, queue: str, log: Path) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen([sys.executable, str(WORKER), address, queue],
                              stdout=subprocess.PIPE, stderr=log.open("ab"),
                              env={**os.environ, "PYTHONPATH": str(WORKER.parent)})
    assert worker.stdout is not None and worker.stdout.readline() == b"polling\n"
    return worker


async def test_a_query_for_a_dead_workers_workflow_does_not_fork_its_history(
        dev_env, tmp_path):
    client = dev_env.client
    address = client.service_client.config.target_host
    queue = f"fork-{uuid.uuid4().hex}"
    log = tmp_path / "workers.log"
    workers = [start(address, queue, log)]
    handle = await client.start_workflow(TurnTimer.run, 4.0, id=f"turns-{uuid.uuid4().hex}",
                                         task_queue=queue)
    try:
        await eventually(lambda: handle.query(TurnTimer.count), lambda n: n == 0)
        refused = await query_while_its_worker_is_dead(
            handle, workers, lambda: start(address, queue, log),
            lambda: handle.query(TurnTimer.count), lambda: handle.signal(TurnTimer.poke))
        assert refused, "the fork guard let the query run the workflow's pending events"
        await Replayer(workflows=[TurnTimer]).replay_workflow(await handle.fetch_history())
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
        await handle.terminate()
