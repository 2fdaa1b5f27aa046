"""Worker Versioning: the control-plane workers as versions of one worker deployment, and
the calls that make a build current, ramp it, roll back, and show where workflows run.

A deployment (default `navarch`) groups the control-plane workers; each build (default:
the package version) is a version of it. Workflows are pinned to the version they started
on and move to the current version at their next continue-as-new (see
docs/architecture.md, "Upgrades"). Temporal routes new workflows, and pinned workflows'
tasks, by the deployment's routing: its current version and an optional ramping one.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

import navarch

DEFAULT_DEPLOYMENT = "navarch"
DEPLOYMENT_ENV = "NAVARCH_DEPLOYMENT_NAME"
BUILD_ID_ENV = "NAVARCH_BUILD_ID"
IDENTITY = "navarch"


class VersioningError(RuntimeError):
    """A routing change Temporal refused, or a deployment that is not there."""


def default_build_id() -> str:
    """This build: NAVARCH_BUILD_ID, else the installed package's version."""
    return os.environ.get(BUILD_ID_ENV) or navarch.__version__


def default_deployment() -> str:
    return os.environ.get(DEPLOYMENT_ENV) or DEFAULT_DEPLOYMENT


def deployment_config(deployment: str, build_id: str) -> WorkerDeploymentConfig:
    """A worker that is version `build_id` of `deployment`. Its default behaviour is how
    every Navarch workflow is pinned: a workflow type cannot declare one and still run on
    an unversioned worker (see workflows/upgrade.py)."""
    return WorkerDeploymentConfig(version=WorkerDeploymentVersion(deployment, build_id),
                                  use_worker_versioning=True,
                                  default_versioning_behavior=VersioningBehavior.PINNED)


@dataclass
class VersionView:
    """One version of the deployment as `navarch upgrade status` shows it."""

    build_id: str
    status: str  # inactive, current, ramping, draining, drained
    created: datetime | None = None
    last_current: datetime | None = None
    drainage: str = ""  # draining: pinned workflows still run on it; drained: none left
    running: int | None = None  # workflows running on it (describe(count_running=True))


@dataclass
class DeploymentView:
    name: str
    current: str | None = None  # build id; None: unversioned workers get new workflows
    ramping: str | None = None
    ramp_percentage: float = 0.0
    versions: list[VersionView] = field(default_factory=list)

    def version(self, build_id: str) -> VersionView | None:
        return next((v for v in self.versions if v.build_id == build_id), None)


def _when(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None


def _status(value: int) -> str:
    name = WorkerDeploymentVersionStatus.Name(value)  # type: ignore[arg-type]
    return name.removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_").lower()


def view(info: WorkerDeploymentInfo) -> DeploymentView:
    routing = info.routing_config
    out = DeploymentView(
        name=info.name,
        current=routing.current_deployment_version.build_id or None,
        ramping=routing.ramping_deployment_version.build_id or None,
        ramp_percentage=routing.ramping_version_percentage)
    for s in info.version_summaries:
        drainage = ""
        if s.HasField("drainage_info"):
            drainage = VersionDrainageStatus.Name(s.drainage_info.status)
            drainage = drainage.removeprefix("VERSION_DRAINAGE_STATUS_").lower()
        out.versions.append(VersionView(
            build_id=s.deployment_version.build_id, status=_status(s.status),
            created=_when(s.create_time), last_current=_when(s.last_current_time),
            drainage="" if drainage == "unspecified" else drainage))
    out.versions.sort(key=lambda v: v.created or datetime.min.replace(tzinfo=UTC))
    return out


def rollback_target(deployment: DeploymentView) -> str | None:
    """The build a rollback makes current: the one that was current most recently before
    the current one (None when no other build ever was)."""
    earlier = [v for v in deployment.versions
               if v.build_id != deployment.current and v.last_current is not None]
    if not earlier:
        return None
    return max(earlier, key=lambda v: v.last_current or datetime.min).build_id


def version_query(deployment: str, build_id: str) -> str:
    """The visibility filter of the workflows whose latest run is on one build."""
    return f'TemporalWorkerDeploymentVersion="{deployment}:{build_id}"'


async def describe(client: Client, deployment: str, *,
                   count_running: bool = False) -> DeploymentView:
    """The deployment's routing and versions; with `count_running`, how many workflows
    run on each version (one visibility count per version)."""
    try:
        answer = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace,
                                            deployment_name=deployment))
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise VersioningError(f"no worker deployment {deployment!r} in namespace "
                                  f"{client.namespace!r}: no versioned worker has polled "
                                  "yet") from None
        raise
    state = view(answer.worker_deployment_info)
    if count_running:
        for v in state.versions:
            counted = await client.count_workflows(
                version_query(deployment, v.build_id) + ' AND ExecutionStatus="Running"')
            v.running = counted.count
    return state


async def set_current(client: Client, deployment: str, build_id: str, *,
                      within: float = 30.0) -> None:
    """Make `build_id` current: new workflows start on it, and pinned ones move to it at
    their next continue-as-new. Any ramp ends. A build's workers register their task
    queues a little after the build first appears; until all the current build's queues
    are polled by the new one too, Temporal refuses ("missing active task queues"), so
    this retries that refusal for `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace, deployment_name=deployment,
                    build_id=build_id, identity=IDENTITY))
            return
        except RPCError as exc:
            if ("missing active task queues" in exc.message
                    and asyncio.get_running_loop().time() < deadline):
                await asyncio.sleep(0.5)
                continue
            raise VersioningError(f"{deployment}: cannot make build {build_id!r} current: "
                                  f"{exc.message}") from None


async def set_ramping(client: Client, deployment: str, build_id: str | None,
                      percentage: float) -> None:
    """Send `percentage`% of new workflows (and of continue-as-new moves) to `build_id`;
    None (or 0%) ends the ramp."""
    if not 0 <= percentage <= 100:
        raise VersioningError(f"ramp percentage {percentage:g} is not between 0 and 100")
    try:
        await client.workflow_service.set_worker_deployment_ramping_version(
            SetWorkerDeploymentRampingVersionRequest(
                namespace=client.namespace, deployment_name=deployment,
                build_id=build_id or "", percentage=percentage if build_id else 0.0,
                identity=IDENTITY))
    except RPCError as exc:
        raise VersioningError(f"{deployment}: cannot ramp build {build_id!r}: "
                              f"{exc.message}") from None


async def rollback(client: Client, deployment: str) -> str:
    """End a ramp; with none, make the previous current build current again. Returns what
    was done."""
    state = await describe(client, deployment)
    if state.ramping:
        await set_ramping(client, deployment, None, 0)
        return f"ramp of {state.ramping} ended; {state.current} stays current"
    target = rollback_target(state)
    if target is None:
        raise VersioningError(f"{deployment}: no earlier build to roll back to")
    await set_current(client, deployment, target)
    return f"{target} is current again (was {state.current})"


async def ensure_current(client: Client, deployment: str, build_id: str, *,
                         within: float = 30.0) -> str:
    """A deployment with no current version routes workflows to no one: make this build
    current when none is (the first start of a fleet). Temporal registers a version only
    once its worker has polled, so this retries for `within` seconds. Returns what it
    found or did."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            state = await describe(client, deployment)
            if state.current:
                return f"current build is {state.current}"
            await set_current(client, deployment, build_id)
            return f"build {build_id} made current (the deployment had none)"
        except VersioningError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
