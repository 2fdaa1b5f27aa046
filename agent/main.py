"""`navarch-agent`: the node agent. A Temporal worker on the node's own task queue
(`navarch-node-<node_id>`) that runs GPU-local activities; starting it is the node's
registration."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from temporalio.worker import Worker

from navarch.agent import AGENT_ACTIVITIES
from navarch.ids import node_task_queue
from navarch.process import configure_logging, run_until_signalled
from navarch.temporal_client import connect

log = logging.getLogger("navarch.agent")


async def run(node_id: str, profile: str | None, stop: asyncio.Event) -> int:
    if not AGENT_ACTIVITIES:
        log.error("this build of Navarch registers no agent activities yet")
        return 1
    client = await connect(profile)
    queue = node_task_queue(node_id)
    worker = Worker(client, task_queue=queue, activities=AGENT_ACTIVITIES)
    log.info("agent for node %s polling task queue %r", node_id, queue)
    async with worker:
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="navarch-agent", description=__doc__)
    parser.add_argument("--node-id", default=os.environ.get("NAVARCH_NODE_ID"))
    parser.add_argument("--profile", default=None, help="Temporal config profile")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.node_id:
        parser.error("--node-id (or NAVARCH_NODE_ID) is required")
    configure_logging(args.log_level)
    run_until_signalled(lambda stop: run(args.node_id, args.profile, stop))
