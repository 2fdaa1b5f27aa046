"""`navarch-agent`: the node agent. A Temporal worker on the node's own task queue
(`navarch-node-<node_id>`) that runs GPU-local activities; starting it is the node's
registration.

On a GPU host it reads the GPUs through NVML (`pip install 'navarch[agent]'`) and follows the
kernel log for Xid/SXid lines. `--fake-gpus N` runs it on a simulated backend instead, on
purpose only: without it, a host where NVML cannot be loaded is an error, never a silent
fake."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from navarch.bootstrap.credentials import CredentialsError
from navarch.config.settings import fake_world_path
from navarch.contracts.names import node_task_queue
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.abandoned import QuietAbandonment
from navarch.temporal.client import connect
from navarch.temporal.heartbeats import AGENT_HEARTBEAT_THROTTLE_CAP
from navarch.temporal.process import configure_logging, run_until_signalled
from navarch.temporal.versioning import default_build_id

from . import credentials
from .activities import AgentActivities
from .backend import GpuBackend
from .fake_backend import FakeGpuBackend

if TYPE_CHECKING:
    from .nvml_backend import NvmlBackend

log = logging.getLogger("navarch.agent")

DEFAULT_METRICS_PORT = 9401  # dcgm-exporter takes 9400

# On SIGTERM, running activities get this long to finish before they are cancelled.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def make_backend(args: argparse.Namespace) -> GpuBackend | None:
    from .kernel_log_follower import KernelLogWatcher, LineSource, open_kernel_log, open_path

    source: LineSource | None = None
    if args.kernel_log:
        try:
            source = open_path(args.kernel_log)
        except OSError as exc:
            log.error("cannot follow --kernel-log %s: %s", args.kernel_log, exc.strerror)
            return None
    backend: FakeGpuBackend | NvmlBackend
    if args.fake_gpus:
        backend = FakeGpuBackend(FakeWorld(args.fake_world), args.node_id, args.fake_gpus,
                                 args.fake_model)
    else:
        from .dcgm_health import DcgmHealthWatcher
        from .nvml_backend import NvmlBackend, NvmlUnavailable

        dcgm = DcgmHealthWatcher.if_installed()
        log.info("DCGM health checks: %s", "on" if dcgm else "off (dcgmi not installed)")
        try:
            backend = NvmlBackend(dcgm=dcgm.start() if dcgm else None)
        except NvmlUnavailable as exc:
            log.error("%s. This host has no usable NVIDIA driver; use --fake-gpus N to run a "
                      "simulated host on purpose.", exc)
            return None
        source = source or open_kernel_log()
        if source is None:
            log.warning("no kernel log readable (/dev/kmsg, kern.log, messages, syslog): "
                        "Xids come from NVML events only")
    if source is not None:
        KernelLogWatcher(source, backend.record_kernel_event).start()
        log.info("following the kernel log at %s", source.name)
    return backend


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    backend = make_backend(args)
    if backend is None:
        return 1
    try:
        names = await asyncio.to_thread(credentials.load_into, os.environ)
    except CredentialsError as exc:
        log.error("cannot get this machine's Temporal credentials: %s", exc)
        return 1
    if names:
        log.info("Temporal credentials from %s: %s", credentials.describe(os.environ),
                 ", ".join(names))
    try:
        client = await connect(args.profile, target_host=args.temporal_address)
    except Exception as exc:
        log.error("cannot reach Temporal%s: %s",
                  f" at {args.temporal_address}" if args.temporal_address else "", exc)
        return 1
    queue = node_task_queue(args.node_id)
    agent = AgentActivities(backend)
    if args.metrics_port:
        from .metrics import serve_metrics

        serve_metrics(agent, args.node_id, args.metrics_port)
        log.info("metrics on :%d/metrics", args.metrics_port)
    # The agent's build is in its identity (each activity's "last worker" in the UI, and
    # `temporal workflow describe`): which agent version serves the node. Its tasks are
    # not versioned: a host's queue has one poller, and a restart hands the watch over.
    build = default_build_id()
    worker = Worker(client, task_queue=queue, activities=agent.activities(),
                    identity=f"navarch-agent {build} {os.getpid()}@{socket.gethostname()}",
                    activity_task_poller_behavior=PollerBehaviorSimpleMaximum(1),
                    interceptors=[QuietAbandonment()],
                    max_heartbeat_throttle_interval=AGENT_HEARTBEAT_THROTTLE_CAP,
                    graceful_shutdown_timeout=GRACEFUL_SHUTDOWN)
    log.info("agent %s for node %s%s polling task queue %r (%s backend)", build,
             args.node_id, f" of pool {args.pool}" if args.pool else "", queue, backend.name)
    async with worker:
        await stop.wait()
        log.info("stopping: running activities get %s to finish", GRACEFUL_SHUTDOWN)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="navarch-agent", description=__doc__)
    parser.add_argument("--node-id", default=os.environ.get("NAVARCH_NODE_ID"))
    parser.add_argument("--pool", default=os.environ.get("NAVARCH_POOL"),
                        help="the node's pool (for logs)")
    parser.add_argument("--temporal-address", default=None,
                        help="host:port of the Temporal frontend (default: TEMPORAL_ADDRESS)")
    parser.add_argument("--profile", default=None, help="Temporal config profile")
    parser.add_argument("--fake-gpus", type=int, default=0,
                        help="simulate this many GPUs instead of using NVML")
    parser.add_argument("--fake-model", default="H100")
    parser.add_argument("--fake-world", default=str(fake_world_path()))
    parser.add_argument("--kernel-log", default=None, metavar="PATH",
                        help="follow this kernel log (a character device or fifo read as "
                             "/dev/kmsg, or a log file) instead of the first readable of "
                             "/dev/kmsg, kern.log, messages, syslog; with --fake-gpus, Xid "
                             "lines written there reach the simulated GPUs")
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                        help="Prometheus metrics port (0: off; default %(default)s)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.node_id:
        parser.error("--node-id (or NAVARCH_NODE_ID) is required")
    configure_logging(args.log_level)
    run_until_signalled(lambda stop: run(args, stop))


if __name__ == "__main__":
    main()
