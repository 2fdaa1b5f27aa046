"""What a booting node costs and tells its pool. A quick boot's phases are not reported one
by one (each report costs the node a workflow task and the pool a signal): the pool hears
from the node when it is ready. Capacity refusals met while provisioning are told at once,
so the pool steers its next nodes away. (A boot that outlasts a 30 s look at the agent, a
cloud's cold start, is told too; that wait is not run here.) The new machine's agent is
asked once: its boot checks, whose result carries the inventory that registers it."""

from __future__ import annotations

import json

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from navarch.agent import fake_host
from navarch.agent.activities import AgentActivities
from navarch.contracts import agent as agent_api
from navarch.contracts.agent import BootCheckInput, BootCheckResult
from navarch.contracts.names import node_workflow_id, pool_workflow_id
from navarch.contracts.node import NodeState, NodeStatus
from navarch.contracts.spec import ProviderChoice
from navarch.decisions.node import tells_pool
from navarch.workflows.node import NODE_PATCHES
from navarch.workflows.registry import WORKFLOWS

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    ready_pool,
    start_pool,
    transitions,
)


async def reports_per_node(client, pool: str) -> dict[str, list[str]]:
    """The node_state_changed signals in the pool's history: each node's reported states."""
    seen: dict[str, list[str]] = {}
    history = await client.get_workflow_handle(pool_workflow_id(pool)).fetch_history()
    converter = client.data_converter
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attrs = event.workflow_execution_signaled_event_attributes
        if attrs.signal_name != "node_state_changed":
            continue
        [report] = await converter.decode(attrs.input.payloads)
        seen.setdefault(report["node_id"], []).append(report["state"])
    return seen


async def test_a_quick_boot_is_one_report_ready(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, pool = await ready_pool(client, plane, min_nodes=3)
        reports = await reports_per_node(client, spec.name)
        assert reports == {n.node_id: ["ready"] for n in pool.nodes}
        assert {n.provider for n in pool.nodes} == {"sim"}  # the pool still knows where


async def test_capacity_refusals_reach_the_pool_before_the_node_is_ready(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path, boot_seconds=3.0) as plane:
        plane.world.set_cloud_fault("capacity", 100, provider="a")
        spec = fast_spec(min_nodes=1, providers=[
            ProviderChoice(name="a", type="fake", instance_type="h100-8x", priority=1),
            ProviderChoice(name="b", type="fake", instance_type="h100-8x", priority=2)])
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: bool(p.capacity_misses), what="refusal told")
        assert pool.ready == 0 and list(pool.capacity_misses) == ["a/-/-/h100-8x"]
        assert pool.counts == {"booting": 1}
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1,
                                what="ready")
        [reports] = (await reports_per_node(client, spec.name)).values()
        assert reports == ["booting", "ready"]


def test_which_changes_a_node_tells_its_pool_at_once():
    quiet = {state: tells_pool(state, quiet_boot=True, new_refusals=False)
             for state in NodeState}
    assert {s for s, told in quiet.items() if not told} == {
        NodeState.PROVISIONING, NodeState.BOOTING, NodeState.BOOT_CHECKING}
    assert tells_pool(NodeState.BOOTING, quiet_boot=True, new_refusals=True)
    assert all(tells_pool(s, quiet_boot=False, new_refusals=False) for s in NodeState)


async def test_a_node_the_pool_starts_records_no_patch_markers_and_still_replays(dev_env,
                                                                                 tmp_path):
    """The pool tells a new node which patches are in force: no marker and no
    TemporalChangeVersion upsert per patch; a node started without that (from the CLI)
    records them as before. Both replay."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        _, pool = await ready_pool(client, plane, min_nodes=1)
        history: WorkflowHistory = await client.get_workflow_handle(
            node_workflow_id(pool.nodes[0].node_id)).fetch_history()
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in kinds
    upserts = [e.upsert_workflow_search_attributes_event_attributes.search_attributes
               for e in history.events
               if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES]
    assert upserts and not [u for u in upserts if "TemporalChangeVersion" in u.indexed_fields]
    started = history.events[0].workflow_execution_started_event_attributes
    [node_input] = await client.data_converter.decode(started.input.payloads)
    assert sorted(node_input["patches"]) == sorted(NODE_PATCHES)
    await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter
                   ).replay_workflow(history)


async def test_a_fault_is_one_report_cordoned_and_awaiting_repair(dev_env, tmp_path):
    """The cordon and the repair request of one fault happen in one workflow task and reach
    the pool as one signal (a thousand faults at once were two thousand signals)."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=1,
                                        health={"auto_replace": False})
        node_id = status.nodes[0].node_id
        plane.world.inject(node_id, "xid", value=79)
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "cordoned", what="cordoned")
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.awaiting_repair == [node_id], what="asked")
        assert (await reports_per_node(client, spec.name))[node_id] == ["ready", "cordoned"]
        [node] = pool.nodes
        assert node.state.value == "cordoned" and node.awaiting_repair


async def boot_calls(client, node_id: str) -> tuple[list[str], list[str]]:
    """A node's activities, in the order it scheduled them, and the node states it
    published as search attributes."""
    history = await client.get_workflow_handle(node_workflow_id(node_id)).fetch_history()
    activities, published = [], []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            published.append(json.loads(fields.indexed_fields["NavarchNodeState"].data))
    return activities, published


async def one_node_booted(client, tmp_path) -> tuple[NodeStatus, list[str], list[str]]:
    """A one-node pool brought to ready: its node's status, activities and published
    states (boot_calls)."""
    async with control_plane(client, tmp_path) as plane:
        _, pool = await ready_pool(client, plane, min_nodes=1)
        node_id = pool.nodes[0].node_id
        node = await node_status(client, node_id)
        activities, published = await boot_calls(client, node_id)
    return node, activities, published


async def test_a_new_machine_is_registered_and_checked_in_one_agent_call(dev_env, tmp_path):
    """Boot checks first: their result carries the inventory, so registering the machine
    and judging it is one activity and one workflow task. Both transitions are kept; only
    where the task ends (ready) is published."""
    node, activities, published = await one_node_booted(dev_env.client, tmp_path)
    assert activities == ["cloud.provision", "agent.boot_check", "agent.watch_health"]
    assert published == ["provisioning", "booting", "ready"]
    assert transitions(node)[-2:] == [("boot_checking", "agent_registered"),
                                      ("ready", "boot_check_passed")]
    registered, ready = node.transitions[-2:]
    assert registered.detail.startswith("8 GPU(s), driver ") and registered.at == ready.at
    assert len(node.gpus) == 8 and node.hostname and node.boot_id
    assert {c.name: c.status for c in node.boot_checks}["gpu_count"] == "pass"


class OlderAgent(AgentActivities):
    """The agent before its boot checks carried the inventory."""

    @activity.defn(name=agent_api.BOOT_CHECK)
    async def boot_check(self, params: BootCheckInput) -> BootCheckResult:
        result = await super().boot_check(params)
        return BootCheckResult(passed=result.passed, checks=result.checks)


async def test_an_agent_whose_boot_checks_carry_no_inventory_is_asked_for_it(
        dev_env, tmp_path, monkeypatch):
    """An agent from before the checks carried the inventory (a fleet mid-upgrade): the
    node asks it for the inventory after the checks pass, as two calls."""
    monkeypatch.setattr(fake_host, "AgentActivities", OlderAgent)
    node, activities, _ = await one_node_booted(dev_env.client, tmp_path)
    assert activities == ["cloud.provision", "agent.boot_check", "agent.gpu_inventory",
                          "agent.watch_health"]
    assert [s for s, _ in transitions(node)] == ["provisioning", "booting", "boot_checking",
                                                 "ready"]
    assert len(node.gpus) == 8 and node.hostname


async def test_a_machine_whose_driver_fails_its_boot_never_serves(dev_env, tmp_path):
    """The driver does not answer at boot: the checks fail without an inventory, the node
    leaves as boot_check_failed saying why, and the pool replaces it."""
    client = dev_env.client
    async with control_plane(client, tmp_path, boot_seconds=2.0) as plane:
        spec = fast_spec(min_nodes=1)
        await start_pool(client, plane, spec)
        [first] = await eventually(lambda: _instances(plane, spec.name), bool,
                                   what="a machine")
        plane.world.inject(first.node_id, "nvml_failure")
        node = await eventually(lambda: node_status(client, first.node_id),
                                lambda n: n.state.is_terminal(), what="left")
        assert "boot_checking" not in [s for s, _ in transitions(node)]
        leaving = next(t for t in node.transitions if t.reason.value == "boot_check_failed")
        assert leaving.detail == "driver: NVML: Unknown Error (injected)"
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1,
                                what="replaced")
        [serving] = [n.node_id for n in pool.nodes if n.state.value == "ready"]
        assert serving != first.node_id


async def _instances(plane, pool: str):
    return plane.world.instances(pool)
