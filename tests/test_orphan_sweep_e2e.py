"""No machine lost or leaked, on the real dev server with the real workflows: the orphan
sweep terminates a machine of this installation that no node owns (and leaves another
installation's alone), a node whose machine is terminated behind Navarch's back is told
`instance_gone` and replaced, and a launch whose answer was lost leaks nothing. On the fake
cloud here; on AWS through moto, GCE and Lambda through their local API servers in
test_orphan_sweep_clouds.py. The sweep's decisions are table-tested in test_decisions.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from navarch.contracts.names import SWEEP_WORKFLOW_ID, node_workflow_id
from navarch.contracts.node import TransitionReason
from navarch.contracts.spec import ProviderChoice
from navarch.contracts.sweep import SweepConfig, SweepStatus, SweepTarget
from navarch.temporal.identity import namespace_cluster_id
from navarch.temporal.sweep import apply_sweep

from lifecycle_helpers import (
    control_plane,
    eventually,
    navarch_cli,
    node_status,
    pool_status,
    ready_pool,
    start_sweep,
    sweep_status,
)


def actions(status: SweepStatus) -> list[tuple[str, str]]:
    return [(r.action, r.instance_id) for r in status.records]


async def test_the_sweep_terminates_this_installations_orphans_and_replaces_gone_machines(
        dev_env, tmp_path):
    client = dev_env.client
    ours = await namespace_cluster_id(client)
    provider = f"sim-{uuid.uuid4().hex[:6]}"  # this test's nodes only, on a shared server
    choice = ProviderChoice(name=provider, type="fake", instance_type="h100-8x")
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1, providers=[choice])
        node = status.nodes[0].node_id
        machine = plane.world.get_by_node(node)
        assert machine is not None and machine.cluster == ours  # tagged at launch

        # Made behind Navarch's back: one with this installation's tag and a node id no
        # workflow has, one of another installation.
        def launch(node_id: str, cluster: str) -> str:
            return plane.world.provision(
                node_id=node_id, pool=spec.name, provider=provider, instance_type="h100-8x",
                region="local", zone="", gpu_count=8, gpu_model="H100", cluster=cluster,
            ).instance_id

        ghost = launch(f"ghost-{uuid.uuid4().hex[:6]}", ours)
        foreign = launch(f"theirs-{uuid.uuid4().hex[:6]}", "another-install")
        handle = await start_sweep(client, plane.task_queue,
                                   [SweepTarget(provider=choice, region="local")])
        try:
            swept = await eventually(lambda: sweep_status(handle),
                                     lambda s: ("terminated", ghost) in actions(s),
                                     within=20, what="the orphan terminated")
            world_ghost = plane.world.get(ghost)
            assert world_ghost is not None and world_ghost.state == "terminated"
            record = next(r for r in swept.records if r.instance_id == ghost)
            assert "no workflow node/ghost-" in record.detail
            # Between first seen and terminated: at least the grace.
            assert swept.cluster_id == ours
            after = await sweep_status(handle)
            assert after.sweeps >= 2
            assert not any(r.instance_id == foreign for r in after.records)
            still = plane.world.get(foreign)
            assert still is not None and still.state != "terminated"
            assert all(o.instance_id != machine.instance_id for o in after.orphans)

            # Word of another machine gone does not move the node.
            await client.get_workflow_handle(node_workflow_id(node)).signal(
                "instance_gone", {"instance_id": "i-someone-else", "state": "terminated"})
            await asyncio.sleep(1)
            assert (await node_status(client, node)).state.value == "ready"

            # The node's machine is terminated behind Navarch's back (a spot reclaim).
            plane.world.terminate(machine.instance_id)
            gone = await eventually(
                lambda: node_status(client, node),
                lambda n: any(t.reason is TransitionReason.INSTANCE_GONE for t in n.transitions)
                and n.state.is_terminal(), within=20, what="the node told its machine is gone")
            first_gone = next(t for t in gone.transitions
                              if t.reason is TransitionReason.INSTANCE_GONE)
            assert machine.instance_id in first_gone.detail
            replaced = await eventually(
                lambda: pool_status(client, spec.name),
                lambda p: any(n.replacement_of == node and n.state.value == "ready"
                              for n in p.nodes), within=30, what="a replacement ready")
            assert replaced.ready == 1
        finally:
            await handle.terminate("test over")
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")


async def test_report_mode_records_an_orphan_once_and_leaves_it_running(dev_env, tmp_path):
    client = dev_env.client
    ours = await namespace_cluster_id(client)
    provider = f"sim-{uuid.uuid4().hex[:6]}"
    choice = ProviderChoice(name=provider, type="fake", instance_type="h100-8x")
    async with control_plane(client, tmp_path) as plane:
        ghost = plane.world.provision(
            node_id=f"ghost-{uuid.uuid4().hex[:6]}", pool="p", provider=provider,
            instance_type="h100-8x", region="local", zone="", gpu_count=8, gpu_model="H100",
            cluster=ours).instance_id
        handle = await start_sweep(client, plane.task_queue,
                                   [SweepTarget(provider=choice, region="local")],
                                   mode="report", grace=0.5)
        try:
            status = await eventually(lambda: sweep_status(handle), lambda s: s.sweeps >= 4,
                                      within=20, what="four sweeps")
            assert [a for a in actions(status) if a[1] == ghost] == [("reported", ghost)]
            assert [o.instance_id for o in status.orphans] == [ghost]
            inst = plane.world.get(ghost)
            assert inst is not None and inst.state != "terminated"
        finally:
            await handle.terminate("test over")


async def test_a_node_whose_agent_falls_silent_asks_the_cloud_at_once(dev_env, tmp_path):
    """No sweep here: the node's watch fails, it asks the cloud, and the machine is gone,
    so it leaves as instance_gone instead of waiting out the unreachable toleration."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                        health={"unreachable_toleration": timedelta(minutes=30)})
        node = status.nodes[0].node_id
        machine = plane.world.get_by_node(node)
        assert machine is not None
        plane.world.terminate(machine.instance_id)
        gone = await eventually(
            lambda: node_status(client, node), lambda n: n.state.is_terminal(),
            within=30, what="the node left")
        reasons = [t.reason for t in gone.transitions]
        assert TransitionReason.UNREACHABLE in reasons
        assert reasons[-1] is TransitionReason.INSTANCE_GONE
        assert "agent silent and" in gone.transitions[-1].detail
        await client.get_workflow_handle(node_workflow_id(node)).describe()
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")


async def test_apply_starts_and_reconfigures_the_sweep_and_the_cli_shows_it(dev_env, tmp_path):
    """`navarch pool apply` starts the namespace's one sweep (or reconfigures it);
    `navarch cloud orphans` shows what it found, `--now` sweeps at once."""
    client = dev_env.client
    provider = f"sim-{uuid.uuid4().hex[:6]}"
    choice = ProviderChoice(name=provider, type="fake", instance_type="h100-8x")
    config = SweepConfig(interval=timedelta(minutes=10), grace=timedelta(minutes=10),
                         mode="report", targets=[SweepTarget(provider=choice, region="local")])
    async with control_plane(client, tmp_path) as plane:
        try:
            assert await apply_sweep(client, config, plane.task_queue) == "started"
            assert await apply_sweep(client, config, plane.task_queue) == "unchanged"
            with pytest.raises(WorkflowUpdateFailedError) as bad:
                await client.get_workflow_handle(SWEEP_WORKFLOW_ID).execute_update(
                    "configure", {"mode": "delete"}, result_type=str)
            why = str(bad.value.cause)
            assert "mode" in why and "delete" in why
            wider = config.model_copy(update={"grace": timedelta(seconds=0)})
            assert (await apply_sweep(client, wider, plane.task_queue)).startswith(
                "configured: every 0:10:00, grace 0:00:00, mode report, 1 target(s)")
            ghost = plane.world.provision(
                node_id=f"ghost-{uuid.uuid4().hex[:6]}", pool="p", provider=provider,
                instance_type="h100-8x", region="local", zone="", gpu_count=8,
                gpu_model="H100", cluster=await namespace_cluster_id(client)).instance_id
            now = await navarch_cli(dev_env, "cloud", "orphans", "--now", "-o", "json")
            assert now.returncode == 0, now.stderr
            found = SweepStatus.model_validate_json(now.stdout)
            assert [o.instance_id for o in found.orphans] == [ghost]
            assert ("reported", ghost) in actions(found)
            shown = await navarch_cli(dev_env, "cloud", "orphans")
            assert shown.returncode == 0, shown.stderr
            assert "orphan sweep (report, every 0:10:00, grace 0:00:00)" in shown.stdout
            assert ghost in shown.stdout and "no workflow node/ghost-" in shown.stdout
        finally:
            await client.get_workflow_handle(SWEEP_WORKFLOW_ID).terminate("test over")
    missing = await navarch_cli(dev_env, "cloud", "orphans")
    assert missing.returncode == 1
    assert "no orphan sweep runs in this namespace (the last one terminated)" in missing.stderr
