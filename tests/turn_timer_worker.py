"""A worker for tests/test_fork_guard.py, run as its own process (the test SIGKILLs it):
a workflow that starts a timer at every turn of its loop, the kind of workflow that a
history forked by a query breaks. `--no-guard` runs it without navarch's fork guard."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from navarch.temporal.fork_guard import ForkGuard


@workflow.defn(name="TurnTimer")
class TurnTimer:
    def __init__(self) -> None:
        self.pokes = 0
        self.dirty = False

    @workflow.signal
    def poke(self) -> None:
        self.pokes += 1
        self.dirty = True

    @workflow.query
    def count(self) -> int:
        return self.pokes

    @workflow.run
    async def run(self, wake_seconds: float) -> int:
        while True:
            self.dirty = False
            with contextlib.suppress(TimeoutError):  # a new timer at every turn
                await workflow.wait_condition(lambda: self.dirty,
                                              timeout=timedelta(seconds=wake_seconds))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("queue")
    parser.add_argument("--no-guard", action="store_true")
    args = parser.parse_args()
    client = await Client.connect(args.address)
    runner: WorkflowRunner = UnsandboxedWorkflowRunner()
    async with Worker(client, task_queue=args.queue, workflows=[TurnTimer],
                      workflow_runner=runner if args.no_guard else ForkGuard(runner),
                      sticky_queue_schedule_to_start_timeout=timedelta(seconds=3)):
        print("polling", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
