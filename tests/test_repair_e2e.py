"""The repair ladder on the real dev server, the real workflows and simulated hosts on the
fake cloud: a reset-class Xid resets the GPU and the node returns after validation; a
reboot-class fault reboots the machine; the same fault after two reboots replaces it; a
reboot whose machine never comes back replaces it; a reset refused because work still holds
the GPU moves up to a reboot; an operator's hold stops the ladder; a cloud with no reboot
call has the agent reboot its host. The rung rules themselves are table-tested in
test_decisions.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from navarch.contracts.node import NodeStatus

from lifecycle_helpers import (
    SimPlane,
    control_plane,
    eventually,
    navarch_cli,
    node_status,
    pool_status,
    ready_pool,
)

LADDER: dict[str, Any] = {
    "remediation": ["reset", "reboot", "replace"],
    "reboot_timeout": timedelta(seconds=15),
    "validation": [{"kind": "dcgm", "level": 2}],
}


def repairs(node: NodeStatus) -> list[tuple[str, str, str]]:
    return [(r.rung, r.fault, r.outcome) for r in node.repairs]


async def ladder_pool(client, plane: SimPlane, **health: Any) -> str:
    plane.world.simulate_diagnostics()  # the validation's DCGM run answers from the faults
    _, status = await ready_pool(client, plane, min_nodes=1, health={**LADDER, **health})
    return status.nodes[0].node_id


async def back_in_service(client, node_id: str, count: int) -> NodeStatus:
    return await eventually(
        lambda: node_status(client, node_id),
        lambda n: len([r for r in n.repairs if r.outcome == "returned"]) >= count
        and n.state.value == "ready", within=60, what=f"repair {count} returned the node")


async def test_a_reset_class_xid_resets_the_gpu_and_the_node_returns_after_validation(
        dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        a = await ladder_pool(client, plane)
        plane.world.add_process(a, 4242, gpu_index=2, name="train.py")
        plane.world.inject(a, "xid", gpu_index=2, value=119)  # GSP RPC timeout: RESET_GPU
        await eventually(lambda: node_status(client, a), lambda n: n.state.value == "repairing",
                         what="repairing")
        plane.world.remove_process(a, 4242)  # the job ends within the drain's grace
        node = await back_in_service(client, a, 1)
        assert repairs(node) == [("reset", "xid 119", "returned")]
        assert (node.verdict.value, node.holds) == ("healthy", [])
        assert plane.world.counter("gpu_resets") == 1 and plane.world.counter("reboots") == 0
        assert plane.world.counter("provisioned") == 1  # no new machine
        story = [(t.to_state.value, t.reason.value, t.detail) for t in node.transitions]
        assert any(s == "repairing" and "reset for xid 119" in d and "reset 1/1, reboot 0/2" in d
                   for s, _, d in story), story
        assert any("GPU 2 reset" in d for _, _, d in story), story
        assert story[-1][:2] == ("ready", "repaired")
        assert "dcgm level 2 passed" in story[-1][2], story[-1]
        # The operator sees the ladder's record.
        shown = await navarch_cli(dev_env, "node", "get", a)
        assert "reset for xid 119: returned after" in shown.stdout, shown.stdout + shown.stderr
        # And so does the Temporal UI, in the node workflow's current details.
        details = (await client.get_workflow_handle(f"node/{a}").query(
            "__temporal_workflow_metadata")).current_details
        assert "repairs: reset xid 119 ×1 · last: reset returned" in details, details
        pool = await pool_status(client, node.pool)
        assert pool.ready == 1 and len(pool.nodes) == 1


async def test_the_same_reboot_class_fault_after_two_reboots_replaces_the_machine(
        dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        a = await ladder_pool(client, plane)
        boot = (await node_status(client, a)).boot_id
        for count in (1, 2):
            plane.world.inject(a, "xid", value=151)  # RESTART_VM: a reboot-class Xid
            node = await back_in_service(client, a, count)
            assert node.boot_id != boot, "the agent answered from a new boot"
            boot = node.boot_id
        assert repairs(node) == [("reboot", "xid 151", "returned")] * 2
        assert plane.world.counter("reboots") == 2
        plane.world.inject(a, "xid", value=151)  # a third time: the hardware, not the boot
        gone = await eventually(lambda: node_status(client, a),
                                lambda n: n.state.value == "terminated", within=60,
                                what="replaced")
        last = gone.transitions[-1]
        assert last.reason.value == "unhealthy" and "2 reboot(s) for xid 151" in last.detail
        await eventually(lambda: pool_status(client, gone.pool),
                         lambda p: p.ready == 1 and a not in [n.node_id for n in p.nodes
                                                              if n.state.value == "ready"],
                         within=60, what="a replacement serving")
        assert plane.world.counter("reboots") == 2


async def test_a_reboot_whose_machine_never_comes_back_is_replaced(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        a = await ladder_pool(client, plane, reboot_timeout=timedelta(seconds=4))
        plane.world.set_cloud_fault("reboot_hang")
        plane.world.inject(a, "xid", value=151)
        gone = await eventually(lambda: node_status(client, a),
                                lambda n: n.state.value == "terminated", within=60,
                                what="replaced")
        assert repairs(gone) == [("reboot", "xid 151", "no_return")]
        assert "no agent of a new boot within 0:00:04" in gone.repairs[0].detail
        assert gone.transitions[-1].reason.value == "unhealthy"


async def test_a_reset_refused_while_work_holds_the_gpu_moves_up_to_a_reboot(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        a = await ladder_pool(client, plane, drain_grace=timedelta(seconds=1))
        plane.world.add_process(a, 7, gpu_index=0, name="stuck")  # never ends by itself
        plane.world.inject(a, "xid", value=62)  # PMU halt: RESET_GPU, healed by a reboot too
        node = await back_in_service(client, a, 1)
        assert repairs(node) == [("reset", "xid 62", "failed"), ("reboot", "xid 62", "returned")]
        assert "processes still hold the GPU: GPU 0: pid 7" in node.repairs[0].detail
        assert plane.world.counter("gpu_resets") == 0 and plane.world.counter("reboots") == 1


async def test_an_operators_hold_stops_the_ladder_until_they_release_it(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        a = await ladder_pool(client, plane, drain_grace=timedelta(seconds=3))
        plane.world.add_process(a, 7, gpu_index=0, name="stuck")
        plane.world.inject(a, "xid", value=62)
        await eventually(lambda: node_status(client, a), lambda n: n.state.value == "repairing",
                         what="repairing")
        held = await navarch_cli(dev_env, "node", "cordon", a, "--reason", "look first")
        assert held.returncode == 0, held.stderr
        # The reset is refused (work holds the GPU); the reboot above it waits for the person.
        node = await eventually(lambda: node_status(client, a),
                                lambda n: n.state.value == "cordoned"
                                and "waits for them" in n.transitions[-1].detail,
                                within=30, what="the ladder stopped")
        assert repairs(node) == [("reset", "xid 62", "failed")]
        assert [h.owner.value for h in node.holds] == ["unhealthy", "operator"]
        assert plane.world.counter("reboots") == 0
        # A node a person holds fills no place: the pool brought up another meanwhile. Once
        # released, the unhealthy one is the surplus and is retired, never rebooted.
        await eventually(lambda: pool_status(client, node.pool),
                         lambda p: p.ready == 1 and len(p.nodes) == 2, what="a stand-in")
        released = await navarch_cli(dev_env, "node", "uncordon", a)
        assert released.returncode == 0, released.stderr
        node = await eventually(lambda: node_status(client, a),
                                lambda n: n.state.value == "terminated", what="retired")
        assert node.transitions[-1].reason.value == "scale_down"
        assert plane.world.counter("reboots") == 0


async def test_a_cloud_without_a_reboot_call_has_the_agent_reboot_its_host(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        a = await ladder_pool(client, plane, validation=[])
        plane.world.set_cloud_fault("no_reboot")
        plane.world.inject(a, "nvml_failure")  # the driver lost the GPU: gpu-lost, reboot
        node = await back_in_service(client, a, 1)
        assert repairs(node) == [("reboot", "gpu-lost", "returned")]
        story = " | ".join(t.detail for t in node.transitions)
        assert "could not reboot it" in story and "simulated systemctl reboot" in story, story
        assert "boot checks passed" in node.transitions[-1].detail
