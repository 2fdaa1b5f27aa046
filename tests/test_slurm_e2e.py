"""Draining through Slurm, end to end: real slurmctld, slurmd and munged, the real workflows
on the dev server, simulated GPU hosts. A fatal Xid drains the Slurm node with Navarch's
reason while its job runs; the job ends and only then is the machine terminated. An
administrator's drain holds the node in Navarch and is never resumed by it. At the grace's
end the job is requeued."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from navarch.config.schema import NotifierConfig, SlurmNotifierConfig
from navarch.contracts.names import node_workflow_id
from navarch.contracts.node import CordonSource, NodeOperationResult, TransitionReason

from lifecycle_helpers import (
    control_plane,
    eventually,
    node_status,
    pool_status,
    ready_pool,
)


def slurm_notifier(**kw) -> NotifierConfig:
    # The one Slurm node of the test cluster is `localhost`, whatever the simulated host.
    return NotifierConfig(type="slurm", slurm=SlurmNotifierConfig(
        node_name="localhost", check_interval=timedelta(seconds=1), **kw))


def told(node, text: str) -> bool:
    return any(t.reason is TransitionReason.SCHEDULER and text in t.detail
               for t in node.transitions)


async def test_a_fatal_xid_drains_through_slurm_and_the_machine_goes_only_when_the_job_ends(
        dev_env, tmp_path, slurm):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                        notifier=slurm_notifier(),
                                        health={"drain_grace": timedelta(seconds=60)})
        node = status.nodes[0].node_id
        job = slurm.submit(6)
        await slurm.running(job)
        plane.world.inject(node, "xid", value=79)
        draining = await eventually(lambda: node_status(client, node),
                                    lambda n: n.state.value == "draining", within=30,
                                    what="draining")
        state, reason = slurm.state()
        assert state == "draining" and reason.startswith("navarch: "), (state, reason)
        await asyncio.sleep(2)  # the job still runs: the machine stays
        assert (await node_status(client, node)).state.value == "draining"
        assert slurm.run("squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING"
        done = await eventually(lambda: node_status(client, node),
                                lambda n: n.state.is_terminal(), within=30,
                                what="terminated once the job ended")
        assert done.transitions[-1].detail.endswith("drained: slurm node localhost drained, "
                                                    "no jobs"), done.transitions[-1].detail
        assert told(done, "1 job(s) on it")  # said while it waited
        assert slurm.state()[0] == "drained"  # Navarch's drain stays on a machine it retired
        assert draining.state.value == "draining"
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")


async def test_an_administrators_drain_holds_the_node_and_is_never_resumed_by_navarch(
        dev_env, tmp_path, slurm):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1, notifier=slurm_notifier())
        node = status.nodes[0].node_id
        slurm.run("scontrol", "update", "nodename=localhost", "state=drain", "reason=bad fan")
        held = await eventually(lambda: node_status(client, node),
                                lambda n: n.held_by(CordonSource.SCHEDULER) is not None,
                                within=20, what="held by the scheduler")
        assert held.state.value == "cordoned"
        hold = held.held_by(CordonSource.SCHEDULER)
        assert hold is not None and hold.reason.startswith("bad fan (set by root")
        # An operator's cordon and uncordon in Navarch: the administrator's drain stays.
        handle = client.get_workflow_handle(node_workflow_id(node))
        await handle.execute_update("cordon", {"reason": "look"}, result_type=NodeOperationResult)
        await handle.execute_update("uncordon", {}, result_type=NodeOperationResult)
        await asyncio.sleep(1.5)
        assert slurm.state() == ("drained", "bad fan")
        assert (await node_status(client, node)).state.value == "cordoned"
        # The pool sees it out of service: another machine keeps its size, and the held
        # one is never retired for it.
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.ready == 1, within=30, what="another node")
        assert all(n.node_id != node for n in pool.nodes if n.state.value == "ready")
        slurm.run("scontrol", "update", "nodename=localhost", "state=resume")
        back = await eventually(lambda: node_status(client, node),
                                lambda n: n.state.value == "ready", within=20,
                                what="returned by the scheduler")
        assert back.transitions[-1].detail == "the workload scheduler returned the node"
        assert (await pool_status(client, spec.name)).ready >= 1
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")


async def test_at_the_grace_end_the_nodes_job_is_requeued_then_the_machine_goes(
        dev_env, tmp_path, slurm):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                        notifier=slurm_notifier(on_grace_end="requeue"))
        node = status.nodes[0].node_id
        job = slurm.submit(120)
        await slurm.running(job)
        handle = client.get_workflow_handle(node_workflow_id(node))
        await handle.execute_update("drain", {"grace_seconds": 2, "reason": "kernel update"},
                                    result_type=NodeOperationResult)
        done = await eventually(lambda: node_status(client, node),
                                lambda n: n.state.is_terminal(), within=60, what="gone")
        last = done.transitions[-1].detail
        assert f"drain grace expired; requeued job(s) {job} from localhost" in last, last
        assert slurm.run("squeue", "-h", "-j", job, "-o", "%T").strip() == "PENDING"
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")


async def test_a_repair_in_place_drains_through_slurm_and_resumes_the_node_after(
        dev_env, tmp_path, slurm):
    """The ladder with Slurm: a reset-class Xid drains the Slurm node while its job runs,
    the GPU is reset only once the job ended, and after validation Slurm takes the node
    back (resumed by Navarch, whose drain it was). The machine stays."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        plane.world.simulate_diagnostics()
        spec, status = await ready_pool(client, plane, min_nodes=1, notifier=slurm_notifier(),
                                        health={"drain_grace": timedelta(seconds=60),
                                                "remediation": ["reset", "reboot", "replace"]})
        node = status.nodes[0].node_id
        job = slurm.submit(4)
        await slurm.running(job)
        plane.world.inject(node, "xid", gpu_index=1, value=119)
        await eventually(lambda: node_status(client, node),
                         lambda n: n.state.value == "repairing", within=30, what="repairing")
        state, reason = slurm.state()
        assert state == "draining" and reason.startswith("navarch: repair: reset for xid 119")
        assert plane.world.counter("gpu_resets") == 0  # not while the job runs
        back = await eventually(lambda: node_status(client, node),
                                lambda n: n.state.value == "ready", within=40,
                                what="repaired and back")
        assert [(r.rung, r.outcome) for r in back.repairs] == [("reset", "returned")]
        assert plane.world.counter("gpu_resets") == 1 and plane.world.counter("provisioned") == 1
        await eventually(lambda: asyncio.to_thread(slurm.state), lambda s: s[0] == "idle",
                         within=20, what="resumed at Slurm")
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")
