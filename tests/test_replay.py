"""Replay recorded histories against today's workflow code: a change that would break
running workflows (non-determinism) fails here instead of in production.

Histories live in tests/histories/. Record new ones (after a deliberate, patched change) with

    NAVARCH_RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/test_replay.py

Earlier recordings stay: they are what workflows started by earlier code look like, and
today's code must still replay them (the old side of each `workflow.patched`).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from navarch.contracts.diagnostics import DiagnosticsInput
from navarch.contracts.node import NodeOperationResult
from navarch.contracts.pool import PoolUpdateResult
from navarch.contracts.spec import ProviderChoice
from navarch.contracts.sweep import SweepConfig, SweepInput, SweepStatus, SweepTarget
from navarch.temporal.identity import namespace_cluster_id
from navarch.workflows.diagnostics import DiagnosticsWorkflow
from navarch.workflows.registry import WORKFLOWS

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    start_pool,
)

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("NAVARCH_RECORD_HISTORIES") == "1"


def _files() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_histories_of_every_workflow_type_are_recorded():
    kinds = {json.loads(p.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
             ["workflowType"]["name"] for p in _files()}
    assert {"PoolWorkflow", "NodeWorkflow", "DiagnosticsWorkflow", "OrphanSweepWorkflow"} <= kinds


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.stem)
async def test_recorded_history_replays(path):
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


@pytest.mark.skipif(not RECORD, reason="set NAVARCH_RECORD_HISTORIES=1 to record histories")
async def test_record_histories(dev_env, tmp_path):
    """A pool's life with every kind of step: boot, degraded and back, operator cordon and
    uncordon, diagnostics of the pool and of one named node, a node cordoned by an operator
    then judged unhealthy (the repair waits), its fault gone (the verdict stands), released
    by the operator, retired; a spec change adopted by a running node; a scale-down."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(name="replay", min_nodes=2)
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 2)
        first, second = (n.node_id for n in pool.nodes)
        plane.world.inject(first, "xid", value=13)
        await eventually(lambda: node_status(client, first), lambda n: n.state.value == "degraded")
        plane.world.clear(first)
        await eventually(lambda: node_status(client, first), lambda n: n.state.value == "ready")
        node = client.get_workflow_handle(f"node/{first}")
        await node.signal("cordon", {"reason": "replay"})
        await eventually(lambda: node_status(client, first), lambda n: n.state.value == "cordoned")
        await node.signal("uncordon")
        await eventually(lambda: node_status(client, first), lambda n: n.state.value == "ready")
        # The same as confirmed updates, and one signal refused (it stays in history).
        await node.execute_update("cordon", {"reason": "replay"}, result_type=NodeOperationResult)
        await node.execute_update("uncordon", {}, result_type=NodeOperationResult)
        await node.signal("drain", {"grace_seconds": "soon"})
        await node.signal("check_upgrade")  # unversioned: it wakes, and nothing is due
        diagnostics_id = "diagnostics/replay"
        await client.execute_workflow(
            DiagnosticsWorkflow.run,
            DiagnosticsInput(pool=spec.name, checks=spec.diagnostics.checks,
                             heartbeat_timeout=spec.heartbeat_timeout),
            id=diagnostics_id, task_queue=plane.task_queue)
        await client.execute_workflow(
            DiagnosticsWorkflow.run,
            DiagnosticsInput(pool=spec.name, checks=spec.diagnostics.checks, nodes=[first],
                             heartbeat_timeout=spec.heartbeat_timeout),
            id=f"{diagnostics_id}-one", task_queue=plane.task_queue)
        await client.get_workflow_handle(f"node/{second}").signal("cordon", {"reason": "rma"})
        await eventually(lambda: node_status(client, second),
                         lambda n: n.state.value == "cordoned")
        plane.world.inject(second, "xid", value=79)
        # Held by the operator: the verdict is recorded, the repair waits for them.
        await eventually(lambda: node_status(client, second),
                         lambda n: n.verdict.value == "unhealthy")
        plane.world.clear(second)
        await eventually(lambda: node_status(client, second),
                         lambda n: n.health.value == "healthy")  # the verdict stands
        second_handle = client.get_workflow_handle(f"node/{second}")
        await second_handle.execute_update("uncordon", {"by": "replay"},
                                           result_type=NodeOperationResult)  # released
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: p.ready == 2 and next(
                             n for n in p.nodes if n.node_id == second).state.is_terminal())
        # A spec change reaches the running nodes (each adopts it and continues as new).
        first_run = (await client.get_workflow_handle(f"node/{first}").describe()).run_id
        changed = spec.model_copy(update={"labels": {"replay": "yes"}})
        await client.get_workflow_handle(f"pool/{spec.name}").execute_update(
            "update_spec", changed, result_type=PoolUpdateResult)
        await eventually(lambda: node_status(client, first),
                         lambda n: n.transitions[-1].reason.value == "spec_adopted")
        pool_handle = client.get_workflow_handle(f"pool/{spec.name}")
        await pool_handle.execute_update("scale", {"target": 1, "min_nodes": 1},
                                         result_type=PoolUpdateResult)
        await pool_handle.signal("node_state_changed", {"node_id": "ghost"})
        await eventually(lambda: pool_status(client, spec.name),
                         lambda p: sum(1 for n in p.nodes if not n.state.is_terminal()) == 1)
        await pool_handle.signal("delete")
        await pool_handle.result()
        HISTORIES.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")  # never over an older generation
        runs: list[tuple[str, str | None]] = [
            (f"pool/{spec.name}", None), (diagnostics_id, None), (f"{diagnostics_id}-one", None),
            (f"node/{first}", first_run), (f"node/{first}", None), (f"node/{second}", None)]
        for workflow_id, run_id in runs:  # the first node: the run that adopted, and the next
            history = await client.get_workflow_handle(workflow_id,
                                                       run_id=run_id).fetch_history()
            kind = workflow_id.split("/")[0]
            path = HISTORIES / (f"{stamp}-{kind}-{workflow_id.split('/')[1][-8:]}-"
                                f"{len(history.events)}-events.json")
            path.write_text(json.dumps(history.to_json_dict(), indent=1))


@pytest.mark.skipif(not RECORD, reason="set NAVARCH_RECORD_HISTORIES=1 to record histories")
async def test_record_sweep_histories(dev_env, tmp_path):
    """The orphan sweep's life (an orphan of this installation terminated, another's left,
    a reconfiguration, a sweep on demand) and a node told its machine is gone."""
    client = dev_env.client
    ours = await namespace_cluster_id(client)
    choice = ProviderChoice(name="replay-sweep", type="fake", instance_type="h100-8x")
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(name="replay-sweep", min_nodes=1, providers=[choice],
                         health={"unreachable_toleration": timedelta(minutes=30)})
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1)
        node = pool.nodes[0].node_id
        for name, cluster in (("ghost", ours), ("theirs", "another-install")):
            plane.world.provision(node_id=f"{name}-{node[:6]}", pool=spec.name,
                                  provider=choice.name, instance_type="h100-8x",
                                  region="local", zone="", gpu_count=8, gpu_model="H100",
                                  cluster=cluster)
        config = SweepConfig(interval=timedelta(seconds=1), grace=timedelta(seconds=1),
                             targets=[SweepTarget(provider=choice, region="local")])
        sweep = await client.start_workflow("OrphanSweepWorkflow", SweepInput(config=config),
                                            id="orphan-sweep-replay",
                                            task_queue=plane.task_queue)
        await eventually(lambda: sweep.query("status", result_type=SweepStatus),
                         lambda st: st.terminated == 1)
        await sweep.execute_update("configure", config.model_copy(
            update={"mode": "report"}), result_type=str)
        await sweep.execute_update("sweep_now", result_type=SweepStatus)
        await sweep.signal("check_upgrade")  # unversioned: an early sweep, no move
        machine = plane.world.get_by_node(node)
        assert machine is not None
        plane.world.terminate(machine.instance_id)
        await eventually(lambda: node_status(client, node), lambda n: n.state.is_terminal())
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        for workflow_id in ("orphan-sweep-replay", f"node/{node}"):
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            kind = workflow_id.split("/")[0].split("-replay")[0]
            path = HISTORIES / f"{stamp}-{kind}-{node[-8:]}-{len(history.events)}-events.json"
            path.write_text(json.dumps(history.to_json_dict(), indent=1))
        await sweep.terminate("recorded")
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("recorded")


@pytest.mark.skipif(not RECORD, reason="set NAVARCH_RECORD_HISTORIES=1 to record histories")
async def test_record_scheduler_histories(dev_env, tmp_path, monkeypatch):
    """A node draining through a workload scheduler (the local Kubernetes API server): not
    known there yet, held by someone else's cordon and returned, then a fatal Xid: cordoned,
    its pod evicted after a PDB's refusal, terminated."""
    from fake_kube_api import FakeKubeApi

    from navarch.config.schema import KubernetesNotifierConfig, NotifierConfig

    with FakeKubeApi() as kube:
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path)))
        client = dev_env.client
        notifier = NotifierConfig(type="kubernetes", kubernetes=KubernetesNotifierConfig(
            check_interval=timedelta(milliseconds=500)))
        async with control_plane(client, tmp_path) as plane:
            spec = fast_spec(name="replay-k8s", min_nodes=1, notifier=notifier,
                             health={"drain_grace": timedelta(seconds=10)})
            await start_pool(client, plane, spec)
            pool = await eventually(lambda: pool_status(client, spec.name),
                                    lambda p: p.ready == 1)
            node = pool.nodes[0].node_id
            await eventually(lambda: node_status(client, node), lambda n: any(
                t.reason.value == "scheduler" for t in n.transitions))  # not known yet
            kube.add_node("gpu-1", node_id=node, unschedulable=True)
            await eventually(lambda: node_status(client, node),
                             lambda n: n.state.value == "cordoned")
            kube.nodes["gpu-1"]["spec"]["unschedulable"] = False
            await eventually(lambda: node_status(client, node),
                             lambda n: n.state.value == "ready")
            kube.add_pod("ml", "trainer", "gpu-1")
            kube.pdb_blocks[("ml", "trainer")] = 1
            plane.world.inject(node, "xid", value=79)
            await eventually(lambda: node_status(client, node),
                             lambda n: n.state.is_terminal(), within=60)
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
            history = await client.get_workflow_handle(f"node/{node}").fetch_history()
            path = HISTORIES / f"{stamp}-node-k8s-{node[-8:]}-{len(history.events)}-events.json"
            path.write_text(json.dumps(history.to_json_dict(), indent=1))
            await client.get_workflow_handle(f"pool/{spec.name}").terminate("recorded")


@pytest.mark.skipif(not RECORD, reason="set NAVARCH_RECORD_HISTORIES=1 to record histories")
async def test_record_repair_histories(dev_env, tmp_path):
    """A node on the repair ladder: a reset-class Xid reset and validated; a reset refused
    (work holds the GPU) moved up to a reboot, validated; a hardware Xid replaced."""
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        plane.world.simulate_diagnostics()
        spec = fast_spec(name="replay-ladder", min_nodes=1, health={
            "remediation": ["reset", "reboot", "replace"], "drain_grace": timedelta(seconds=1),
            "reboot_timeout": timedelta(seconds=15)})
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1)
        node = pool.nodes[0].node_id

        def returned(count: int):
            return lambda n: (n.state.value == "ready"
                              and sum(r.outcome == "returned" for r in n.repairs) == count)

        plane.world.inject(node, "xid", gpu_index=1, value=119)
        await eventually(lambda: node_status(client, node), returned(1), within=60)
        plane.world.add_process(node, 9, gpu_index=0)
        plane.world.inject(node, "xid", value=62)
        await eventually(lambda: node_status(client, node), returned(2), within=60)
        plane.world.inject(node, "xid", value=79)
        await eventually(lambda: node_status(client, node), lambda n: n.state.is_terminal(),
                         within=60)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        history = await client.get_workflow_handle(f"node/{node}").fetch_history()
        path = HISTORIES / f"{stamp}-node-ladder-{node[-8:]}-{len(history.events)}-events.json"
        path.write_text(json.dumps(history.to_json_dict(), indent=1))
        await client.get_workflow_handle(f"pool/{spec.name}").terminate("recorded")
