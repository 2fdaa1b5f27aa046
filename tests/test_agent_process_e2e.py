"""The `navarch-agent` process itself (fake backend, on purpose) serving a node on the real
dev server: registration by polling, health judged, SIGTERM exits cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

from navarch.contracts.names import node_workflow_id
from navarch.contracts.node import NodeInput
from navarch.workflows.node import NodeWorkflow

from lifecycle_helpers import control_plane, eventually, fast_spec, node_status


async def test_agent_process_registers_reports_health_and_stops_cleanly(dev_env, tmp_path):
    client = dev_env.client
    address = client.service_client.config.target_host
    async with control_plane(client, tmp_path, simulate_hosts=False) as plane:
        spec = fast_spec(min_nodes=1)
        node_id = f"agent-{spec.name}"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            metrics_port = s.getsockname()[1]
        await client.start_workflow(NodeWorkflow.run, NodeInput(node_id=node_id, spec=spec),
                                    id=node_workflow_id(node_id), task_queue=plane.task_queue)
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "booting", what="booting")
        agent = subprocess.Popen(  # noqa: ASYNC220 - the agent runs beside the test
            [str(Path(sys.executable).parent / "navarch-agent"), "--node-id", node_id,
             "--fake-gpus", "8", "--fake-world", str(plane.world.path),
             "--temporal-address", address, "--pool", spec.name,
             "--metrics-port", str(metrics_port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            node = await eventually(lambda: node_status(client, node_id),
                                    lambda n: n.state.value == "ready", within=60, what="ready")
            assert len(node.gpus) == 8 and node.gpus[0].name == "NVIDIA H100 (simulated)"
            plane.world.inject(node_id, "temperature", value=88, gpu_index=5)
            node = await eventually(lambda: node_status(client, node_id),
                                    lambda n: n.state.value == "degraded", what="degraded")
            assert node.health_rule == "thermal-warning"
            metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{metrics_port}/metrics")
            assert 'navarch_gpu_health{Hostname=' in metrics
            assert any(line.startswith("DCGM_FI_DEV_GPU_TEMP") and 'gpu="5"' in line
                       and line.endswith(" 88.0") for line in metrics.splitlines())
        finally:
            agent.send_signal(signal.SIGTERM)
            output, _ = agent.communicate(timeout=30)
        assert agent.returncode == 0, output
        assert "stopping" in output
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.state.value == "unreachable", what="unreachable")


async def test_an_agent_upgraded_under_a_ready_node_hands_its_watch_over(dev_env, tmp_path):
    """A package upgrade on a running host: the agent gets SIGTERM and the new version
    starts. The node stays ready throughout, and the new agent's watch judges the next
    fault."""
    client = dev_env.client
    address = client.service_client.config.target_host
    async with control_plane(client, tmp_path, simulate_hosts=False) as plane:
        spec = fast_spec(min_nodes=1)
        node_id = f"agent-{spec.name}"
        handle = await client.start_workflow(
            NodeWorkflow.run, NodeInput(node_id=node_id, spec=spec),
            id=node_workflow_id(node_id), task_queue=plane.task_queue)

        def agent(build: str) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [str(Path(sys.executable).parent / "navarch-agent"), "--node-id", node_id,
                 "--fake-gpus", "8", "--fake-world", str(plane.world.path),
                 "--temporal-address", address, "--metrics-port", "0"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "NAVARCH_BUILD_ID": build})

        async def watched_by() -> str:
            pending = (await handle.describe()).raw_description.pending_activities
            return " ".join(p.last_worker_identity for p in pending
                            if p.activity_type.name == "agent.watch_health")

        old = agent("1.0.0")
        new = None
        try:
            await eventually(lambda: node_status(client, node_id),
                             lambda n: n.state.value == "ready", within=60, what="ready")
            await eventually(watched_by, lambda who: "navarch-agent 1.0.0" in who,
                             what="watched by 1.0.0")
            old.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(old.communicate, timeout=30)
            assert old.returncode == 0, output
            new = agent("1.1.0")
            await eventually(watched_by, lambda who: "navarch-agent 1.1.0" in who,
                             within=30, what="watched by 1.1.0")
            node = await node_status(client, node_id)
            assert node.state.value == "ready"
            assert "unreachable" not in [t.to_state.value for t in node.transitions]
            plane.world.inject(node_id, "temperature", value=88, gpu_index=2)
            node = await eventually(lambda: node_status(client, node_id),
                                    lambda n: n.state.value == "degraded", what="degraded")
            assert node.health_rule == "thermal-warning"
        finally:
            for proc in (old, new):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.communicate(timeout=30)
        await handle.terminate()


async def test_an_xid_line_in_the_agents_kernel_log_cordons_its_node(dev_env, tmp_path):
    """`--kernel-log`: the agent follows a fifo read the way /dev/kmsg is; an Xid 79 record
    for the GPU at bus 0000:1c:00 is judged on that GPU and the node leaves service."""
    client = dev_env.client
    kmsg = tmp_path / "kmsg"
    os.mkfifo(kmsg)
    held = os.open(kmsg, os.O_RDWR | os.O_NONBLOCK)
    async with control_plane(client, tmp_path, simulate_hosts=False) as plane:
        spec = fast_spec(min_nodes=1, health_check_interval=timedelta(seconds=30))
        node_id = f"kmsg-{spec.name}"
        handle = await client.start_workflow(
            NodeWorkflow.run, NodeInput(node_id=node_id, spec=spec),
            id=node_workflow_id(node_id), task_queue=plane.task_queue)
        agent = subprocess.Popen(  # noqa: ASYNC220 - the agent runs beside the test
            [str(Path(sys.executable).parent / "navarch-agent"), "--node-id", node_id,
             "--fake-gpus", "8", "--fake-world", str(plane.world.path),
             "--kernel-log", str(kmsg), "--metrics-port", "0",
             "--temporal-address", client.service_client.config.target_host],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            await eventually(lambda: node_status(client, node_id),
                             lambda n: n.state.value == "ready", within=60, what="ready")
            os.write(held, b"3,900,123456,-;NVRM: Xid (PCI:0000:1c:00): 79, pid=7, "
                           b"name=train, GPU has fallen off the bus.\n")
            node = await eventually(lambda: node_status(client, node_id),
                                    lambda n: n.state.value != "ready", what="out of service")
            assert node.health_rule == "xid-needs-reset-or-reboot", node
            assert [(e.gpu_index, e.metrics["xid_code"]) for e in node.last_events
                    if e.event_type.value == "xid"] == [(4, 79)], node.last_events
        finally:
            agent.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(agent.communicate, timeout=30)
            os.close(held)
        assert "following the kernel log at" in output, output
        await handle.terminate()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())
