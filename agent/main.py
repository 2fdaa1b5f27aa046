"""`navarch-agent`: the node agent. A Temporal worker on the node's own task queue
(`navarch-node-<node_id>`) that runs GPU-local activities; starting it is the node's
registration.

On a GPU host it uses NVML (`pip install 'navarch[agent]'`); `--fake-gpus N` runs it on a
simulated backend instead, on purpose only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from navarch.fakeworld import FakeWorld
from navarch.ids import node_task_queue
from navarch.process import configure_logging, run_until_signalled
from navarch.settings import fake_world_path
from navarch.temporal_client import connect

from .activities import AgentActivities
from .backend import GpuBackend
from .fake_backend import FakeGpuBackend

log = logging.getLogger("navarch.agent")


def make_backend(args: argparse.Namespace) -> GpuBackend | None:
    if args.fake_gpus:
        world = FakeWorld(Path(args.fake_world).expanduser())
        return FakeGpuBackend(world, args.node_id, args.fake_gpus, args.fake_model)
    log.error("no GPU backend: the NVML backend is not built yet; "
              "run with --fake-gpus N for a simulated host")
    return None


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    backend = make_backend(args)
    if backend is None:
        return 1
    client = await connect(args.profile)
    queue = node_task_queue(args.node_id)
    worker = Worker(client, task_queue=queue, activities=AgentActivities(backend).activities(),
                    activity_task_poller_behavior=PollerBehaviorSimpleMaximum(1))
    log.info("agent for node %s polling task queue %r (%s backend)", args.node_id, queue,
             backend.name)
    async with worker:
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="navarch-agent", description=__doc__)
    parser.add_argument("--node-id", default=os.environ.get("NAVARCH_NODE_ID"))
    parser.add_argument("--profile", default=None, help="Temporal config profile")
    parser.add_argument("--fake-gpus", type=int, default=0,
                        help="simulate this many GPUs instead of using NVML")
    parser.add_argument("--fake-model", default="H100")
    parser.add_argument("--fake-world", default=str(fake_world_path()))
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.node_id:
        parser.error("--node-id (or NAVARCH_NODE_ID) is required")
    configure_logging(args.log_level)
    run_until_signalled(lambda stop: run(args, stop))
