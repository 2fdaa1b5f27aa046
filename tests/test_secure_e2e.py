"""A secured production shape, end to end: Temporal behind a TLS proxy that verifies client
certificates (nginx in front of the dev server), the payload codec on, and a codec server
for the Temporal UI and CLI.

A `navarch-worker` and one `navarch-agent` per machine, each with its own client
certificate, run a pool started through the `temporal` CLI's `--input` (encoded by the
codec server) through provisioning, a fatal Xid and the replacement. Then every workflow
history on the server, dumped with `temporal workflow show -o json`, holds none of the
secrets the processes had (cloud keys, the Lambda key, the webhook token, the Temporal API
key and client keys, an SSH private key) and no pool spec in plain text; through the codec
server the same history reads plainly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment
from tls_proxy import Pki, TlsProxy, free_port, nginx_path

from navarch.config.schema import NotifierConfig
from navarch.contracts.names import SEARCH_ATTRIBUTES, pool_workflow_id
from navarch.contracts.node import NodeStatus
from navarch.contracts.pool import PoolStatus
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.client import temporal_cli_path
from navarch.temporal.codec import EncryptionCodec, parse_keys
from navarch.temporal.codec_server import serve

from lifecycle_helpers import eventually, fast_spec
from local_http import JsonHandler, LocalServer

pytestmark = pytest.mark.skipif(nginx_path() is None,
                                reason="nginx is not installed (apt-get install nginx-light)")

CODEC_KEY = base64.b64encode(b"k" * 32).decode()
CODEC_TOKEN = "codec-token-for-the-people-allowed"
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLESECRET123",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-key-never-in-history",
    "LAMBDA_API_KEY": "lambda-api-key-never-in-history",
    "NAVARCH_TEST_WEBHOOK_TOKEN": "webhook-token-never-in-history",
    "TEMPORAL_API_KEY": "temporal-api-key-never-in-history",
}
BIN = Path(sys.executable).parent


@dataclass
class Secured:
    env: WorkflowEnvironment
    proxy: TlsProxy
    pki: Pki
    codec_url: str
    ui_port: int
    folder: Path

    def cli_env(self) -> dict[str, str]:
        """The `temporal` CLI through the proxy, as an operator with a certificate."""
        operator = self.pki.issue("operator")
        return {**os.environ, "TEMPORAL_ADDRESS": self.proxy.address,
                "TEMPORAL_NAMESPACE": "default", "TEMPORAL_CONFIG_FILE": os.devnull,
                **operator.env(self.pki.ca)}

    def temporal(self, *args: str, codec: bool = False) -> str:
        extra = ["--codec-endpoint", self.codec_url, "--codec-auth",
                 f"Bearer {CODEC_TOKEN}"] if codec else []
        done = subprocess.run([temporal_cli_path(), *args, *extra], env=self.cli_env(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest_asyncio.fixture(loop_scope="session")
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    """A dev server of this test's own (every history on it is this test's), its UI pointed
    at a codec server, and nginx with client verification in front of it."""
    codec = serve("127.0.0.1", 0, EncryptionCodec(parse_keys(f"k1={CODEC_KEY}", "test")),
                  tokens=[CODEC_TOKEN], origins=["http://127.0.0.1"])
    codec.serve_in_thread()
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES, ip="127.0.0.1", ui=True, ui_port=ui_port,
        dev_server_extra_args=["--ui-codec-endpoint", f"{codec.url}/{CODEC_TOKEN}"])
    pki = Pki(tmp_path / "pki")
    upstream = env.client.service_client.config.target_host
    try:
        with TlsProxy(upstream, pki, tmp_path / "nginx") as proxy:
            yield Secured(env, proxy, pki, codec.url, ui_port, tmp_path)
    finally:
        await env.shutdown()
        codec.shutdown()
        codec.server_close()


async def test_a_client_needs_a_certificate_from_the_trusted_ca(secured, tmp_path):
    ca = secured.pki.ca.read_bytes()
    me = secured.pki.issue("me")
    ok = await Client.connect(secured.proxy.address, tls=TLSConfig(
        server_root_ca_cert=ca, client_cert=me.cert.read_bytes(),
        client_private_key=me.key.read_bytes()))
    assert (await ok.count_workflows()).count >= 0
    stranger = Pki(tmp_path / "other", "stranger-ca").issue("stranger")
    for tls in (TLSConfig(server_root_ca_cert=ca),
                TLSConfig(server_root_ca_cert=ca, client_cert=stranger.cert.read_bytes(),
                          client_private_key=stranger.key.read_bytes())):
        with pytest.raises(RuntimeError):
            client = await Client.connect(secured.proxy.address, tls=tls)
            await client.count_workflows()


class _Webhook(JsonHandler):
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.read_json()
        type(self).seen.append(self.headers.get("Authorization", ""))
        self.send_json(200, {})


@pytest.fixture
def webhook() -> Iterator[LocalServer]:
    _Webhook.seen = []
    with LocalServer(_Webhook) as server:
        yield server


def _process_env(secured: Secured, who: str, ssh_key: Path) -> dict[str, str]:
    identity = secured.pki.issue(who)
    return {**os.environ, **SECRETS, "PYTHONUNBUFFERED": "1",
            "TEMPORAL_ADDRESS": secured.proxy.address, "TEMPORAL_NAMESPACE": "default",
            "TEMPORAL_CONFIG_FILE": os.devnull, "NAVARCH_CODEC_KEYS": f"k1={CODEC_KEY}",
            "NAVARCH_TEST_SSH_KEY_PATH": str(ssh_key), **identity.env(secured.pki.ca)}


class Machines:
    """What a cloud does for the fake one's instances here: boot each into a machine whose
    `navarch-agent` runs with its own certificate, and stop it when the instance goes."""

    def __init__(self, secured: Secured, world: FakeWorld, ssh_key: Path) -> None:
        self.secured, self.world, self.ssh_key = secured, world, ssh_key
        self.agents: dict[str, subprocess.Popen[str]] = {}

    def sync(self) -> None:
        live = {i.node_id for i in self.world.instances(live_only=True)}
        for node_id in sorted(live - set(self.agents)):
            instance = self.world.get_by_node(node_id)
            assert instance is not None
            self.agents[node_id] = subprocess.Popen(
                [str(BIN / "navarch-agent"), "--node-id", node_id, "--pool", instance.pool,
                 "--fake-gpus", "8", "--fake-world", str(self.world.path),
                 "--metrics-port", str(free_port())],
                env=_process_env(self.secured, f"node-{node_id}", self.ssh_key),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node_id in sorted(set(self.agents) - live):
            agent = self.agents[node_id]
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)

    def stop(self) -> dict[str, str]:
        outputs = {}
        for node_id, agent in self.agents.items():
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
            try:
                outputs[node_id] = agent.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                agent.kill()
                outputs[node_id] = agent.communicate()[0]
        return outputs


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _payload_texts(history: Any) -> list[str]:
    """The data of every json/plain payload in a history as JSON (the CLI's form)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            encoding = value.get("metadata", {}).get("encoding") if "data" in value else None
            if encoding == base64.b64encode(b"json/plain").decode():
                found.append(base64.b64decode(value["data"]).decode())
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(history)
    return found


async def _query(secured: Secured, workflow_id: str, result_type: type[Any]) -> Any:
    """A query through the proxy with a certificate and the codec (as the CLI does)."""
    from navarch.temporal.client import connect

    client = await connect(target_host=secured.proxy.address, namespace="default")
    return await client.get_workflow_handle(workflow_id).query("status",
                                                               result_type=result_type)


async def test_a_pool_runs_through_a_replacement_over_mtls_with_the_codec_on(
        secured, tmp_path, webhook, monkeypatch):
    ssh_key = tmp_path / "id_ed25519"
    ssh_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nssh-private-key-never-in-history"
                       "\n-----END OPENSSH PRIVATE KEY-----\n")
    ssh_key.chmod(0o600)
    world = FakeWorld(tmp_path / "world.db")
    queue = f"navarch-{uuid.uuid4().hex[:8]}"
    worker_env = _process_env(secured, "control-plane", ssh_key)
    worker = subprocess.Popen(  # noqa: ASYNC220 - the worker runs beside the test
        [str(BIN / "navarch-worker"), "--fake-cloud", "--fake-world", str(world.path),
         "--no-simulated-hosts", "--task-queue", queue, "--metrics-port", "0"],
        env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    machines = Machines(secured, world, ssh_key)
    spec = fast_spec(min_nodes=2, max_nodes=4, notifier=NotifierConfig(
        type="webhook", webhook={"cordon_url": webhook.base_url + "/cordon",
                                 "headers": {"Authorization":
                                             "Bearer ${NAVARCH_TEST_WEBHOOK_TOKEN}"}}))
    for name, value in {**SECRETS, "NAVARCH_CODEC_KEYS": f"k1={CODEC_KEY}",
                        **secured.pki.issue("test").env(secured.pki.ca),
                        "TEMPORAL_CONFIG_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)

    async def pool() -> PoolStatus:
        machines.sync()
        status: PoolStatus = await _query(secured, pool_workflow_id(spec.name), PoolStatus)
        return status

    try:
        # The operator starts the pool with the temporal CLI; the codec server seals --input.
        secured.temporal("workflow", "start", "--type", "PoolWorkflow", "--task-queue", queue,
                         "--workflow-id", pool_workflow_id(spec.name), "--input",
                         json.dumps({"spec": spec.model_dump(mode="json")}), codec=True)
        status = await eventually(pool, lambda s: s.ready == 2, within=90, what="2 ready")
        first = sorted(n.node_id for n in status.nodes)
        world.inject(first[0], "xid", value=79, gpu_index=3)
        status = await eventually(
            pool, lambda s: s.ready == 2 and any(n.replacement_of == first[0]
                                                 and n.state.value == "ready" for n in s.nodes),
            within=90, what="the node with Xid 79 replaced")
        failed: NodeStatus = await _query(secured, f"node/{first[0]}", NodeStatus)
        assert failed.state.value == "terminated"
        assert any(e.metrics.get("xid_code") == 79 for e in failed.last_events), failed.last_events
        assert _Webhook.seen and all(h == f"Bearer {SECRETS['NAVARCH_TEST_WEBHOOK_TOKEN']}"
                                     for h in _Webhook.seen)

        listed = secured.temporal("workflow", "list", "-o", "json")
        ids = [w["execution"]["workflowId"] for w in json.loads(listed or "[]")]
        assert pool_workflow_id(spec.name) in ids and f"node/{first[0]}" in ids
        dump = "\n".join(secured.temporal("workflow", "show", "-w", wid, "-o", "json")
                         for wid in ids)
        forbidden = {**SECRETS, "the SSH key": "ssh-private-key-never-in-history",
                     "a codec key": CODEC_KEY}
        for path in secured.pki.folder.glob("*.key"):
            forbidden[path.name] = "".join(path.read_text().splitlines()[1:-1])
        assert [name for name, value in forbidden.items() if value in dump] == []
        for plain in ("min_nodes", "instance_type", "h100-8x", "health_check_interval",
                      webhook.base_url):
            assert plain not in dump, f"{plain!r} in plain text in a history"

        # Through the codec server the same history reads plainly.
        readable = secured.temporal("workflow", "show", "-w", pool_workflow_id(spec.name),
                                    "-o", "json", codec=True)
        opened = _payload_texts(json.loads(readable))
        assert any('"min_nodes": 2' in text for text in opened), opened[:1]
        node = secured.temporal("workflow", "show", "-w", f"node/{first[0]}", codec=True)
        assert "xid" in node.lower()
        # The UI is pointed at the codec server (its token in the endpoint's path).
        settings = await asyncio.to_thread(
            _get_json, f"http://127.0.0.1:{secured.ui_port}/api/v1/settings")
        assert settings["Codec"]["Endpoint"] == f"{secured.codec_url}/{CODEC_TOKEN}"
    finally:
        secured.temporal("workflow", "terminate", "--query",
                         f'NavarchPool="{spec.name}" AND ExecutionStatus="Running"',
                         "--reason", "test over", "--yes")
        outputs = machines.stop()
        worker.send_signal(signal.SIGTERM)
        worker_output = worker.communicate(timeout=30)[0]
    for text in (worker_output, *outputs.values()):
        assert "Traceback" not in text, text[-3000:]
