"""Who owns a node, on the real dev server with the real workflows and simulated hosts: an
operator's hold that nothing automatic lifts, an unhealthy verdict that outlives the fault's
signal, `node clear`, spec changes that reach running nodes, and commands that survive a
continue-as-new. The rules themselves are table-tested in test_decisions.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from navarch.contracts.names import node_workflow_id, pool_workflow_id
from navarch.contracts.node import (
    CordonInput,
    NodeOperationResult,
    NodeStatus,
    SpecUpdate,
    UncordonInput,
)
from navarch.contracts.pool import PoolUpdateResult
from navarch.health.policy import PolicyFile
from navarch.workflows.node import NodeWorkflow

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    navarch_cli,
    node_status,
    pool_status,
    ready_pool,
    start_pool,
    transitions,
)


async def test_an_operator_hold_outlives_the_fault_and_only_the_operator_returns_the_node(
        dev_env, tmp_path):
    """auto_replace off, a fatal Xid 79 cordons node A, the operator holds it for an RMA, the
    Xid stops: A stays cordoned and unhealthy. `node clear` lifts the verdict, the hold
    stays; only the operator's uncordon returns A. The pool kept one node serving all along."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                        health={"auto_replace": False})
        a = status.nodes[0].node_id
        plane.world.inject(a, "xid", value=79)
        await eventually(lambda: node_status(client, a),
                         lambda n: n.state.value == "cordoned", what="cordoned by the verdict")
        held = await navarch_cli(dev_env, "node", "cordon", a, "--reason", "RMA hold",
                              "--by", "ana")
        assert held.stdout.strip() == (f"node {a}: cordoned; also held by unhealthy; "
                                       "now cordoned"), held.stderr
        node = await node_status(client, a)
        assert node.transitions[-1].detail == "RMA hold (by ana); also held by unhealthy"
        assert [(h.owner.value, h.reason, h.by) for h in node.holds] == [
            ("unhealthy", "rule xid-needs-reset-or-reboot", ""), ("operator", "RMA hold", "ana")]
        # The Xid stops (the event expires, the agent restarts): the hardware looks fine,
        # the verdict and both holds stay.
        plane.world.clear(a)
        node = await eventually(lambda: node_status(client, a),
                                lambda n: n.health.value == "healthy", what="healthy again")
        await asyncio.sleep(1)
        node = await node_status(client, a)
        assert (node.state.value, node.verdict.value) == ("cordoned", "unhealthy")
        assert node.transitions[-1].detail == ("verdict unhealthy (rule "
                                               "xid-needs-reset-or-reboot) stands")
        pool = await pool_status(client, spec.name)
        assert pool.schedulable == 1  # a second machine serves while A is held
        cleared = await navarch_cli(dev_env, "node", "clear", a, "--reason", "reseated GPU 3")
        assert cleared.stdout.strip() == (f"node {a}: verdict cleared; still held by "
                                          "operator; now cordoned"), cleared.stderr
        back = await navarch_cli(dev_env, "node", "uncordon", a, "--reason", "RMA done")
        assert back.stdout.strip() == f"node {a}: uncordoned; now ready", back.stderr
        node = await node_status(client, a)
        assert (node.verdict.value, node.holds, node.awaiting_repair) == ("healthy", [], False)
        assert transitions(node)[-2:] == [("cordoned", "verdict_cleared"), ("ready", "operator")]
        got = await navarch_cli(dev_env, "node", "get", a)
        assert f"node {a} (pool {spec.name}): ready, health healthy, verdict healthy" in got.stdout
        # Back in the count: the pool is one over its target and retires a node.
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: sum(1 for n in p.nodes
                                              if not n.state.is_terminal()) == 1,
                                what="back to one node")
        assert pool.awaiting_repair == []


async def test_a_passing_diagnostic_does_not_lift_an_operator_hold(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        _, status = await ready_pool(client, plane, min_nodes=1)
        a = status.nodes[0].node_id
        handle = client.get_workflow_handle(node_workflow_id(a))
        await handle.signal(NodeWorkflow.cordon, CordonInput(reason="diagnostics",
                                                             source="diagnostics"))
        held = await handle.execute_update(NodeWorkflow.cordon_op, CordonInput(reason="fan"))
        assert held.detail == "cordoned; also held by diagnostics"
        await handle.signal(NodeWorkflow.uncordon, UncordonInput(reason="diagnostics passed",
                                                                 source="diagnostics"))
        node = await eventually(lambda: node_status(client, a),
                                lambda n: [h.owner.value for h in n.holds] == ["operator"],
                                what="only the operator's hold left")
        assert node.state.value == "cordoned"
        assert node.transitions[-1].detail == "diagnostics passed; still held by operator"


async def test_an_uncordon_under_a_verdict_is_refused_and_a_clear_while_faulty_too(dev_env,
                                                                                   tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        _, status = await ready_pool(client, plane, min_nodes=1,
                                     health={"auto_replace": False})
        a = status.nodes[0].node_id
        plane.world.inject(a, "xid", value=79)
        await eventually(lambda: node_status(client, a),
                         lambda n: n.verdict.value == "unhealthy", what="verdict")
        refused = await navarch_cli(dev_env, "node", "uncordon", a)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (f"error: node {a}: uncordon refused: node is "
                                          "unhealthy (rule xid-needs-reset-or-reboot)")
        early = await navarch_cli(dev_env, "node", "clear", a)
        assert early.returncode == 1
        assert "the hardware still reports unhealthy (rule xid-needs-reset-or-reboot)" in (
            early.stderr)
        listed = await navarch_cli(dev_env, "node", "list", "--verdict", "unhealthy", "-o", "json")
        assert a in listed.stdout, listed.stderr


async def test_a_pool_spec_change_reaches_a_running_node_and_changes_its_next_verdict(
        dev_env, tmp_path):
    """Under the default policy Xid 13 (an application fault) only degrades. The pool is
    re-applied with a policy that judges it fatal: the running node adopts the policy
    (recorded), continues as new, and its next Xid 13 makes it unhealthy."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                        health={"auto_replace": False})
        a = status.nodes[0].node_id
        first_run = (await client.get_workflow_handle(node_workflow_id(a)).describe()).run_id
        strict = PolicyFile.model_validate({"version": "v1", "metadata": {"name": "strict"},
                                            "rules": [{"name": "any-xid-fatal",
                                                       "condition": 'event.event_type == "xid"',
                                                       "result": "unhealthy"},
                                                      {"name": "default", "condition": "true",
                                                       "result": "healthy"}]})
        changed = spec.model_copy(update={"health_policy": strict, "labels": {"team": "ml"},
                                          "instance_type": "a100-8x"})
        result = await client.get_workflow_handle(pool_workflow_id(spec.name)).execute_update(
            "update_spec", changed, result_type=PoolUpdateResult)
        assert result.detail == ("updated; 1 running node(s) adopt: health policy, labels; "
                                 "new nodes only: instance type")
        node = await eventually(lambda: node_status(client, a),
                                lambda n: n.transitions[-1].reason.value == "spec_adopted",
                                what="adopted")
        assert node.transitions[-1].detail == ("adopted the pool's spec: health policy, "
                                               "labels changed")
        await eventually(lambda: client.get_workflow_handle(node_workflow_id(a)).describe(),
                         lambda d: d.run_id != first_run, what="a new run")
        plane.world.inject(a, "xid", value=13)
        node = await eventually(lambda: node_status(client, a),
                                lambda n: n.verdict.value == "unhealthy", what="unhealthy")
        assert node.verdict_rule == "any-xid-fatal"


async def test_commands_queued_when_a_run_ends_carry_over_to_the_next(dev_env, tmp_path):
    """A spec change and a cordon land in the same workflow task (the worker was away): the
    spec change ends the run, and the cordon, still queued, is applied by the next run."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                        health={"auto_replace": False})
        world = plane.world
    a = status.nodes[0].node_id
    handle = client.get_workflow_handle(node_workflow_id(a))
    first_run = (await handle.describe()).run_id
    changed = spec.model_copy(update={"labels": {"team": "ml"}})
    await handle.signal(NodeWorkflow.update_spec, SpecUpdate(spec=changed))
    await handle.signal(NodeWorkflow.cordon, CordonInput(reason="kept across the run"))
    async with control_plane(client, tmp_path, world=world, task_queue=plane.task_queue):
        node: NodeStatus = await eventually(
            lambda: node_status(client, a), lambda n: n.state.value == "cordoned",
            what="cordoned by the carried command")
        assert (await handle.describe()).run_id != first_run
        assert transitions(node)[-2:] == [("ready", "spec_adopted"), ("cordoned", "operator")]
        assert node.transitions[-1].detail == "kept across the run"
        again = await handle.execute_update(NodeWorkflow.uncordon_op, UncordonInput(),
                                            result_type=NodeOperationResult)
        assert again.detail == "uncordoned"


async def test_a_flapping_node_stays_degraded_until_it_has_been_quiet(dev_env, tmp_path):
    """flap_limit 1 within 4 s: the second turn to degraded holds the node degraded after
    its checks pass, and a timer returns it to ready once the window has been quiet."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        _, status = await ready_pool(client, plane, min_nodes=1, health={
            "flap_limit": 1, "flap_window": timedelta(seconds=4)})
        a = status.nodes[0].node_id
        for _ in range(2):
            plane.world.inject(a, "xid", value=13)
            await eventually(lambda: node_status(client, a),
                             lambda n: n.health.value == "degraded", what="degraded")
            plane.world.clear(a)
            node = await eventually(lambda: node_status(client, a),
                                    lambda n: n.health.value == "healthy", what="healthy")
        assert node.state.value == "degraded" and node.held_degraded_until is not None
        assert "held degraded: turned degraded 2 times within 0:00:04" in (
            node.transitions[-1].detail)
        node = await eventually(lambda: node_status(client, a),
                                lambda n: n.state.value == "ready", within=15,
                                what="ready once quiet")
        assert node.transitions[-1].detail == ("quiet for the whole flap window; no longer "
                                               "held degraded")


async def test_a_pool_applied_again_after_termination_adopts_its_running_nodes(dev_env,
                                                                                tmp_path):
    """Terminating a pool's workflow leaves its machines running (their workflows are
    abandoned children). Started again, the pool takes them back: no new machines beside
    them, and their reports count (a fault on one is repaired and replaced)."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=2)
        ids = {n.node_id for n in status.nodes}
        await client.get_workflow_handle(pool_workflow_id(spec.name)).terminate("oops")
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: {n.node_id for n in p.nodes} == ids and p.ready == 2,
                                what="adopted")
        assert any(e.kind == "adopted" and e.detail.startswith("2 running node(s)")
                   for e in pool.events)
        assert len(plane.world.instances(spec.name, live_only=True)) == 2
        sick = sorted(ids)[0]
        plane.world.inject(sick, "xid", value=79)
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.replacements == 1 and p.ready == 2, within=60,
                                what="the adopted node repaired and replaced")
        assert len(plane.world.instances(spec.name, live_only=True)) == 2


async def test_reports_retried_from_before_an_adoption_do_not_roll_the_pools_view_back(
        dev_env, tmp_path):
    """The pool is terminated while its nodes boot; they go ready with no pool to tell, and
    their reports are retried with backoff. Applied again, the pool adopts them as they
    are (ready), and a retried older report (booting) landing after that cannot move a
    node back in the pool's view."""
    client = dev_env.client
    async with control_plane(client, tmp_path, boot_seconds=2.0) as plane:
        spec = fast_spec(min_nodes=2, max_nodes=3)
        await start_pool(client, plane, spec)
        # Booting: both machines exist (the pool is not told of a quick boot's phases).
        await eventually(lambda: asyncio.to_thread(plane.world.instances, spec.name),
                         lambda found: len(found) == 2, what="both machines")
        started = await pool_status(client, spec.name)
        assert started.ready == 0
        ids = {n.node_id for n in started.nodes}
        await client.get_workflow_handle(pool_workflow_id(spec.name)).terminate("oops")
        await asyncio.sleep(4)  # ready with no pool; their reports retry (1, 2, 4 s apart)
        await start_pool(client, plane, spec)
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: any(e.kind == "adopted" for e in p.events), what="adopted")
        await asyncio.sleep(8)  # every retried report has landed
        pool = await pool_status(client, spec.name)
        assert {n.node_id: n.state.value for n in pool.nodes} == dict.fromkeys(ids, "ready")


async def test_a_repeated_application_xid_escalates_and_the_count_survives_a_restart(dev_env,
                                                                                     tmp_path):
    """The default policy: Xid 13 degrades, the fifth on one GPU within an hour is fatal.
    Two before the control plane and its agents restart, three after: unhealthy."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        _, status = await ready_pool(client, plane, min_nodes=1,
                                     health={"auto_replace": False})
        a, world = status.nodes[0].node_id, plane.world
        for _ in range(2):
            world.inject(a, "xid", value=13, gpu_index=1)
            await asyncio.sleep(0.05)
        node = await eventually(lambda: node_status(client, a),
                                lambda n: len(n.occurrences) == 2, what="two counted")
        assert (node.state.value, node.verdict.value) == ("degraded", "healthy")
    async with control_plane(client, tmp_path, world=world, task_queue=plane.task_queue):
        for _ in range(3):
            world.inject(a, "xid", value=13, gpu_index=1)
            await asyncio.sleep(0.05)
        node = await eventually(lambda: node_status(client, a),
                                lambda n: n.verdict.value == "unhealthy", within=30,
                                what="unhealthy on the fifth")
        assert node.verdict_rule == "xid-app-repeated" and len(node.occurrences) == 5
        got = await navarch_cli(dev_env, "node", "get", a)
        assert "counted by xid-app-repeated on GPU 1: 5 event(s)" in got.stdout, got.stderr


async def test_a_verdict_survives_the_control_plane_and_agent_restarting(dev_env, tmp_path):
    """The fault goes away while every Navarch process is down: when they are back, the
    node's checks say healthy, and it is still judged unhealthy and held."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        _, status = await ready_pool(client, plane, min_nodes=1,
                                     health={"auto_replace": False})
        a, world = status.nodes[0].node_id, plane.world
        world.inject(a, "xid", value=79)
        await eventually(lambda: node_status(client, a),
                         lambda n: n.verdict.value == "unhealthy", what="verdict")
    world.clear(a)
    async with control_plane(client, tmp_path, world=world, task_queue=plane.task_queue):
        node = await eventually(lambda: node_status(client, a),
                                lambda n: n.health.value == "healthy"
                                and n.state.value == "cordoned", within=30,
                                what="back, healthy, still held")
        assert (node.verdict.value, node.owners()) == ("unhealthy", ["unhealthy"])
