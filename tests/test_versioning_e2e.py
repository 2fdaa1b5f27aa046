"""Worker Versioning on the dev server: a fleet on build A, build B made current, pinned
pools and nodes moving to B at continue-as-new, and a rollback. Plus the pure choice of
what a rollback returns to."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from navarch.client import Navarch
from navarch.contracts.names import node_workflow_id, pool_workflow_id
from navarch.temporal.versioning import (
    DeploymentView,
    VersionView,
    deployment_config,
    describe,
    ensure_current,
    rollback_target,
)
from navarch.workflows.registry import WORKFLOWS

from build_b_workflows import WORKFLOWS_B
from lifecycle_helpers import control_plane, eventually, fast_spec, navarch_cli, node_status


async def _build_of(client: Client, workflow_id: str) -> str:
    """The build the workflow's latest run is pinned to."""
    answer = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace=client.namespace,
                                         execution=WorkflowExecution(workflow_id=workflow_id)))
    build: str = answer.workflow_execution_info.versioning_info.deployment_version.build_id
    return build


def _running(state: DeploymentView, build: str) -> int | None:
    version = state.version(build)
    return version.running if version else None


async def test_nodes_move_to_the_current_build_at_continue_as_new_and_roll_back(dev_env,
                                                                                tmp_path,
                                                                                caplog):
    client = dev_env.client
    name = f"navarch-{uuid.uuid4().hex[:6]}"
    queue = f"navarch-{uuid.uuid4().hex}"
    async with control_plane(client, tmp_path / "a", task_queue=queue,
                             deployment=deployment_config(name, "A")) as plane:
        assert "made current" in await ensure_current(client, name, "A")
        fleet = Navarch(client, task_queue=queue)
        spec = fast_spec(min_nodes=1, max_nodes=3)
        await fleet.apply(spec)
        await fleet.wait_ready([spec.name], within=60)
        first = (await fleet.pool(spec.name).status()).nodes[0].node_id
        first_id = node_workflow_id(first)
        assert await _build_of(client, first_id) == "A"
        a_run = client.get_workflow_handle(first_id,
                                           run_id=(await client.get_workflow_handle(
                                               first_id).describe()).run_id)

        upgrades = fleet.upgrades(name)

        async def moved(node_id: str) -> str:
            """`move()` signals the nodes not on the current build; a quiet node moves at
            that task."""
            await upgrades.move()
            return await _build_of(client, node_workflow_id(node_id))

        async with control_plane(client, tmp_path / "b", task_queue=queue,
                                 world=plane.world, simulate_hosts=False,
                                 deployment=deployment_config(name, "B"),
                                 workflows=WORKFLOWS_B):
            await eventually(lambda: describe(client, name),
                             lambda d: d.version("B") is not None, what="B registered")
            assert (await upgrades.set_current("B")).current == "B"
            # The pool wakes every few seconds and moves; the quiet node stays on A.
            await eventually(lambda: _build_of(client, pool_workflow_id(spec.name)),
                             lambda b: b == "B", what="pool on B")
            assert await _build_of(client, first_id) == "A"
            await eventually(upgrades.status,
                             lambda d: (_running(d, "A"), _running(d, "B")) == (1, 1),
                             what="visibility: the node on A, the pool on B")
            cli = await navarch_cli(dev_env, "upgrade", "status", "--deployment", name)
            assert cli.returncode == 0, cli.stderr
            assert f"deployment {name}: current B" in cli.stdout
            cells = [[c.strip() for c in line.split("│")[1:-1]]
                     for line in cli.stdout.splitlines() if line.startswith("│")]
            assert [c[:3] for c in cells] == [["A", "draining", "1"], ["B", "current", "1"]]
            await eventually(functools.partial(moved, first), lambda b: b == "B",
                             interval=0.5, what="first node on B")
            assert await (await client.get_workflow_handle(first_id).describe()).memo() == {
                "ran_by": "B"}  # build B's new step ran in the new run
            assert (await node_status(client, first)).state.value == "ready"
            on = await eventually(upgrades.status, lambda d: _running(d, "A") == 0,
                                  what="A drained")
            assert _running(on, "B") == 2  # the pool and the node

            # A new node starts on B.
            await fleet.pool(spec.name).scale(2)
            await fleet.wait_ready([spec.name], within=60)
            second = next(n.node_id for n in (await fleet.pool(spec.name).status()).nodes
                          if n.node_id != first)
            assert await _build_of(client, node_workflow_id(second)) == "B"

            # Roll back (the CLI), with --move: A is current again, and B's runs move back
            # the same way. B's workers stay up until they have.
            cli = await navarch_cli(dev_env, "upgrade", "rollback", "--move",
                                    "--deployment", name)
            assert cli.returncode == 0, cli.stderr
            assert "A is current again (was B)" in cli.stdout
            assert (await describe(client, name)).current == "A"
            await eventually(lambda: _build_of(client, pool_workflow_id(spec.name)),
                             lambda b: b == "A", what="pool back on A")
            for node in (first, second):
                await eventually(functools.partial(moved, node), lambda b: b == "A",
                                 interval=0.5, what=f"{node} back on A")
                assert (await node_status(client, node)).state.value == "ready"
        # B's workers are gone and nothing needs them: the fleet runs on A.
        assert await fleet.pool(spec.name).delete(wait=True, within=60)

    # No task of any run failed (a non-determinism error fails the task and is retried):
    # neither in the workers' logs nor in any run's history. The one failure allowed is
    # the server's own refusal of a completion that raced a new signal (UnhandledCommand:
    # the nudges race the continue-as-new), which the worker answers with a fresh task.
    assert [r.getMessage() for r in caplog.records
            if "nondetermin" in r.getMessage().lower()] == []
    failed = []
    async for run in client.list_workflows(f'TaskQueue="{queue}"'):
        events = (await client.get_workflow_handle(run.id, run_id=run.run_id)
                  .fetch_history()).events
        failed += [(run.id, e.workflow_task_failed_event_attributes.failure.message)
                   for e in events if e.HasField("workflow_task_failed_event_attributes")
                   and e.workflow_task_failed_event_attributes.cause
                   != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND]
    assert failed == []
    # Every run replays on the build it ran on; A's run does not replay on B's code,
    # which is why it had to stay pinned to A.
    history = await a_run.fetch_history()
    await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter
                   ).replay_workflow(history)
    on_b = await Replayer(workflows=WORKFLOWS_B, data_converter=pydantic_data_converter
                          ).replay_workflow(history, raise_on_replay_failure=False)
    assert "Nondeterminism" in type(on_b.replay_failure).__name__


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
