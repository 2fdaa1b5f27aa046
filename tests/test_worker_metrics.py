"""The control-plane worker's Prometheus endpoint carries the workflows' own metrics: an
autoscaler decision is counted there, by pool and direction."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
import uuid
from datetime import timedelta

from autoscale_stubs import ScriptedMetrics, StubNode
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from navarch.config import AutoscalingConfig
from navarch.ids import pool_workflow_id
from navarch.spec import PoolSpec, ProviderChoice
from navarch.workers.main import metrics_runtime
from navarch.workflows.pool import PoolInput, PoolStatus, PoolWorkflow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


async def test_autoscaler_decisions_are_exported(dev_env):
    port = free_port()
    client = await Client.connect(dev_env.client.service_client.config.target_host,
                                  data_converter=pydantic_data_converter,
                                  runtime=metrics_runtime(port))
    name = f"m-{uuid.uuid4().hex[:8]}"
    spec = PoolSpec(name=name, providers=[ProviderChoice(name="sim", type="fake",
                                                         instance_type="h100-8x")],
                    instance_type="h100-8x", min_nodes=1, max_nodes=3,
                    cooldown=timedelta(seconds=1), autoscale_interval=timedelta(seconds=1),
                    autoscaling=AutoscalingConfig(type="reactive"))
    metrics = ScriptedMetrics(utilization=99.0)
    queue = f"m-{uuid.uuid4().hex}"
    async with Worker(client, task_queue=queue, workflows=[PoolWorkflow, StubNode],
                      activities=[metrics.gather]):
        handle = await client.start_workflow(PoolWorkflow.run, PoolInput(spec=spec),
                                             id=pool_workflow_id(name), task_queue=queue)
        text = ""
        for _ in range(100):
            status = await handle.query("status", result_type=PoolStatus)
            text = await asyncio.to_thread(scrape, port)
            if status.target == 3 and f'pool="{name}"' in text:
                break
            await asyncio.sleep(0.2)
        await handle.terminate()
    lines = [line for line in text.splitlines()
             if line.startswith("navarch_autoscaler_decisions") and f'pool="{name}"' in line]
    assert lines, text[:2000]
    assert any('direction="up"' in line and 'autoscaler="reactive"' in line
               and line.rstrip().endswith(" 2") for line in lines), lines
    assert "temporal_workflow_task_execution_latency" in text  # the SDK's own, same endpoint
