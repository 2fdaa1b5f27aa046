"""The workload notifier against a real local HTTP server, through the real workflows."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlparse

import pytest

from navarch.config.schema import NotifierConfig, WebhookConfig

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    start_pool,
)
from local_http import JsonHandler, LocalServer

TOKEN = "s3cret-token-value"


class Scheduler(LocalServer):
    """A stand-in workload system: records webhook calls, answers drain status."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.drained = False
        self.fail_cordon = False
        scheduler = self

        class Handler(JsonHandler):
            def _record(self, body: dict[str, str]) -> None:
                scheduler.calls.append((self.command, urlparse(self.path).path, body,
                                        dict(self.headers)))

            def do_POST(self):
                self._record(self.read_json())
                if scheduler.fail_cordon and self.path.endswith("/cordon"):
                    # A careless server: its refusal echoes the credential it was sent.
                    self.send_json(401, {"error": "unauthorized",
                                         "you_sent": {"Authorization":
                                                      self.headers["Authorization"]}})
                    return
                self.send_response(200)
                self.end_headers()

            def do_GET(self):
                query = parse_qs(urlparse(self.path).query)
                self._record({"node_id": query.get("node_id", [""])[0]})
                self.send_json(200, {"drained": scheduler.drained, "message": "x"})

        super().__init__(Handler)
        self.url = self.base_url

    def notifier(self) -> NotifierConfig:
        return NotifierConfig(type="webhook", webhook=WebhookConfig(
            cordon_url=f"{self.url}/cordon", uncordon_url=f"{self.url}/uncordon",
            drain_url=f"{self.url}/drain", drain_status_url=f"{self.url}/drain-status",
            timeout="5s", headers={"Authorization": "Bearer ${NAVARCH_TEST_SCHED_TOKEN}"},
        ))


@pytest.fixture
def scheduler(monkeypatch):
    monkeypatch.setenv("NAVARCH_TEST_SCHED_TOKEN", TOKEN)
    with Scheduler() as s:
        yield s


async def test_cordon_uncordon_and_drain_reach_the_workload_system(dev_env, tmp_path, scheduler):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(min_nodes=1, notifier=scheduler.notifier(),
                         health={"drain_grace": "30s"})
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1)
        node_id = pool.nodes[0].node_id
        handle = client.get_workflow_handle(f"node/{node_id}")
        await handle.signal("cordon", {"reason": "fan noise"})
        await eventually(lambda: _async(scheduler.calls), lambda c: len(c) >= 1, what="cordon")
        method, path, body, headers = scheduler.calls[0]
        assert (method, path) == ("POST", "/cordon")
        assert body["event"] == "cordon" and body["node_id"] == node_id
        assert body["reason"] == "fan noise" and body["timestamp"].endswith("Z")
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        await handle.signal("uncordon")
        await eventually(lambda: _async(scheduler.calls),
                         lambda c: any(p == "/uncordon" for _, p, _, _ in c), what="uncordon")

        # Drain waits for the workload system to say it is drained.
        await handle.signal("drain", {"grace_seconds": 30, "reason": "rotate"})
        await eventually(lambda: _async(scheduler.calls),
                         lambda c: sum(p == "/drain-status" for _, p, _, _ in c) >= 2,
                         what="drain status polled")
        assert (await node_status(client, node_id)).state.value == "draining"
        assert any(p == "/drain" for _, p, _, _ in scheduler.calls)
        scheduler.drained = True
        node = await eventually(lambda: node_status(client, node_id),
                                lambda n: n.state.value == "terminated", what="terminated")
        assert node.transitions[-1].detail == "rotate; drained"

        # The token never entered workflow history; only its ${...} reference did.
        text = _decoded_payloads((await handle.fetch_history()).to_json_dict())
        assert "${NAVARCH_TEST_SCHED_TOKEN}" in text
        assert TOKEN not in text


async def test_failing_notifier_shows_in_status_and_never_loses_the_cordon(
        dev_env, tmp_path, scheduler):
    client = dev_env.client
    scheduler.fail_cordon = True
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(min_nodes=1, notifier=scheduler.notifier())
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1)
        node_id = pool.nodes[0].node_id
        await client.get_workflow_handle(f"node/{node_id}").signal("cordon", {"reason": "x"})
        node = await eventually(lambda: node_status(client, node_id),
                                lambda n: n.notifier_failures >= 1, within=60,
                                what="notifier failure recorded")
        assert node.state.value == "cordoned"
        assert node.notifier_last_error.startswith(
            f"NotifierHTTPError: POST {scheduler.url}/cordon answered 401: "
            '{"error": "unauthorized", "you_sent": {"Authorization": "[redacted]"}}')
        history = (await client.get_workflow_handle(f"node/{node_id}").fetch_history()
                   ).to_json_dict()
        raw = json.dumps(history)  # failures (the activity's included) are not payloads
        assert '\\"you_sent\\": {\\"Authorization\\": \\"[redacted]\\"}' in raw
        assert TOKEN not in raw and TOKEN not in _decoded_payloads(history)


def _decoded_payloads(node) -> str:
    """Every payload in a history, decoded (history JSON holds them base64-encoded)."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                out.append(base64.b64decode(value).decode(errors="replace"))
            else:
                out.append(_decoded_payloads(value))
    elif isinstance(node, list):
        out.extend(_decoded_payloads(v) for v in node)
    return "\n".join(out)


async def _async(value):
    return value
