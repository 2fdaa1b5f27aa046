"""SSH bootstrap: setup_commands and file_uploads run over real SSH (asyncssh client against a
local asyncssh server that runs commands with /bin/sh), in the activity and end to end: a
pool whose setup command starts the node's agent, the way a cloud without user data is
bootstrapped."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from navarch.activities.cloud import CloudActivities
from navarch.activities.ssh import BootstrapFailed, run_bootstrap
from navarch.config.loader import load_config
from navarch.config.setup_commands import FileUpload, render_command
from navarch.contracts.node import NodeState
from navarch.contracts.spec import ProviderChoice, build_pool_spec
from navarch.contracts.ssh import SshBootstrapInput
from navarch.validation import ValidationFailed

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    node_status,
    pool_status,
    start_pool,
    transitions,
)
from local_ssh import LocalSsh, local_ssh_server

CHOICE = ProviderChoice(name="sim", type="fake", instance_type="h100-8x")


def params(ssh: LocalSsh, **overrides: object) -> SshBootstrapInput:
    values: dict[str, object] = {
        "node_id": "n-1", "pool": "train", "provider": CHOICE, "instance_id": "i-1",
        "region": "local", "instance_type": "h100-8x", "host": "127.0.0.1", "port": ssh.port,
        "user": ssh.user, "private_key_path": str(ssh.key_path),
        "ssh_timeout": timedelta(seconds=5), "connect_timeout": timedelta(seconds=2),
        "command_timeout": timedelta(seconds=10),
    }
    values.update(overrides)
    return SshBootstrapInput.model_validate(values)


def noop(_: str) -> None:
    pass


def test_template_values_are_shell_quoted():
    assert render_command("echo {{.NodeID}} {{ .Pool }}", {"NodeID": "a; rm -rf /",
                                                        "Pool": "p"}) == "echo 'a; rm -rf /' p"


async def test_uploads_then_commands_in_order(tmp_path: Path):
    local = tmp_path / "agent.env"
    local.write_text("TOKEN_FILE=/etc/x\n")
    remote = tmp_path / "remote" / "agent.env"
    remote.parent.mkdir()
    out = tmp_path / "out.txt"
    async with local_ssh_server(tmp_path) as ssh:
        result = await run_bootstrap(params(
            ssh,
            uploads=[FileUpload(local=str(local), remote=str(remote), mode="0600")],
            commands=[f"echo {{{{.NodeID}}}} {{{{.Pool}}}} {{{{.ControlPlane}}}} > {out}",
                      f"cat {remote}"],
        ), "127.0.0.1", {"ControlPlane": "10.0.0.5:7233", "NodeID": "n-1", "Pool": "train"},
            noop)
    assert out.read_text() == "n-1 train 10.0.0.5:7233\n"
    assert remote.read_text() == "TOKEN_FILE=/etc/x\n"
    assert oct(remote.stat().st_mode & 0o777) == "0o600"
    assert [c.exit_status for c in result.commands] == [0, 0]
    assert result.commands[1].output == "TOKEN_FILE=/etc/x"
    assert result.commands[0].command.startswith("echo {{.NodeID}}")  # the template, not text
    assert result.host_key.startswith("SHA256:")
    assert result.uploaded == [str(remote)]


async def test_output_in_history_is_capped_and_scrubbed(tmp_path: Path, monkeypatch):
    from navarch.contracts.ssh import OUTPUT_KEPT

    monkeypatch.setenv("NAVARCH_TEST_DB_PASSWORD", "worker-only-value-42")
    key = tmp_path / "leak.pem"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n"
                   "-----END OPENSSH PRIVATE KEY-----\n")
    async with local_ssh_server(tmp_path) as ssh:
        result = await run_bootstrap(params(ssh, commands=[
            f"cat {key}; echo api_key=sk-live-123456; echo using worker-only-value-42; "
            "echo Authorization: Bearer abcdefgh12345678",
            "yes navarch | head -c 20000",
        ]), "127.0.0.1", {}, noop)
    leaky = result.commands[0].output
    for secret in ("b3BlbnNzaC1rZXktdjE", "sk-live-123456", "worker-only-value-42",
                   "abcdefgh12345678"):
        assert secret not in leaky, leaky
    assert "using [redacted]" in leaky and "api_key=[redacted]" in leaky
    assert len(result.commands[1].output) == OUTPUT_KEPT


async def test_a_failing_command_stops_the_rest(tmp_path: Path):
    async with local_ssh_server(tmp_path) as ssh:
        with pytest.raises(BootstrapFailed, match=r"setup command 2 \('echo oops >&2; exit 3'\) "
                                                  r"exited 3: oops"):
            await run_bootstrap(params(ssh, commands=[
                "true", "echo oops >&2; exit 3", f"touch {tmp_path}/never"]), "127.0.0.1", {},
                noop)
        assert len(ssh.commands) == 2
    assert not (tmp_path / "never").exists()


async def test_a_command_that_hangs_is_cut_off(tmp_path: Path):
    async with local_ssh_server(tmp_path) as ssh:
        with pytest.raises(BootstrapFailed, match="did not finish in 0:00:01"):
            await run_bootstrap(params(ssh, commands=["sleep 30"],
                                       command_timeout=timedelta(seconds=1)),
                                "127.0.0.1", {}, noop)


async def test_wrong_key_is_refused_at_once(tmp_path: Path):
    other = tmp_path / "other"
    other.mkdir()
    async with local_ssh_server(tmp_path) as ssh, local_ssh_server(other) as second:
        with pytest.raises(BootstrapFailed, match="refused the key"):
            await run_bootstrap(params(ssh, private_key_path=str(second.key_path),
                                       commands=["true"]), "127.0.0.1", {}, noop)


async def test_no_ssh_server_gives_up_after_ssh_timeout(tmp_path: Path, unused_tcp_port: int):
    async with local_ssh_server(tmp_path) as ssh:
        key = str(ssh.key_path)
    beats: list[str] = []
    with pytest.raises(BootstrapFailed, match=r"no SSH on 127.0.0.1:\d+ after \d attempt"):
        await run_bootstrap(params(ssh, port=unused_tcp_port, private_key_path=key,
                                   ssh_timeout=timedelta(seconds=6), commands=["true"]),
                            "127.0.0.1", {}, beats.append)
    assert beats and beats[0].startswith("waiting for SSH")


async def test_missing_key_and_missing_upload_are_clear(tmp_path: Path):
    async with local_ssh_server(tmp_path) as ssh:
        with pytest.raises(BootstrapFailed, match=r"ssh_private_key_path /nope/key"):
            await run_bootstrap(params(ssh, private_key_path="/nope/key", commands=["true"]),
                                "127.0.0.1", {}, noop)
        with pytest.raises(BootstrapFailed, match="/nope/file is not a file"):
            await run_bootstrap(params(ssh, uploads=[FileUpload(local="/nope/file",
                                                                remote="/tmp/x")]),
                                "127.0.0.1", {}, noop)


async def test_activity_fills_worker_values_and_fails_non_retryable(tmp_path: Path):
    out = tmp_path / "cp.txt"
    cloud = CloudActivities({}, template_values=lambda: {"ControlPlane": "cp:7233",
                                                          "Namespace": "prod"})
    env = ActivityEnvironment()
    async with local_ssh_server(tmp_path) as ssh:
        await env.run(cloud.ssh_bootstrap, params(ssh, commands=[
            f"echo {{{{.ControlPlane}}}} {{{{.Namespace}}}} {{{{.Provider}}}} "
            f"{{{{.InstanceType}}}} > {out}"]))
        assert out.read_text() == "cp:7233 prod sim h100-8x\n"
        with pytest.raises(ApplicationError) as err:
            await env.run(cloud.ssh_bootstrap, params(ssh, commands=["exit 7"]))
    assert err.value.type == "BootstrapFailed" and err.value.non_retryable
    assert "exited 7" in str(err.value)


def test_config_checks_templates_and_carries_settings(tmp_path: Path):
    (tmp_path / "env").write_text("x")
    cfg = tmp_path / "navarch.yaml"
    cfg.write_text("""
providers:
  sim: {type: fake}
defaults:
  ssh_private_key_path: ~/.ssh/navarch
  ssh_timeout: 2m
pools:
  train:
    provider: sim
    instance_type: h100-8x
    max_nodes: 2
    ssh_port: 2222
    command_timeout: 30s
    file_uploads: [{local: env, remote: /etc/navarch/env, mode: "0600"}]
    setup_commands:
      - curl -fsS https://example.com/install.sh | sh -s -- {{.ControlPlane}} {{.NodeID}}
""")
    spec = build_pool_spec(load_config(cfg), "train")
    assert spec.ssh_port == 2222 and spec.ssh_timeout == timedelta(minutes=2)
    assert spec.command_timeout == timedelta(seconds=30)
    assert spec.file_uploads[0].local == str(tmp_path / "env")
    cfg.write_text(cfg.read_text().replace("{{.NodeID}}", "{{.Node}}"))
    with pytest.raises(ValidationFailed) as err:
        load_config(cfg)
    text = str(err.value)
    assert "pools.train.setup_commands[0]" in text and "unknown field 'Node'" in text


async def test_pool_bootstraps_its_agents_over_ssh(dev_env, tmp_path: Path):
    """The setup command starts each node's agent (a real `navarch.agent.main` process with
    simulated GPUs); no host is simulated by the control plane."""
    pids = tmp_path / "pids"
    pids.mkdir()
    client = dev_env.client
    async with local_ssh_server(tmp_path) as ssh, control_plane(
            client, tmp_path, simulate_hosts=False) as plane:
        start_agent = (
            f"cd {Path.cwd()} && nohup {sys.executable} -m navarch.agent.main "
            f"--node-id {{{{.NodeID}}}} --pool {{{{.Pool}}}} --fake-gpus 8 "
            f"--fake-world {plane.world.path} --temporal-address {{{{.ControlPlane}}}} "
            f"--metrics-port 0 --log-level WARNING > {tmp_path}/agent-$$.log 2>&1 & "
            f"echo $! > {pids}/{{{{.NodeID}}}}")
        spec = fast_spec(min_nodes=2, max_nodes=2, setup_commands=["uname -s", start_agent],
                         ssh_private_key_path=str(ssh.key_path), ssh_user=ssh.user,
                         ssh_port=ssh.port, boot_deadline=timedelta(seconds=60))
        try:
            await start_pool(client, plane, spec)
            status = await eventually(lambda: pool_status(client, spec.name),
                                      lambda s: s.counts.get("ready", 0) == 2, within=90,
                                      what="two nodes ready, bootstrapped over SSH")
            node = await node_status(client, status.nodes[0].node_id)
            assert ("booting", "bootstrapped") in transitions(node)
            detail = next(t.detail for t in node.transitions if t.reason.value == "bootstrapped")
            assert "2 setup command(s), 0 file(s) on 127.0.0.1" in detail
            assert len(ssh.commands) == 4
        finally:
            for pid_file in pids.iterdir():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid_file.read_text()), signal.SIGTERM)


async def test_pool_node_whose_setup_fails_is_failed_and_replaced(dev_env, tmp_path: Path):
    client = dev_env.client
    async with local_ssh_server(tmp_path) as ssh, control_plane(
            client, tmp_path, simulate_hosts=False) as plane:
        spec = fast_spec(min_nodes=1, max_nodes=1,
                         setup_commands=["echo 'disk full' >&2; exit 2"],
                         ssh_private_key_path=str(ssh.key_path), ssh_user=ssh.user,
                         ssh_port=ssh.port)
        await start_pool(client, plane, spec)
        status = await eventually(
            lambda: pool_status(client, spec.name),
            lambda s: any("(bootstrap_failed)" in e.detail for e in s.events), within=60,
            what="a bootstrap failure in the pool's events")
        left = next(e for e in status.events if "(bootstrap_failed)" in e.detail)
        node = await node_status(client, left.detail.split(":")[0])
        assert node.state is NodeState.FAILED
        assert "exited 2: disk full" in node.transitions[-1].detail
        # The pool keeps trying: a replacement was started.
        await eventually(lambda: pool_status(client, spec.name),
                         lambda s: s.provisioned >= 2, within=60, what="a second node")
        await client.get_workflow_handle(f"pool/{spec.name}").terminate()
