"""`navarch-worker`: the control-plane worker. Runs every workflow and the cloud/notifier
activities on the `navarch` task queue. Stateless: run as many as you like (with
--fake-cloud, run one: it also hosts the simulated GPU machines)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from navarch.config.settings import fake_world_path
from navarch.contracts.names import CONTROL_PLANE_TASK_QUEUE
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.client import connect
from navarch.temporal.process import configure_logging, run_until_signalled
from navarch.temporal.runtime import worker_runtime
from navarch.temporal.sandbox import strict_requested
from navarch.temporal.versioning import (
    default_build_id,
    default_deployment,
    deployment_config,
    ensure_current,
)

from .control_plane import STICKY_TIMEOUT, ControlPlane

log = logging.getLogger("navarch.worker")
DEFAULT_METRICS_PORT = 9400  # the agent's is 9401


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    quiet_core = args.log_level.upper() in ("ERROR", "CRITICAL")
    extra: dict[str, Any] = {}
    if args.metrics_port or quiet_core:
        extra["runtime"] = worker_runtime(args.metrics_port, args.metrics_host,
                                          quiet_core=quiet_core)
    client = await connect(args.profile, **extra)
    if args.metrics_port:
        log.info("metrics on :%d/metrics", args.metrics_port)
    plane = control_plane(client, args)
    if plane.deployment is not None:
        version = plane.deployment.version
        log.info("worker deployment %s, build %s", version.deployment_name, version.build_id)
    log.info("control-plane worker polling task queue %r%s", args.task_queue,
             f" (fake cloud: {plane.world.path})" if plane.world else "")
    if plane.deployment is None:
        await plane.run(stop)
        return 0
    running = asyncio.create_task(plane.run(stop))
    version = plane.deployment.version
    log.info("%s", await ensure_current(client, version.deployment_name, version.build_id))
    await running
    return 0


def positive_seconds(text: str) -> float:
    """A number of seconds above zero, for a flag."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be above 0 seconds")
    return value


def control_plane(client: Client, args: argparse.Namespace) -> ControlPlane:
    """The worker's parts as the flags ask: the fake cloud and its simulated hosts only with
    --fake-cloud, so a production worker never offers a fake provider."""
    world = FakeWorld(args.fake_world) if args.fake_cloud else None
    return ControlPlane(client, world=world, simulate_hosts=not args.no_simulated_hosts,
                        task_queue=args.task_queue, host_mode=args.simulated_hosts,
                        max_cached_workflows=args.max_cached_workflows,
                        strict_sandbox=args.strict_sandbox,
                        sticky_timeout=timedelta(seconds=args.sticky_timeout),
                        deployment=(deployment_config(args.deployment_name, args.build_id)
                                    if args.versioned else None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="navarch-worker", description=__doc__)
    parser.add_argument("--task-queue", default=CONTROL_PLANE_TASK_QUEUE)
    parser.add_argument("--profile", default=None, help="Temporal config profile")
    parser.add_argument("--fake-cloud", action="store_true",
                        help="also serve the fake cloud provider and simulated GPU hosts for "
                        "its machines (navarch up, the simulator, tests)")
    parser.add_argument("--fake-world", default=str(fake_world_path()),
                        help="SQLite file of the fake cloud (default %(default)s)")
    parser.add_argument("--no-simulated-hosts", action="store_true",
                        help="with --fake-cloud: do not run simulated GPU hosts for its "
                        "instances")
    parser.add_argument("--simulated-hosts", choices=("per-host", "shared"), default="per-host",
                        help="per-host: a worker per simulated host on its own queue, as "
                        "real agents; shared: one worker serves every host from one queue "
                        "(thousands of hosts; default %(default)s)")
    parser.add_argument("--max-cached-workflows", type=int, default=1000,
                        help="workflows kept in memory between tasks; set it above the "
                        "number of nodes and pools this worker runs (~0.25 MB each; default "
                        "%(default)s)")
    parser.add_argument("--sticky-timeout", type=positive_seconds,
                        default=STICKY_TIMEOUT.total_seconds(),
                        help="seconds a workflow's next task waits for the worker that ran "
                        "it last (which holds it in memory) before any worker takes it: how "
                        "long the workflows of a crashed worker stand still (default "
                        "%(default)s)")
    parser.add_argument("--strict-sandbox", action="store_true", default=strict_requested(),
                        help="import the workflow modules afresh in each workflow's sandbox, "
                        "with every call checked (the SDK's default; slower, more memory). "
                        "Default: shared by all instances (NAVARCH_STRICT_SANDBOX=1 for strict)")
    parser.add_argument("--versioned", action="store_true",
                        default=os.environ.get("NAVARCH_VERSIONED", "") not in ("", "0"),
                        help="run as a version of a worker deployment (Worker Versioning): "
                        "workflows stay on the build they started on and move at "
                        "continue-as-new; the first build of a fleet is made current")
    parser.add_argument("--deployment-name", default=default_deployment(),
                        help="the worker deployment (default %(default)s; "
                        "NAVARCH_DEPLOYMENT_NAME)")
    parser.add_argument("--build-id", default=default_build_id(),
                        help="this build (default: the package version; NAVARCH_BUILD_ID)")
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                        help="Prometheus metrics port (0: off; default %(default)s)")
    parser.add_argument("--metrics-host", default="0.0.0.0",
                        help="address the metrics endpoint listens on (default %(default)s)")
    parser.add_argument("--log-level", default="INFO",
                        help="ERROR also quiets the Temporal SDK core's warnings")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.fake_world = Path(args.fake_world).expanduser()
    configure_logging(args.log_level)
    run_until_signalled(lambda stop: run(args, stop))


if __name__ == "__main__":
    main()
