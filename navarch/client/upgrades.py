"""A fleet's upgrades under Worker Versioning: which build is current, ramping a new one,
rolling back, and moving quiet nodes to the current build now.

Pools move by themselves within seconds of a change (they wake often); a node, or the
orphan sweep, moves at its next task, which can be a day away on a healthy node, so
`move()` sends each one still on another build the `check_upgrade` signal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from temporalio.service import RPCError, RPCStatusCode

from navarch.client.errors import NotFound, Refused, translated
from navarch.temporal import versioning
from navarch.temporal.versioning import DeploymentView, VersioningError

if TYPE_CHECKING:
    from navarch.client.fleet import Navarch


@contextmanager
def _refusals(what: str, deployment: str) -> Iterator[None]:
    with translated(what):
        try:
            yield
        except VersioningError as exc:
            reason = str(exc).removeprefix(f"{deployment}: ")
            if "no worker deployment" in reason:
                raise NotFound(what, reason) from None
            raise Refused(what, reason) from None


class Upgrades:
    """The worker deployment `deployment` (default: NAVARCH_DEPLOYMENT_NAME or `navarch`)."""

    def __init__(self, fleet: Navarch, deployment: str | None = None) -> None:
        self.fleet = fleet
        self.deployment = deployment or versioning.default_deployment()
        self.what = f"deployment {self.deployment}"

    async def status(self) -> DeploymentView:
        """Current and ramping builds, and every version with its workflows still running."""
        with _refusals(self.what, self.deployment):
            return await versioning.describe(self.fleet.temporal, self.deployment,
                                             count_running=True)

    async def set_current(self, build_id: str) -> DeploymentView:
        """Make `build_id` current (its workers must be polling): new pools and nodes start
        on it, running ones move at their next continue-as-new. Ends any ramp."""
        with _refusals(self.what, self.deployment):
            await versioning.set_current(self.fleet.temporal, self.deployment, build_id)
        return await self.status()

    async def ramp(self, build_id: str, percentage: float) -> DeploymentView:
        """Send `percentage`% of new workflows and moves to `build_id`; the rest stay on the
        current build."""
        with _refusals(self.what, self.deployment):
            await versioning.set_ramping(self.fleet.temporal, self.deployment, build_id,
                                         percentage)
        return await self.status()

    async def rollback(self) -> str:
        """End a ramp; with none, make the build that was current before current again.
        Says what it did."""
        with _refusals(self.what, self.deployment):
            return await versioning.rollback(self.fleet.temporal, self.deployment)

    async def move(self) -> list[str]:
        """Signal every running node, and the orphan sweep, whose run is on another build
        than the current one to look at its target build now (a node moves unless it is
        applying a command). Pools move by themselves within seconds. Answers the workflow
        ids signalled."""
        state = await self.status()
        if state.current is None:
            raise Refused(self.what, "no build is current: nothing to move to")
        query = ('WorkflowType IN ("NodeWorkflow", "OrphanSweepWorkflow") '
                 'AND ExecutionStatus="Running" '
                 f'AND TemporalWorkerDeployment="{self.deployment}" AND '
                 f'TemporalWorkerDeploymentVersion!="{self.deployment}:{state.current}"')
        temporal = self.fleet.temporal
        signalled: list[str] = []
        with translated(self.what):
            async for wf in temporal.list_workflows(query):
                try:
                    await temporal.get_workflow_handle(wf.id).signal("check_upgrade")
                except RPCError as exc:
                    if exc.status is not RPCStatusCode.NOT_FOUND:  # it ended meanwhile
                        raise
                    continue
                signalled.append(wf.id)
        return sorted(signalled)
