"""The Kubernetes notifier through the official `kubernetes` client, against a local server
that speaks the Node, Pod and Eviction endpoints Navarch uses (no API server binary can be
installed here: this is not a real cluster). Cordon marks the Node four ways; the drain
evicts the pods a drain must move, waits out a PodDisruptionBudget, and deletes what is
left at the grace's end; only Navarch's own cordon is lifted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fake_kube_api import FakeKubeApi

from navarch.activities.notifier import drain_status, force_drain, notify
from navarch.config.schema import KubernetesNotifierConfig, NotifierConfig
from navarch.contracts.notifier import (
    DrainStatusInput,
    ForceDrainInput,
    NotifyInput,
    SchedulerNode,
)

NODE = SchedulerNode(node_id="n-1", instance_id="i-0abc", provider_type="aws",
                     zone="us-east-1a")


@pytest.fixture
def kube(tmp_path, monkeypatch):
    with FakeKubeApi() as api:
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path)))
        yield api


def config(**kw) -> NotifierConfig:
    return NotifierConfig(type="kubernetes", kubernetes=KubernetesNotifierConfig(**kw))


async def tell(cfg, event, reason="", node=NODE):
    return await notify(NotifyInput(notifier=cfg, event=event, node_id=node.node_id,
                                    reason=reason, timestamp=datetime.now(UTC), target=node))


async def status(cfg, node=NODE, probe_only=False):
    return await drain_status(DrainStatusInput(notifier=cfg, node_id=node.node_id,
                                               target=node, probe_only=probe_only))


async def test_cordon_marks_the_node_and_uncordon_lifts_only_navarchs(kube):
    kube.add_node("ip-10-0-0-1", provider_id="aws:///us-east-1a/i-0abc")  # by providerID
    cfg = config()
    await tell(cfg, "cordon", "rule xid-fatal: Xid 79")
    node = kube.nodes["ip-10-0-0-1"]
    assert node["spec"]["unschedulable"] is True
    assert {"key": "navarch.io/cordoned", "value": "true", "effect": "NoSchedule"} in \
        node["spec"]["taints"]
    assert node["metadata"]["annotations"]["navarch.io/cordoned-by"] == "navarch"
    cond = next(c for c in node["status"]["conditions"] if c["type"] == "NavarchCordoned")
    assert (cond["status"], cond["message"]) == ("True", "rule xid-fatal: Xid 79")
    assert any(c["type"] == "Ready" for c in node["status"]["conditions"])  # kept
    await tell(cfg, "uncordon", "recovered")
    node = kube.nodes["ip-10-0-0-1"]
    assert "unschedulable" not in node["spec"] and node["spec"]["taints"] == []
    assert "navarch.io/cordoned-by" not in node["metadata"]["annotations"]


async def test_someone_elses_cordon_is_left_and_reported(kube):
    kube.add_node("gpu-7", node_id="n-1", unschedulable=True)  # by label; an admin's cordon
    cfg = config()
    await tell(cfg, "cordon", "rule xid-fatal")
    await tell(cfg, "uncordon", "recovered")
    node = kube.nodes["gpu-7"]
    assert node["spec"]["unschedulable"] is True
    assert "navarch.io/cordoned-by" not in node["metadata"]["annotations"]
    probe = await status(cfg, probe_only=True)
    assert probe.foreign_hold == "kubernetes node gpu-7 cordoned by someone else"
    assert kube.evictions == []  # a probe never evicts


async def test_drain_evicts_what_must_move_waits_out_a_pdb_and_deletes_at_the_end(kube):
    kube.add_node("gpu-7", node_id="n-1")
    kube.add_pod("ml", "trainer", "gpu-7")
    kube.add_pod("ml", "server", "gpu-7")
    kube.add_pod("kube-system", "dcgm-exporter", "gpu-7", owner="DaemonSet")
    kube.add_pod("kube-system", "static", "gpu-7", mirror=True)
    kube.add_pod("ml", "done", "gpu-7", phase="Succeeded")
    kube.pdb_blocks[("ml", "server")] = 1  # the budget allows no disruption, once
    cfg = config()
    await tell(cfg, "drain", "operator")
    first = await status(cfg)
    assert not first.drained and first.remaining == 2
    assert "1 held by a PodDisruptionBudget" in first.message
    assert kube.evictions == [("ml", "trainer")]
    second = await status(cfg)  # the PDB allows it now; the trainer has terminated
    assert kube.evictions == [("ml", "trainer"), ("ml", "server")]
    assert not second.drained and second.remaining == 1
    done = await status(cfg)
    assert done.drained and done.known and done.message.endswith("no pods left to evict")
    assert ("kube-system", "dcgm-exporter") in kube.pods  # DaemonSet and mirror pods stay

    kube.add_pod("ml", "stubborn", "gpu-7")
    kube.pdb_blocks[("ml", "stubborn")] = 100
    assert not (await status(cfg)).drained
    forced = await force_drain(ForceDrainInput(notifier=cfg, target=NODE))
    assert (forced.action, forced.count) == ("deleted", 1) and kube.deleted == [
        ("ml", "stubborn")]
    waiting = await force_drain(ForceDrainInput(notifier=config(on_grace_end="wait"),
                                                target=NODE))
    assert waiting.action == "none"


async def test_an_unknown_node_and_a_down_api_server_are_never_drained(kube):
    cfg = config()
    unknown = await status(cfg)
    assert not unknown.drained and not unknown.known
    assert "kubernetes has no Node for n-1" in unknown.message
    kube.down = True
    with pytest.raises(Exception) as info:
        await status(cfg)
    assert type(info.value).__name__ == "SchedulerUnreachable"
    assert "503" in str(info.value)


def test_provider_ids_as_the_clouds_kubelets_set_them():
    assert NODE.provider_id() == "aws:///us-east-1a/i-0abc"
    gce = SchedulerNode(node_id="x", instance_id="us-central1-a/nv-x", provider_type="gcp",
                        project="ml-prod")
    assert gce.provider_id() == "gce://ml-prod/us-central1-a/nv-x"
    assert SchedulerNode(node_id="x", provider_type="lambda", instance_id="i").provider_id() \
        == ""


async def test_a_fatal_xid_cordons_and_drains_through_kubernetes_end_to_end(
        dev_env, tmp_path, kube):
    """The real workflows on the dev server: the Node is cordoned, its pod evicted (after a
    PodDisruptionBudget's refusal), and only then the machine terminated."""
    from datetime import timedelta

    from navarch.contracts.node import TransitionReason

    from lifecycle_helpers import control_plane, eventually, node_status, ready_pool

    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        notifier = NotifierConfig(type="kubernetes", kubernetes=KubernetesNotifierConfig(
            check_interval=timedelta(seconds=1)))
        spec, status = await ready_pool(client, plane, min_nodes=1, notifier=notifier,
                                        health={"drain_grace": timedelta(seconds=20)})
        node = status.nodes[0].node_id
        kube.add_node("gpu-1", node_id=node)
        kube.add_pod("ml", "trainer", "gpu-1")
        kube.pdb_blocks[("ml", "trainer")] = 2
        plane.world.inject(node, "xid", value=79)
        done = await eventually(lambda: node_status(client, node),
                                lambda n: n.state.is_terminal(), within=60, what="gone")
        assert kube.nodes["gpu-1"]["spec"]["unschedulable"] is True
        assert kube.evictions == [("ml", "trainer")]
        said = [t.detail for t in done.transitions if t.reason is TransitionReason.SCHEDULER]
        assert any("held by a PodDisruptionBudget" in d for d in said), said
        assert done.transitions[-1].detail.endswith(
            "drained: kubernetes node gpu-1: no pods left to evict")
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("test over")
