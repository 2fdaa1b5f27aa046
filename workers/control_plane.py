"""The control-plane worker's parts: workflows, cloud and notifier activities, and — when
the fake cloud is in use — the simulated GPU hosts that bring its instances to life."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker, WorkerDeploymentConfig

from navarch.activities.autoscale_metrics import AutoscaleMetricsActivities
from navarch.activities.cloud import CloudActivities, ProviderFactory
from navarch.activities.fake_cloud import FakeCloudProvider
from navarch.activities.fleet import agent_queues, list_nodes, live_nodes
from navarch.activities.notifier import NOTIFIER_ACTIVITIES
from navarch.activities.sweep import SweepActivities
from navarch.agent.fake_host import SHARED_HOST_QUEUE, FakeHostManager
from navarch.bootstrap import AgentSource, render_startup_script, render_user_data
from navarch.bootstrap.credentials import (
    REFERENCE_ENV,
    WORKER_ENV,
    CredentialsError,
    bundle_from_environment,
    inline_reference,
)
from navarch.contracts.cloud import ProvisionRequest
from navarch.contracts.names import CONTROL_PLANE_TASK_QUEUE
from navarch.contracts.spec import ProviderChoice
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.abandoned import QuietAbandonment
from navarch.temporal.fork_guard import ForkGuard
from navarch.temporal.sandbox import keep_bytecode, workflow_runner
from navarch.workflows.registry import WORKFLOWS

from .fleet_gauges import FLEET_GAUGES_SECONDS, FleetGauges

STICKY_TIMEOUT = timedelta(seconds=10)


def installed(module: str) -> bool:
    """Whether an optional cloud client is importable. `find_spec` of a dotted name imports
    its parents and raises when one is missing (`google` exists through protobuf, but
    `google.cloud` only with the gcp extra)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def provider_factories(*, user_data: Callable[[ProvisionRequest], str] | None = None,
                       startup_script: Callable[[ProvisionRequest], str] | None = None,
                       world: FakeWorld | None = None, boot_seconds: float = 0.5,
                       provision_delay: float = 0.0,
                       fake_agent_queue: str | None = None) -> dict[str, ProviderFactory]:
    """A factory per cloud whose client library is installed (and the fake cloud, given
    its world). Without `user_data` the machines get no agent bootstrap (listing types)."""
    factories: dict[str, ProviderFactory] = {}
    if installed("boto3"):
        from navarch.activities.aws import AwsProvider

        def aws(choice: ProviderChoice) -> AwsProvider:
            return AwsProvider(choice, user_data=user_data)

        factories["aws"] = aws
    if installed("requests"):
        from navarch.activities.lambda_labs import LambdaProvider

        def lambda_labs(choice: ProviderChoice) -> LambdaProvider:
            return LambdaProvider(choice, user_data=user_data)

        factories["lambda"] = lambda_labs
    if installed("google.cloud.compute_v1"):
        from navarch.activities.gcp import GcpProvider

        def gcp(choice: ProviderChoice) -> GcpProvider:
            return GcpProvider(choice, user_data=user_data, startup_script=startup_script)

        factories["gcp"] = gcp
    if world is not None:
        fake_world = world

        def fake(choice: ProviderChoice) -> FakeCloudProvider:
            return FakeCloudProvider(fake_world, choice, boot_seconds=boot_seconds,
                                     provision_delay=provision_delay,
                                     agent_task_queue=fake_agent_queue)

        factories["fake"] = fake
    return factories


def agent_bootstrap(request: ProvisionRequest,
                    worker_env: Mapping[str, str] | None = None) -> tuple[AgentSource,
                                                                        dict[str, str]]:
    """Where a new machine installs its agent from, and the lines its agent's environment
    file gets for its credentials: a reference it resolves with its own cloud identity, or
    (`worker-env`) this worker's own settings inline. Runs in the launching activity, so
    nothing here reaches history."""
    install = request.provider.agent
    if install is None:
        return AgentSource(), {}
    reference = install.credentials
    extras = ("agent", "aws") if reference and reference.startswith("aws-") else ("agent",)
    source = AgentSource(version=install.version or AgentSource.version,
                         index_url=install.index_url, wheel=install.wheel,
                         sha256=install.sha256, extras=extras)
    if not reference:
        return source, {}
    if reference == WORKER_ENV:
        bundle = bundle_from_environment(worker_env)
        if not bundle:
            raise CredentialsError("agent credentials worker-env: this worker has no "
                                   "TEMPORAL_API_KEY, TEMPORAL_TLS_* or codec keys to give")
        return source, {REFERENCE_ENV: inline_reference(bundle)}
    env = {REFERENCE_ENV: reference}
    region = request.region or request.provider.home_region()
    if reference.startswith("aws-") and region:
        env["AWS_DEFAULT_REGION"] = region  # the secret lives beside the machine
    return source, env


@dataclass
class ControlPlane:
    client: Client
    world: FakeWorld | None = None
    simulate_hosts: bool = True
    boot_seconds: float = 0.5
    provision_delay: float = 0.0
    task_queue: str = CONTROL_PLANE_TASK_QUEUE
    # "per-host": each simulated host is its own worker on navarch-node-<id>, as a real
    # agent; "shared": one worker on one queue serves them all (thousands of hosts).
    host_mode: str = "per-host"
    shared_host_queue: str = SHARED_HOST_QUEUE
    # Workflows kept in memory between tasks (the SDK's default is 1,000). A task for one
    # that is not re-creates it in the sandbox and replays its history: with more running
    # workflows than this, every task pays that.
    max_cached_workflows: int = 1000
    # A version of a worker deployment (Worker Versioning); None: an unversioned worker.
    deployment: WorkerDeploymentConfig | None = None
    # The workflow types this worker runs (a test runs a changed NodeWorkflow as build B).
    workflows: Sequence[type] = tuple(WORKFLOWS)
    # How often the fleet gauges are read from the pools (`fleet_gauges.py`); 0: never.
    fleet_gauges_seconds: float = FLEET_GAUGES_SECONDS
    # The SDK's sandbox as it comes (each instance imports the workflow modules afresh);
    # None: NAVARCH_STRICT_SANDBOX decides (`navarch.temporal.sandbox.workflow_runner`).
    strict_sandbox: bool | None = None
    # How long a workflow task waits on the queue of the worker that ran the workflow last
    # (which holds it in memory) before any worker may take it: the time a SIGKILLed
    # worker's workflows stand still. The SDK's default is 10 s.
    sticky_timeout: timedelta = STICKY_TIMEOUT
    hosts: FakeHostManager | None = field(default=None, init=False)

    def _agent_address(self) -> str:
        """The Temporal address agents dial (may differ from this worker's own)."""
        return (os.environ.get("NAVARCH_AGENT_TEMPORAL_ADDRESS")
                or self.client.service_client.config.target_host)

    def _template_values(self) -> dict[str, str]:
        return {"ControlPlane": self._agent_address(), "Namespace": self.client.namespace}

    def _bootstrap(self, request: ProvisionRequest, render: Callable[..., str]) -> str:
        source, env = agent_bootstrap(request)
        return render(node_id=request.node_id, pool=request.pool,
                      temporal_address=self._agent_address(),
                      temporal_namespace=self.client.namespace, source=source, extra_env=env)

    def _user_data(self, request: ProvisionRequest) -> str:
        """Cloud-init that installs the agent and starts it with this node's id."""
        return self._bootstrap(request, render_user_data)

    def _startup_script(self, request: ProvisionRequest) -> str:
        """The same bootstrap as a shell script, for images without cloud-init."""
        return self._bootstrap(request, render_startup_script)

    def provider_factories(self) -> dict[str, ProviderFactory]:
        return provider_factories(user_data=self._user_data,
                                  startup_script=self._startup_script, world=self.world,
                                  boot_seconds=self.boot_seconds,
                                  provision_delay=self.provision_delay,
                                  fake_agent_queue=(self.shared_host_queue
                                                    if self.host_mode == "shared" else None))

    def activities(self) -> list[Callable[..., object]]:
        cloud = CloudActivities(self.provider_factories(), template_values=self._template_values)
        return [*cloud.activities(), SweepActivities(cloud).reconcile,
                *AutoscaleMetricsActivities(self.client).activities(),
                *NOTIFIER_ACTIVITIES,
                list_nodes, agent_queues, live_nodes]

    def worker(self) -> Worker:
        keep_bytecode()  # a strict sandbox re-imports workflow modules for each new instance
        return Worker(self.client, task_queue=self.task_queue, workflows=self.workflows,
                      activities=self.activities(), max_concurrent_activities=500,
                      max_cached_workflows=self.max_cached_workflows,
                      interceptors=[QuietAbandonment()], deployment_config=self.deployment,
                      workflow_runner=ForkGuard(workflow_runner(self.strict_sandbox)),
                      sticky_queue_schedule_to_start_timeout=self.sticky_timeout)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set."""
        host_task = None
        if self.world is not None and self.simulate_hosts:
            self.hosts = FakeHostManager(
                self.client, self.world,
                shared_queue=self.shared_host_queue if self.host_mode == "shared" else None)
            host_task = asyncio.create_task(self.hosts.run(stop))
        gauges = (asyncio.create_task(FleetGauges(self.client, self.task_queue,
                                                  every=self.fleet_gauges_seconds).run(stop))
                  if self.fleet_gauges_seconds else None)
        try:
            async with self.worker():
                await stop.wait()
        finally:
            stop.set()
            if gauges is not None:
                with contextlib.suppress(Exception):
                    await gauges
            if host_task is not None:
                with contextlib.suppress(Exception):
                    await host_task
