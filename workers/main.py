"""`navarch-worker`: the control-plane worker. Runs every workflow and the cloud/notifier
activities on the `navarch` task queue. Stateless: run as many as you like."""

from __future__ import annotations

import argparse
import asyncio
import logging

from temporalio.worker import Worker

from navarch.activities import ACTIVITIES
from navarch.ids import CONTROL_PLANE_TASK_QUEUE
from navarch.process import configure_logging, run_until_signalled
from navarch.temporal_client import connect
from navarch.workflows import WORKFLOWS

log = logging.getLogger("navarch.worker")


async def run(task_queue: str, profile: str | None, stop: asyncio.Event) -> int:
    if not WORKFLOWS and not ACTIVITIES:
        log.error("this build of Navarch registers no workflows or activities yet")
        return 1
    client = await connect(profile)
    worker = Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES)
    log.info("control-plane worker polling task queue %r", task_queue)
    async with worker:
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="navarch-worker", description=__doc__)
    parser.add_argument("--task-queue", default=CONTROL_PLANE_TASK_QUEUE)
    parser.add_argument("--profile", default=None, help="Temporal config profile")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    run_until_signalled(lambda stop: run(args.task_queue, args.profile, stop))
