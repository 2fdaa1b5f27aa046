"""Reliability run: kill the control-plane worker (SIGKILL, no goodbye) at random moments
while a pool provisions, restart it each time, and check that the cloud ends with exactly
the pool's size in live instances — no machine made twice, none leaked, none lost.

The worker is the real `navarch-worker` process; the server is a real dev server.
- `--cloud fake`: the fake cloud in a SQLite file, simulated hosts in the worker.
- `--cloud aws`: real boto3 against a moto server with two regions: the pool round-robins
  over an us-east-1 provider and an us-west-2 one, simulated hosts (in this process) for
  the machines moto runs. At the end every region's running machines are counted against
  the live nodes: leaked (no live node) and doubled (two for one node).
- `--workers N`: N workers share the fleet (one task queue) and each kill picks one at
  random (the others go on); the simulated hosts then run in this process. `--faults K`
  injects a fatal Xid into a ready node after each of the first K kills, so repairs
  (cordon, drain, terminate, replace) run through the kills; the run converges when every
  faulty node's replacement is ready too.

Prints the outcome, writes results/worker_kill[_aws].json, exits 1 if a count is wrong.

    python benchmarks/worker_kill.py [--nodes 50] [--kills 5] [--seed 1] [--cloud aws]
        [--workers 3 --faults 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import pool_spec, repairs_at_once, report, run_and_exit
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from navarch.agent.fake_host import FakeHostManager
from navarch.contracts.names import SEARCH_ATTRIBUTES, pool_workflow_id
from navarch.contracts.spec import ProviderChoice
from navarch.sim.fakeworld import FakeInstance, FakeWorld
from navarch.temporal.client import temporal_cli_path

REGIONS = ("us-east-1", "us-west-2")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}


def start_worker(address: str, world: Path, queue: str, log: Path,
                 cloud_env: dict[str, str] | None, hosts: bool = True) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TEMPORAL_ADDRESS": address, **(cloud_env or {})}
    fake = [] if cloud_env else ["--fake-cloud", "--fake-world", str(world)]
    if not hosts:
        fake.append("--no-simulated-hosts")
    return subprocess.Popen(
        [sys.executable, "-m", "navarch.workers.main", *fake, "--task-queue", queue,
         "--metrics-port", "0", "--log-level", "WARNING"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                             "127.0.0.1", "-p", str(port)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        if time.monotonic() > deadline:
            raise RuntimeError("moto_server did not start")
        time.sleep(0.1)


class Moto:
    """The machines moto holds in both regions, through the AWS provider's own listing."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        os.environ.update(AWS_ENV)
        self.ec2 = {r: boto3.client("ec2", endpoint_url=endpoint, region_name=r)
                    for r in REGIONS}
        self.amis = {r: c.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
                     for r, c in self.ec2.items()}

    def running(self) -> list[tuple[str, str, str]]:
        """(region, instance id, node id) of every running Navarch machine."""
        out = []
        for region, ec2 in self.ec2.items():
            for page in ec2.get_paginator("describe_instances").paginate(Filters=[
                    {"Name": "tag:navarch:managed-by", "Values": ["navarch"]},
                    {"Name": "instance-state-name", "Values": ["pending", "running"]}]):
                for inst in (i for r in page["Reservations"] for i in r["Instances"]):
                    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                    out.append((region, inst["InstanceId"], tags.get("navarch:node-id", "")))
        return out

    def made(self) -> int:
        return sum(len([i for r in ec2.describe_instances()["Reservations"]
                        for i in r["Instances"]]) for ec2 in self.ec2.values())

    def hosts(self) -> list[FakeInstance]:
        return [FakeInstance(instance_id=iid, node_id=node, pool="", provider="aws",
                             instance_type="p5.48xlarge", region=region, zone="",
                             state="running", created_at=0.0, boot_at=0.0, gpu_count=8,
                             gpu_model="H100", agent_enabled=True, never_boot=False)
                for region, iid, node in self.running() if node]

    def choices(self) -> list[ProviderChoice]:
        return [ProviderChoice(name=f"aws-{r}", type="aws", instance_type="p5.48xlarge",
                               region=r, ami=self.amis[r]) for r in REGIONS]


async def main(nodes: int, kills: int, seed: int, cloud: str, workers: int,
               faults: int) -> int:
    from navarch.contracts.pool import PoolInput, PoolStatus

    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="navarch-kill-"))
    world_path, log = folder / "world.db", folder / "worker.log"
    world = FakeWorld(world_path)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES, ip="127.0.0.1", ui=False,
        dev_server_log_level="error")
    address = env.client.service_client.config.target_host
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    moto_proc, moto, cloud_env, stop = None, None, None, asyncio.Event()
    hosts_task = None
    if cloud == "aws":
        moto_proc, endpoint = start_moto(folder / "moto.log")
        moto = Moto(endpoint)
        cloud_env = {**AWS_ENV, "NAVARCH_AWS_ENDPOINT_URL": endpoint}
        spec = pool_spec(nodes, providers=moto.choices(), strategy="round-robin")
        hosts = FakeHostManager(env.client, world, discover=moto.hosts)
        hosts_task = asyncio.create_task(hosts.run(stop))
    else:
        spec = pool_spec(nodes, health=repairs_at_once())
        if workers > 1:  # the simulated hosts outlive the workers killed under them
            hosts = FakeHostManager(env.client, world)
            hosts_task = asyncio.create_task(hosts.run(stop))

    def made() -> int:
        return moto.made() if moto else len(world.instances(spec.name))

    own_hosts = cloud == "fake" and workers == 1
    fleet = [start_worker(address, world_path, queue, log, cloud_env, own_hosts)
             for _ in range(workers)]
    started = time.monotonic()
    killed_at: list[float] = []
    injected: list[str] = []
    try:
        await env.client.start_workflow("PoolWorkflow", PoolInput(spec=spec),
                                        id=pool_workflow_id(spec.name), task_queue=queue)
        handle = env.client.get_workflow_handle(pool_workflow_id(spec.name))
        for _ in range(kills):
            # Kill it while it works: once it has made a machine since it started (or after
            # 8 s), at a random moment within the next 1.5 s.
            before = made()
            for _ in range(160):  # up to 8 s
                if made() != before:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            victim = rng.randrange(workers)
            fleet[victim].send_signal(signal.SIGKILL)
            fleet[victim].wait()
            killed_at.append(round(time.monotonic() - started, 2))
            print(f"killed worker {victim + 1} of {workers} at {killed_at[-1]} s "
                  f"({made()} instance(s) so far)")
            if len(injected) < faults:  # a repair in flight through the next kills
                status = await handle.query("status", result_type=PoolStatus)
                ready = [n.node_id for n in status.nodes if n.state.value == "ready"
                         and n.node_id not in injected]
                if ready:
                    injected.append(rng.choice(ready))
                    world.inject(injected[-1], "xid", value=79)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            fleet[victim] = start_worker(address, world_path, queue, log, cloud_env,
                                         own_hosts)
        deadline = time.monotonic() + 300
        status = None
        while time.monotonic() < deadline:
            status = await handle.query("status", result_type=PoolStatus)
            if status.ready == nodes and all(
                    any(n.replacement_of == i and n.state.value == "ready" for n in status.nodes)
                    for i in injected):
                break
            await asyncio.sleep(1)
        converged = round(time.monotonic() - started, 1)
        await asyncio.sleep(3)  # anything still in flight lands
        running = (moto.running() if moto else
                   [(i.region, i.instance_id, i.node_id)
                    for i in world.instances(spec.name, live_only=True)])
        per_node: dict[str, int] = {}
        for _, _, node in running:
            per_node[node] = per_node.get(node, 0) + 1
        doubles = {k: v for k, v in per_node.items() if v > 1}
        status = await handle.query("status", result_type=PoolStatus)
        live = {n.node_id for n in status.nodes if not n.state.is_terminal()}
        leaked = sorted(iid for _, iid, node in running if node not in live)
        ok = len(running) == nodes and not doubles and not leaked and status.ready == nodes
        per_region: dict[str, int] = {}
        for region, _, _ in running:
            per_region[region] = per_region.get(region, 0) + 1
        figures = {"cloud": cloud, "nodes": nodes, "workers": workers, "kills": kills,
                   "seed": seed, "faults_injected": len(injected),
                   "replacements": status.replacements,
                   "killed_at_s": killed_at, "live_instances": len(running),
                   "instances_per_region": per_region, "machines_ever_made": made(),
                   "leaked": leaked, "nodes_with_two_instances": doubles,
                   "pool_ready": status.ready, "provisioned": status.provisioned,
                   "converged_s": converged, "ok": ok}
    finally:
        stop.set()
        if hosts_task is not None:
            with contextlib.suppress(Exception):
                await hosts_task
        for worker in fleet:
            worker.send_signal(signal.SIGTERM)
        for worker in fleet:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        await env.shutdown()
        if moto_proc is not None:
            moto_proc.terminate()
            moto_proc.wait(10)
    report("worker_kill" if cloud == "fake" else f"worker_kill_{cloud}", figures)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cloud", choices=("fake", "aws"), default="fake")
    parser.add_argument("--workers", type=int, default=1,
                        help="control-plane workers sharing the fleet; each kill picks one "
                             "(with more than one, the simulated hosts run here)")
    parser.add_argument("--faults", type=int, default=0,
                        help="fatal Xids injected into ready nodes, one after each kill, so "
                             "repairs run through the kills")
    args = parser.parse_args()
    run_and_exit(main(args.nodes, args.kills, args.seed, args.cloud, args.workers, args.faults))
