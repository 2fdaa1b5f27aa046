"""A new machine's agent gets its Temporal credentials without them entering history: the
user data carries a reference, which the agent resolves with the machine's own identity.

The default path end to end: a pool's config names an SSM SecureString; the worker launches
the machine through moto; the machine's user data names only the parameter; the
`navarch-agent` started from that user data's environment file reads the parameter (moto's
credentials stand in for the instance profile) and polls its task queue through nginx,
which lets in only clients with a certificate from the cluster's CA.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import boto3
import pytest
import yaml
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from tls_proxy import Pki, TlsProxy, free_port, nginx_path

from navarch.agent.credentials import NotFound, fetch, fetch_with_retry, load_into
from navarch.bootstrap.credentials import (
    CredentialsError,
    bundle_from_environment,
    check_reference,
    inline_reference,
    parse_bundle,
)
from navarch.config.loader import load_config
from navarch.contracts.cloud import ProvisionRequest
from navarch.contracts.names import node_task_queue
from navarch.contracts.spec import AgentBootstrap, ProviderChoice, build_pool_specs
from navarch.validation import ValidationFailed
from navarch.workers.control_plane import ControlPlane, agent_bootstrap

from lifecycle_helpers import eventually
from local_http import JsonHandler, LocalServer


@pytest.mark.parametrize("reference", [
    "aws-ssm:/navarch/agent", "aws-secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:x",
    "gcp-secretmanager:projects/p/secrets/navarch-agent", "worker-env",
])
def test_references_the_agent_can_resolve(reference):
    assert check_reference(reference) == reference


@pytest.mark.parametrize(("reference", "message"), [
    ("vault:secret/navarch", "expected worker-env or SCHEME:NAME"),
    ("aws-ssm:", "expected worker-env or SCHEME:NAME"),
    ("gcp-secretmanager:navarch-agent", "starts with projects/PROJECT/secrets/"),
    ("aws-ssm:/navarch/agent name", "no spaces or quotes"),
])
def test_bad_references_are_named(reference, message):
    with pytest.raises(CredentialsError, match=message):
        check_reference(reference)


def test_a_bad_reference_in_the_config_names_the_field(tmp_path):
    path = tmp_path / "pools.yaml"
    path.write_text("server:\n  agent:\n    credentials: vault:navarch\n"
                    "providers:\n  aws: {type: aws, region: us-east-1}\n"
                    "pools:\n  p: {provider: aws, instance_type: h100-8x, max_nodes: 1}\n")
    with pytest.raises(ValidationFailed) as failed:
        load_config(path)
    text = str(failed.value)
    assert "server.agent.credentials" in text and "vault:navarch" in text


@pytest.mark.parametrize(("text", "message"), [
    ("[1]", "not a JSON object"),
    ("{", "not a JSON object"),
    ('{"AWS_SECRET_ACCESS_KEY": "x"}', "unknown setting"),
    ('{"TEMPORAL_API_KEY": 7}', "TEMPORAL_API_KEY must be strings"),
])
def test_bad_bundles_are_named(text, message):
    with pytest.raises(CredentialsError, match=f"the secret: .*{message}"):
        parse_bundle(text, "the secret")


def test_worker_env_bundles_the_workers_own_settings_files_read(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    cert.write_text("CERT\n")
    key.write_text("KEY\n")
    env = {"TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert), "TEMPORAL_TLS_CLIENT_KEY_PATH": str(key),
           "NAVARCH_CODEC_KEYS": "k1=abc", "AWS_SECRET_ACCESS_KEY": "not for agents"}
    bundle = bundle_from_environment(env)
    assert bundle == {"TEMPORAL_TLS_CLIENT_CERT_DATA": "CERT\n",
                      "TEMPORAL_TLS_CLIENT_KEY_DATA": "KEY\n", "NAVARCH_CODEC_KEYS": "k1=abc"}
    assert fetch(inline_reference(bundle)) == bundle
    with pytest.raises(CredentialsError, match=r"TEMPORAL_TLS_CLIENT_KEY_PATH=.*missing"):
        bundle_from_environment({"TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "missing")})


def test_the_cli_prints_the_bundle_to_store(tmp_path):
    """`navarch agent-credentials` prints what the operator stores in SSM; the agent parses it
    back; with nothing to bundle it says what to set."""
    import subprocess
    import sys

    cert = tmp_path / "c.pem"
    cert.write_text("CERT\n")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("TEMPORAL_", "NAVARCH_CODEC"))}
    run = [sys.executable, "-m", "navarch.cli", "agent-credentials"]
    printed = subprocess.run(run, capture_output=True, text=True, timeout=60, env={
        **base, "TEMPORAL_API_KEY": "k-1", "TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert)})
    assert printed.returncode == 0, printed.stderr
    assert parse_bundle(printed.stdout, "stdout") == {
        "TEMPORAL_API_KEY": "k-1", "TEMPORAL_TLS_CLIENT_CERT_DATA": "CERT\n"}
    empty = subprocess.run(run, capture_output=True, text=True, timeout=60, env=base)
    assert empty.returncode != 0 and "TEMPORAL_API_KEY" in empty.stderr


def _request(agent: AgentBootstrap | None, region: str | None = "eu-west-1") -> ProvisionRequest:
    return ProvisionRequest(node_id="n1", pool="p", region=region, provider=ProviderChoice(
        name="aws", type="aws", instance_type="p5.48xlarge", agent=agent))


def test_the_bootstrap_carries_a_reference_or_worker_env_inline():
    assert agent_bootstrap(_request(None)) == (agent_bootstrap(_request(None))[0], {})
    source, env = agent_bootstrap(_request(AgentBootstrap(credentials="aws-ssm:/navarch/a")))
    assert env == {"NAVARCH_AGENT_CREDENTIALS": "aws-ssm:/navarch/a",
                   "AWS_DEFAULT_REGION": "eu-west-1"}
    assert source.requirement().startswith("navarch[agent,aws]==")
    source, env = agent_bootstrap(_request(AgentBootstrap(credentials="worker-env")),
                                  {"TEMPORAL_API_KEY": "k-123"})
    assert fetch(env["NAVARCH_AGENT_CREDENTIALS"]) == {"TEMPORAL_API_KEY": "k-123"}
    with pytest.raises(CredentialsError, match="this worker has no TEMPORAL_API_KEY"):
        agent_bootstrap(_request(AgentBootstrap(credentials="worker-env")), {})


def test_a_failing_fetch_is_retried_until_its_deadline_and_not_found_is_final(monkeypatch):
    slept: list[float] = []
    calls = iter([CredentialsError("no credentials yet"), {"TEMPORAL_API_KEY": "k"}])

    def flaky(reference: str) -> Any:
        result = next(calls)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr("navarch.agent.credentials.fetch", flaky)
    assert fetch_with_retry("aws-ssm:/x", sleep=slept.append) == {"TEMPORAL_API_KEY": "k"}
    assert slept == [1.0]

    def missing(reference: str) -> Any:
        raise NotFound("ParameterNotFound")

    monkeypatch.setattr("navarch.agent.credentials.fetch", missing)
    with pytest.raises(NotFound):
        fetch_with_retry("aws-ssm:/x", sleep=slept.append)
    assert slept == [1.0]


def test_ssm_and_secrets_manager_through_moto(aws_env):
    bundle = {"TEMPORAL_API_KEY": "key-from-the-cloud"}
    ssm = boto3.client("ssm", endpoint_url=aws_env)
    ssm.put_parameter(Name="/navarch/agent-a", Type="SecureString", Value=json.dumps(bundle))
    secrets = boto3.client("secretsmanager", endpoint_url=aws_env)
    secrets.create_secret(Name="navarch/agent-a", SecretString=json.dumps(bundle))
    assert fetch("aws-ssm:/navarch/agent-a") == bundle
    assert fetch("aws-secretsmanager:navarch/agent-a") == bundle
    with pytest.raises(NotFound, match="ParameterNotFound"):
        fetch("aws-ssm:/navarch/nothing-here")
    with pytest.raises(NotFound, match="ResourceNotFoundException"):
        fetch("aws-secretsmanager:navarch/nothing-here")


class _Gcp(JsonHandler):
    """The metadata server's token and Secret Manager's access call."""

    secret: ClassVar[str] = ""

    def do_GET(self) -> None:
        if self.path == "/metadata/instance/service-accounts/default/token":
            if self.headers.get("Metadata-Flavor") != "Google":
                self.send_json(403, {})
                return
            self.send_json(200, {"access_token": "vm-token", "expires_in": 3599})
        elif self.path == "/sm/projects/p/secrets/navarch-agent/versions/latest:access":
            if self.headers.get("Authorization") != "Bearer vm-token":
                self.send_json(401, {})
                return
            data = base64.b64encode(type(self).secret.encode()).decode()
            self.send_json(200, {"name": "v", "payload": {"data": data}})
        else:
            self.send_json(404, {"error": {"code": 404}})


def test_gcp_secret_manager_through_the_vms_service_account(monkeypatch):
    _Gcp.secret = json.dumps({"TEMPORAL_API_KEY": "from-gcp"})
    with LocalServer(_Gcp) as gcp:
        monkeypatch.setenv("NAVARCH_GCP_METADATA_URL", gcp.base_url + "/metadata")
        monkeypatch.setenv("NAVARCH_GCP_SECRET_MANAGER_URL", gcp.base_url + "/sm")
        assert fetch("gcp-secretmanager:projects/p/secrets/navarch-agent") == {
            "TEMPORAL_API_KEY": "from-gcp"}
        with pytest.raises(NotFound, match="HTTP 404"):
            fetch("gcp-secretmanager:projects/p/secrets/other")


def test_load_into_sets_only_the_bundles_names():
    env = {"NAVARCH_AGENT_CREDENTIALS": inline_reference({"TEMPORAL_API_KEY": "k"})}
    assert load_into(env) == ["TEMPORAL_API_KEY"]
    assert env["TEMPORAL_API_KEY"] == "k"
    assert load_into({}) == []


# ------------------------------------------------ the default path, end to end


def _agent_env_file(user_data: str) -> dict[str, str]:
    doc = yaml.safe_load(user_data)
    content = next(f["content"] for f in doc["write_files"]
                   if f["path"] == "/etc/navarch/agent.env")
    return dict(line.split("=", 1) for line in content.splitlines() if line)


@pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed")
async def test_a_machine_launched_through_moto_gets_its_credentials_by_the_default_path(
        aws_env, dev_env, tmp_path, monkeypatch):
    from navarch.activities.aws import AwsProvider

    pki = Pki(tmp_path / "pki")
    agent_identity = pki.issue("node-agent")
    bundle = {"TEMPORAL_TLS_SERVER_CA_CERT_DATA": pki.ca.read_text(),
              "TEMPORAL_TLS_CLIENT_CERT_DATA": agent_identity.cert.read_text(),
              "TEMPORAL_TLS_CLIENT_KEY_DATA": agent_identity.key.read_text()}
    boto3.client("ssm", endpoint_url=aws_env).put_parameter(
        Name="/navarch/agent", Type="SecureString", Value=json.dumps(bundle))
    ami = boto3.client("ec2", endpoint_url=aws_env).describe_images(
        Owners=["amazon"])["Images"][0]["ImageId"]
    config = tmp_path / "pools.yaml"
    config.write_text(f"""
server:
  agent:
    credentials: aws-ssm:/navarch/agent
providers:
  aws: {{type: aws, region: us-east-1, ami: {ami}}}
pools:
  training: {{provider: aws, instance_type: p5.48xlarge, min_nodes: 1, max_nodes: 1}}
""")
    choice = build_pool_specs(load_config(config))["training"].providers[0]
    assert choice.agent == AgentBootstrap(credentials="aws-ssm:/navarch/agent")

    with TlsProxy(dev_env.client.service_client.config.target_host, pki,
                  tmp_path / "nginx") as proxy:
        monkeypatch.setenv("NAVARCH_AGENT_TEMPORAL_ADDRESS", proxy.address)
        worker = SimpleNamespace(namespace="default", service_client=SimpleNamespace(
            config=SimpleNamespace(target_host="127.0.0.1:7233")))
        plane = ControlPlane(worker)  # type: ignore[arg-type]
        node_id = f"cred-{uuid.uuid4().hex[:8]}"
        aws = AwsProvider(choice, user_data=plane._user_data)
        instance = await aws.provision(ProvisionRequest(node_id=node_id, pool="training",
                                                        provider=choice))
        attribute = boto3.client("ec2", endpoint_url=aws_env).describe_instance_attribute(
            InstanceId=instance.instance_id, Attribute="userData")
        user_data = base64.b64decode(attribute["UserData"]["Value"]).decode()
        for secret in bundle.values():
            assert "".join(secret.splitlines()[1:-1]) not in user_data
        agent_env = _agent_env_file(user_data)
        assert agent_env["NAVARCH_AGENT_CREDENTIALS"] == "aws-ssm:/navarch/agent"
        assert agent_env["TEMPORAL_ADDRESS"] == proxy.address
        assert "navarch[agent,aws]==" in user_data

        # The machine boots: systemd starts the agent with that environment file. Only
        # the cloud identity (moto's credentials for the instance profile) comes from here.
        machine_env = {k: v for k, v in os.environ.items()
                       if not k.startswith(("TEMPORAL_", "NAVARCH_"))}
        agent = subprocess.Popen(  # noqa: ASYNC220 - the agent runs beside the test
            [str(Path(sys.executable).parent / "navarch-agent"), "--fake-gpus", "8",
             "--fake-world", str(tmp_path / "world.db"), "--metrics-port", str(free_port())],
            env={**machine_env, **agent_env, "TEMPORAL_CONFIG_FILE": os.devnull,
                 "NAVARCH_AWS_ENDPOINT_URL": aws_env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            async def pollers() -> int:
                answer = await dev_env.client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace="default", task_queue=TaskQueue(name=node_task_queue(node_id)),
                        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
                return len(answer.pollers)

            await eventually(pollers, lambda n: n >= 1, within=60,
                             what="the agent polling through the mTLS proxy")
        finally:
            agent.send_signal(signal.SIGTERM)
            output = agent.communicate(timeout=30)[0]
    assert "Temporal credentials from aws-ssm:/navarch/agent" in output, output
    assert "TEMPORAL_TLS_CLIENT_KEY_DATA" in output  # the names, never the values
    assert agent_identity.key.read_text().splitlines()[1] not in output
