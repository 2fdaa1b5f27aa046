"""The harness runs a real workflow and activity on both real Temporal servers."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from navarch.health.events import EventType, HealthResult
from navarch.temporal import client as temporal_client
from navarch.temporal.devserver import DevServer, free_port

from smoke_workflow import SmokeInput, SmokeOutput, SmokeWorkflow, make_event


async def _run(env: WorkflowEnvironment, params: SmokeInput) -> tuple[str, SmokeOutput]:
    queue = f"smoke-{uuid.uuid4()}"
    workflow_id = f"smoke/{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[SmokeWorkflow],
                      activities=[make_event]):
        result = await env.client.execute_workflow(
            SmokeWorkflow.run, params, id=workflow_id, task_queue=queue
        )
    return workflow_id, result


async def test_dev_server_runs_workflow_and_registers_search_attributes(dev_env):
    workflow_id, out = await _run(
        dev_env, SmokeInput(pool="smoke-pool", upsert_search_attribute=True)
    )
    assert out.event.event_type is EventType.XID
    assert out.event.metrics == {"xid_code": 79}
    assert out.event.message == "from smoke-pool"
    assert out.result is HealthResult.UNHEALTHY

    # Visibility is eventually consistent: the search attribute query answers within moments.
    found: list[str] = []
    for _ in range(50):
        found = [w.id async for w in dev_env.client.list_workflows('NavarchPool="smoke-pool"')]
        if workflow_id in found:
            break
        await asyncio.sleep(0.1)
    assert workflow_id in found


async def test_time_skipping_server_skips_a_three_day_timer(time_env):
    _, out = await _run(time_env, SmokeInput(pool="p", sleep=timedelta(days=3)))
    assert out.slept >= timedelta(days=3)
    assert out.event.gpu_index == 3


async def test_connect_waits_for_a_frontend_still_joining_its_cluster(monkeypatch):
    """A dev server's port opens before its frontend serves; the first calls answer
    Unavailable ("Frontend is not healthy yet"). `navarch up` and DevServer.start wait it out;
    any other connection error is raised at once."""
    calls: list[str] = []
    starting = RuntimeError("Failed client connect: `get_system_info` call error after "
                            "connection: Status { code: Unavailable, message: \"Frontend is not "
                            "healthy yet\" }")

    async def fake_connect(**kwargs: object) -> str:
        calls.append(str(kwargs["target_host"]))
        if len(calls) < 3:
            raise starting
        return "client"

    monkeypatch.setattr(Client, "connect", fake_connect)
    client: object = await temporal_client.connect(target_host="127.0.0.1:1", ready_within=5)
    assert client == "client"
    assert calls == ["127.0.0.1:1"] * 3

    calls.clear()
    with pytest.raises(RuntimeError, match="not healthy"):
        await temporal_client.connect(target_host="127.0.0.1:1")  # no wait asked for
    assert len(calls) == 1

    async def refused(**kwargs: object) -> str:
        calls.append("refused")
        raise RuntimeError("Failed client connect: invalid API key")

    calls.clear()
    monkeypatch.setattr(Client, "connect", refused)
    with pytest.raises(RuntimeError, match="API key"):
        await temporal_client.connect(target_host="127.0.0.1:1", ready_within=5)
    assert calls == ["refused"]


def test_dev_server_start_returns_once_the_frontend_serves(tmp_path, monkeypatch):
    """Called from plain code (no event loop) as the benchmarks do: the first connection
    without any retry succeeds. The processes that start their own server (`navarch up`,
    `navarch simulate`) reach it whatever the environment says of Temporal Cloud: an API key
    there would turn on TLS, which the dev server does not speak."""
    server = DevServer(tmp_path / "temporal", port=free_port(), ui_port=None, persist=False)
    server.start()
    try:
        client = asyncio.run(Client.connect(server.address))
        assert client.namespace == "default"
        monkeypatch.setenv("TEMPORAL_API_KEY", "cloud-key-not-for-here")
        monkeypatch.setenv("TEMPORAL_NAMESPACE", "prod.a1b2c")
        local = asyncio.run(temporal_client.connect_local(server.address))
        assert local.namespace == "default"
        child = temporal_client.local_environment(server.address)
        assert "TEMPORAL_API_KEY" not in child and child["TEMPORAL_NAMESPACE"] == "default"
        assert child["TEMPORAL_ADDRESS"] == server.address
        assert not (tmp_path / "temporal" / "temporal.db").exists()  # in memory
    finally:
        server.stop()


def test_empty_connection_variables_count_as_unset(monkeypatch):
    """Compose passes `${TEMPORAL_API_KEY:-}`: an empty value is no API key and no TLS, not a
    TLS file at the current directory."""
    from navarch.temporal.client import connect_config

    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", os.devnull)
    for name in ("TEMPORAL_API_KEY", "TEMPORAL_TLS_CLIENT_CERT_PATH",
                 "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
                 "TEMPORAL_TLS"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal:7233")
    config = connect_config()
    assert config["target_host"] == "temporal:7233"
    assert not config.get("api_key") and not config.get("tls")
    monkeypatch.setenv("TEMPORAL_API_KEY", "k-123")
    assert connect_config()["api_key"] == "k-123"
