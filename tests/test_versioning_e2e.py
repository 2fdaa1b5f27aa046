"""Worker Versioning on the dev server: a fleet on build A, build B made current, pinned
pools and nodes moving to B at continue-as-new, and a rollback. Plus the pure choice of
what a rollback returns to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client

from navarch.client import Navarch
from navarch.contracts.names import node_workflow_id
from navarch.temporal.versioning import (
    DeploymentView,
    VersionView,
    deployment_config,
    describe,
    ensure_current,
    rollback,
    rollback_target,
    set_current,
)

from lifecycle_helpers import control_plane, eventually, fast_spec, node_status


async def _build_of(client: Client, workflow_id: str) -> str:
    answer = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace=client.namespace,
                                         execution=WorkflowExecution(workflow_id=workflow_id)))
    build: str = answer.workflow_execution_info.versioning_info.deployment_version.build_id
    return build


@pytest.mark.skip(reason="issue 20, unfinished: set-current of B races B's task-queue "
                  "registration, and the nudged node did not move to B in the one run that got "
                  "past it; see the issue's progress note")
async def test_nodes_move_to_the_current_build_at_continue_as_new_and_roll_back(dev_env,
                                                                                tmp_path):
    client = dev_env.client
    name = f"navarch-{uuid.uuid4().hex[:6]}"
    queue = f"navarch-{uuid.uuid4().hex}"
    async with control_plane(client, tmp_path / "a", task_queue=queue,
                             deployment=deployment_config(name, "A")) as plane:
        assert "made current" in await ensure_current(client, name, "A")
        fleet = Navarch(client, task_queue=queue)
        spec = fast_spec(min_nodes=1, max_nodes=2)
        await fleet.apply(spec)
        await fleet.wait_ready([spec.name], within=60)
        node = (await fleet.pool(spec.name).status()).nodes[0].node_id
        assert await _build_of(client, node_workflow_id(node)) == "A"
        async with control_plane(client, tmp_path / "b", task_queue=queue,
                                 world=plane.world, simulate_hosts=False,
                                 deployment=deployment_config(name, "B")):
            await eventually(lambda: describe(client, name),
                             lambda d: d.version("B") is not None, what="B registered")
            await set_current(client, name, "B")
            # A quiet node moves at its next task: the check_upgrade signal wakes it.
            handle = client.get_workflow_handle(node_workflow_id(node))

            async def nudged() -> str:
                await handle.signal("check_upgrade")
                return await _build_of(client, node_workflow_id(node))

            await eventually(nudged, lambda b: b == "B", interval=1, what="node on B")
            status = await node_status(client, node)
            assert status.state.value == "ready"  # the new run carried the node on
            assert "B is current" not in await rollback(client, name)
            assert (await describe(client, name)).current == "A"
        await fleet.pool(spec.name).delete()


def test_a_rollback_returns_to_the_build_current_most_recently_before():
    def at(hour: int) -> datetime:
        return datetime(2026, 12, 1, hour, tzinfo=UTC)

    state = DeploymentView(name="navarch", current="C", versions=[
        VersionView("A", "inactive", at(1), last_current=at(2)),
        VersionView("B", "draining", at(3), last_current=at(5)),
        VersionView("C", "current", at(4), last_current=at(6)),
        VersionView("D", "inactive", at(7))])
    assert rollback_target(state) == "B"
    assert rollback_target(DeploymentView(name="n", current="A", versions=[
        VersionView("A", "current", at(1), last_current=at(1))])) is None
