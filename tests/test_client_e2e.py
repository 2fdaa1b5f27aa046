"""`navarch.client` against the dev server: every method a script calls, what it answers,
and the typed errors (refused with the workflow's reason, not found, not connected)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from navarch.client import (
    InvalidRequest,
    Navarch,
    NavarchError,
    NotConnected,
    NotFound,
    Refused,
    TimedOut,
    connect_sync,
)
from navarch.client.errors import translated
from navarch.contracts.names import pool_workflow_id
from navarch.validation import ValidationFailed

from lifecycle_helpers import control_plane, eventually, fast_spec


async def fleet_of(env, plane) -> Navarch:
    """A client connected as a user's script connects: by address, through connect()."""
    address = env.client.service_client.config.target_host
    return await Navarch.connect(target_host=address, namespace="default",
                                 task_queue=plane.task_queue)


async def test_a_script_runs_a_pool_and_its_nodes_through_the_client(dev_env, tmp_path):
    async with control_plane(dev_env.client, tmp_path) as plane:
        fleet = await fleet_of(dev_env, plane)
        spec = fast_spec(min_nodes=2, max_nodes=4, health={"auto_replace": False})
        name = spec.name

        applied = await fleet.apply(spec)
        assert applied.pools == {name: "started, diagnostics schedule created"}
        assert applied.sweep is None  # only specs: no orphan sweep is configured
        seen: list[str] = []
        ready = await fleet.wait_ready([name], within=60,
                                       progress=lambda s: seen.append(f"{s[name].ready}"))
        assert ready[name].ready == 2 and seen[-1] == "2"
        assert name in [p.name for p in await fleet.pools()]
        status = await fleet.pool(name).status()
        assert (status.target, status.min_nodes, status.max_nodes) == (2, 2, 4)

        listed = await eventually(lambda: fleet.nodes(pool=name, state="ready"),
                                  lambda rows: len(rows) == 2, what="two ready nodes listed")
        assert {r.pool for r in listed} == {name}
        assert all(r.gpus == "8x H100" and r.closed_at is None for r in listed)
        a, b = sorted(r.node_id for r in listed)
        await eventually(lambda: fleet.node(a).last_heartbeat(), lambda t: t is not None,
                         what="a heartbeat")

        # An operator's hold, confirmed, and lifted.
        held = await fleet.node(a).cordon("bad fan", by="alice")
        assert (held.applied, held.cordoned, held.state.value) == (True, True, "cordoned")
        node = await fleet.node(a).status()
        assert [(h.owner.value, h.by) for h in node.holds] == [("operator", "alice")]
        lifted = await fleet.node(a).uncordon("fan replaced")
        assert (lifted.cordoned, lifted.state.value) == (False, "ready")
        history = await fleet.node(a).history()
        assert [t.to_state.value for t in history][-2:] == ["cordoned", "ready"]

        # A fatal Xid: the verdict holds the node, and the client says why it refuses.
        plane.world.inject(a, "xid", value=79)
        await eventually(lambda: fleet.node(a).status(), lambda n: n.verdict.value ==
                         "unhealthy", what="unhealthy verdict")
        with pytest.raises(Refused) as refused:
            await fleet.node(a).uncordon("looks fine to me")
        assert refused.value.what == f"node {a}"
        assert refused.value.reason == ("uncordon refused: node is unhealthy "
                                        "(rule xid-needs-reset-or-reboot)")
        with pytest.raises(Refused, match="the hardware still reports unhealthy"):
            await fleet.node(a).clear("checked")
        unhealthy = await eventually(lambda: fleet.nodes(pool=name, verdict="unhealthy"),
                                     lambda rows: len(rows) == 1, what="listed by verdict")
        assert unhealthy[0].node_id == a

        # Scale, refused and done; the queue depth a scheduler reports.
        with pytest.raises(Refused, match="min_nodes 9 would exceed max_nodes 4"):
            await fleet.pool(name).scale(min_nodes=9)
        scaled = await fleet.pool(name).scale(3)
        assert (scaled.target, scaled.max_nodes) == (3, 4)
        await fleet.report_queue_depth(name, 12, pending_jobs=4)
        await eventually(lambda: fleet.pool(name).status(), lambda s: s.queue_depth == 12,
                         what="queue depth recorded")

        # Drain one node, terminate the sick one: each answers, and a node that has ended
        # refuses further operations.
        drained = await fleet.node(b).drain("rotate", grace=0)
        assert drained.operation == "drain" and drained.applied
        gone = await fleet.node(a).terminate("rma")
        assert gone.applied
        await eventually(lambda: fleet.node(a).status(), lambda n: n.state.is_terminal(),
                         what="terminated")
        with pytest.raises(Refused):  # "node is terminated", or "its workflow has ended"
            await fleet.node(a).terminate("again")

        # Not found, for every kind of handle.
        with pytest.raises(NotFound):
            await fleet.node(f"nope-{uuid.uuid4().hex[:6]}").status()
        with pytest.raises(NotFound):
            await fleet.pool(f"nope-{uuid.uuid4().hex[:6]}").scale(1)
        with pytest.raises(NotFound):
            await fleet.report_queue_depth(f"nope-{uuid.uuid4().hex[:6]}", 1)
        with pytest.raises(NotFound):
            await fleet.pool(f"nope-{uuid.uuid4().hex[:6]}").delete()

        # Delete: every node drains and terminates, then the pool's workflow ends.
        assert await fleet.pool(name).delete(wait=True, within=60) is True
        described = await fleet.temporal.get_workflow_handle(pool_workflow_id(name)).describe()
        assert described.status == WorkflowExecutionStatus.COMPLETED
        left = await eventually(lambda: fleet.nodes(pool=name, running=True),
                                lambda rows: not rows, within=30, what="no node left")
        assert left == []


async def test_the_sync_client_works_beside_a_running_event_loop(dev_env, tmp_path):
    """A notebook has an event loop running already: the sync client runs its own."""
    async with control_plane(dev_env.client, tmp_path) as plane:
        spec = fast_spec(min_nodes=1, max_nodes=2)
        address = dev_env.client.service_client.config.target_host

        def script() -> tuple[int, str, str]:
            with connect_sync(target_host=address, namespace="default",
                              task_queue=plane.task_queue) as fleet:
                fleet.apply(spec)
                ready = fleet.wait_ready([spec.name], within=60)[spec.name].ready
                node = fleet.nodes(pool=spec.name, heartbeats=False)[0].node_id
                held = fleet.node(node).cordon("from a notebook").state.value
                try:
                    fleet.node("no-such-node").status()
                except NotFound as exc:
                    missing = str(exc)
                fleet.pool(spec.name).delete(wait=True, within=60)
                return ready, held, missing

        # The worker answering it runs on this loop, so the script runs in a thread.
        ready, held, missing = await asyncio.to_thread(script)
        assert (ready, held, missing) == (1, "cordoned", "node no-such-node: not found")


async def test_a_server_that_is_not_there_is_not_connected():
    with pytest.raises(NotConnected, match=r"Temporal at 127\.0\.0\.1:1"):
        await Navarch.connect(target_host="127.0.0.1:1", namespace="default")


async def test_a_wait_past_its_time_says_what_was_not_ready(dev_env, tmp_path):
    async with control_plane(dev_env.client, tmp_path, boot_seconds=30) as plane:
        fleet = await fleet_of(dev_env, plane)
        spec = fast_spec(min_nodes=1, max_nodes=1)
        await fleet.apply(spec)
        with pytest.raises(TimedOut, match=rf"{spec.name} 0/1"):
            await fleet.wait_ready([spec.name], within=0.5)
        await fleet.pool(spec.name).delete()


async def test_a_config_file_that_does_not_validate_starts_nothing(dev_env, tmp_path: Path):
    bad = tmp_path / "config.yaml"
    bad.write_text("pools:\n  train:\n    min_nodes: -1\n")
    fleet = Navarch(dev_env.client)
    with pytest.raises(ValidationFailed) as failed:
        await fleet.apply(bad)
    assert any(str(bad) in str(p) for p in failed.value.problems)


async def test_pools_lists_this_fleets_pools_not_one_whose_worker_is_gone(dev_env, tmp_path):
    """Two fleets share a namespace; the first one's worker stops with its pool running.
    Listing the second fleet's pools neither waits on nor fails for the orphaned pool."""
    async with control_plane(dev_env.client, tmp_path) as gone:
        orphaned = fast_spec(min_nodes=0, max_nodes=1)
        await (await fleet_of(dev_env, gone)).apply(orphaned)
    async with control_plane(dev_env.client, tmp_path) as plane:
        fleet = await fleet_of(dev_env, plane)
        spec = fast_spec(min_nodes=0, max_nodes=1)
        await fleet.apply(spec)
        started = asyncio.get_running_loop().time()
        assert [p.name for p in await fleet.pools()] == [spec.name]
        assert asyncio.get_running_loop().time() - started < 10
        await fleet.pool(spec.name).delete(wait=True, within=30)
    await dev_env.client.get_workflow_handle(pool_workflow_id(orphaned.name)).terminate()


@pytest.mark.parametrize("raised,kind,message", [
    (WorkflowUpdateFailedError(ApplicationError("uncordon refused: node is unhealthy",
                                                type="Refused")),
     Refused, "node n: uncordon refused: node is unhealthy"),
    (WorkflowUpdateFailedError(ApplicationError("invalid cordon request: reason: too long",
                                                type="InvalidRequest")),
     InvalidRequest, "node n: invalid cordon request: reason: too long"),
    (RPCError("workflow not found for ID: node/n", RPCStatusCode.NOT_FOUND, b""),
     NotFound, "node n: not found"),
    (RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b""),
     Refused, "node n: its workflow has ended"),
    (RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""),
     NotConnected, "node n: connection refused"),
    (RPCError("Timeout expired", RPCStatusCode.CANCELLED, b""),
     TimedOut, "node n: no worker answered in time: is a navarch-worker running and polling "
               "this fleet's task queue?"),
    (RPCError("namespace is not set", RPCStatusCode.INVALID_ARGUMENT, b""),
     NavarchError, "node n: namespace is not set"),
])
def test_temporal_errors_become_the_clients(raised, kind, message):
    with pytest.raises(NavarchError) as caught, translated("node n"):
        raise raised
    assert type(caught.value) is kind and str(caught.value) == message
