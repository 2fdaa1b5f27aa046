"""`navarch up --demo` as a newcomer runs it: a real dev server, the worker, simulated hosts;
Ctrl-C stops everything; running it again picks up where it left off."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, screenshot_when

from navarch.temporal.devserver import free_port

BIN = Path(sys.executable).parent


@pytest.fixture
def up_env(tmp_path):
    port, ui, metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "HOME": str(tmp_path), "NAVARCH_HOME": str(tmp_path / ".navarch"),
           "TEMPORAL_ADDRESS": f"127.0.0.1:{port}", "PYTHONUNBUFFERED": "1",
           "NAVARCH_TEST_METRICS_PORT": str(metrics)}
    env.pop("NAVARCH_FAKE_WORLD", None)
    return env, port, ui, tmp_path


def start_up(env, port, ui, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "navarch"), "up", "--demo", "--address", f"127.0.0.1:{port}",
         "--ui-port", str(ui), "--metrics-port", env["NAVARCH_TEST_METRICS_PORT"]],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def navarch(env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "navarch"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def wait_for(check, within: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out: {what}; last={last!r}\n--- navarch up log:\n{tail}")


def demo_nodes(env) -> list[dict[str, str]]:
    result = navarch(env, "node", "list", "--pool", "demo", "-o", "json")
    return json.loads(result.stdout) if result.returncode == 0 else []


def stop(proc: subprocess.Popen[bytes]) -> int:
    os.killpg(proc.pid, signal.SIGINT)
    return proc.wait(30)


def test_up_demo_runs_a_fleet_stops_cleanly_and_resumes(up_env):
    env, port, ui, home = up_env
    log = home / "up.log"
    proc = start_up(env, port, ui, log)
    try:
        ready = wait_for(lambda: len([n for n in demo_nodes(env) if n["state"] == "ready"]) >= 3
                         and [n for n in demo_nodes(env) if n["state"] == "ready"], 90, "3 ready", log)
        assert urllib.request.urlopen(f"http://127.0.0.1:{ui}/", timeout=5).status == 200
        def pool_gauges() -> bool:  # read from the pools every 10 s
            metrics = urllib.request.urlopen(
                f"http://127.0.0.1:{env['NAVARCH_TEST_METRICS_PORT']}/metrics", timeout=5).read()
            return b'navarch_pool_nodes{' in metrics and b'pool="demo"' in metrics

        wait_for(pool_gauges, 30, "the pool's gauges", log)
        # Piped (as into grep), the table keeps every column: a row per node, whole.
        rows = navarch(env, "node", "list").stdout.splitlines()
        for node in ready:
            row = next(line for line in rows if node["node_id"] in line)
            assert "demo" in row and "8x H100" in row and "ready" in row, rows
        victim = ready[0]["node_id"]
        result = navarch(env, "demo", "inject-xid", victim, "79")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: any(n["node_id"] == victim and n["state"] == "terminated"
                             for n in demo_nodes(env)), 60, "victim terminated")
        wait_for(lambda: len([n for n in demo_nodes(env) if n["state"] == "ready"]) == 3, 60,
                 "replacement ready")
        before = {n["node_id"] for n in demo_nodes(env) if n["state"] == "ready"}
    finally:
        rc = stop(proc)
    assert rc == 0, log.read_text()[-2000:]
    assert "stopped" in log.read_text()
    assert (home / ".navarch" / "temporal.db").exists()

    # Again: the same pool and nodes come back (state is in SQLite), no new machines.
    proc = start_up(env, port, ui, log)
    try:
        after = wait_for(lambda: {n["node_id"] for n in demo_nodes(env)
                                  if n["state"] == "ready"} == before and before, 90,
                         "the same nodes ready again")
        # The pool hears of its nodes through their reports: give them a moment to land.
        status = wait_for(
            lambda: (lambda st: st if st["ready"] == 3 else None)(
                json.loads(navarch(env, "pool", "status", "demo", "-o", "json").stdout)),
            30, "the pool counting 3 ready nodes")
        assert status["provisioned"] == 4
    finally:
        assert stop(proc) == 0
    assert after == before


def test_operator_commands_scale_list_history_delete(up_env):
    import yaml

    env, port, ui, home = up_env
    log = home / "up.log"
    proc = start_up(env, port, ui, log)
    try:
        wait_for(lambda: len([n for n in demo_nodes(env) if n["state"] == "ready"]) >= 3, 90,
                 "3 ready", log)
        pools = json.loads(navarch(env, "pool", "list", "-o", "json").stdout)
        assert [(p["pool"], p["target"], p["ready"]) for p in pools] == [("demo", 3, 3)]
        table = navarch(env, "pool", "list").stdout
        assert "demo" in table and "3/3" in table

        scaled = navarch(env, "pool", "scale", "demo", "4")
        assert scaled.returncode == 0 and "target 3 → 4" in scaled.stdout, scaled.stderr
        wait_for(lambda: len([n for n in demo_nodes(env) if n["state"] == "ready"]) == 4, 60,
                 "4 ready")
        clamped = navarch(env, "pool", "scale", "demo", "99")
        assert "outside min" in clamped.stderr and "target 4 → 6" in clamped.stdout

        node = demo_nodes(env)[0]
        assert node["gpus"] == "8x H100"
        wait_for(lambda: demo_nodes(env)[0]["last_heartbeat"], 30, "a heartbeat time")
        history = yaml.safe_load(navarch(env, "node", "history", node["node_id"], "-o",
                                         "yaml").stdout)
        assert [h["to_state"] for h in history][:4] == ["provisioning", "booting",
                                                         "boot_checking", "ready"]
        assert "boot_check_passed" in navarch(env, "node", "history", node["node_id"]).stdout
        got = navarch(env, "node", "get", node["node_id"]).stdout
        assert "GPU 7: NVIDIA H100" in got and "boot check gpu_count: pass" in got

        deleted = navarch(env, "pool", "delete", "demo", "--timeout", "90")
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert "pool demo: deleted" in deleted.stdout
        assert all(n["state"] == "terminated" for n in demo_nodes(env))
        assert json.loads(navarch(env, "pool", "list", "-o", "json").stdout) == []
        missing = navarch(env, "pool", "scale", "nope", "2")
        assert missing.returncode == 1 and "pool nope" in missing.stderr
    finally:
        assert stop(proc) == 0


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed")
def test_ui_lists_the_cordoned_node(up_env):
    """What an operator sees: the Temporal UI's workflow list, filtered by
    NavarchNodeState="cordoned", shows the node just cordoned and no other. The screenshot is
    kept in test-artifacts/."""
    env, port, ui, home = up_env
    log = home / "up.log"
    proc = start_up(env, port, ui, log)
    try:
        ready = wait_for(lambda: len([n for n in demo_nodes(env) if n["state"] == "ready"]) >= 3
                         and [n for n in demo_nodes(env) if n["state"] == "ready"], 90, "3 ready",
                         log)
        victim, others = ready[0]["node_id"], [n["node_id"] for n in ready[1:]]
        assert navarch(env, "node", "cordon", victim, "--reason", "bad fan").returncode == 0
        url = (f"http://127.0.0.1:{ui}/namespaces/default/workflows"
               "?query=NavarchNodeState%3D%22cordoned%22")
        artifacts = Path(os.environ.get("NAVARCH_TEST_ARTIFACTS",
                                        Path(__file__).parent.parent / "test-artifacts"))
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = artifacts / "ui-cordoned-nodes.png"
        browser = [str(chromium()), "--headless", "--no-sandbox", "--disable-gpu",
                   "--window-size=1400,900", "--virtual-time-budget=15000",
                   f"--user-data-dir={home / 'chromium'}"]

        def rendered() -> str:
            dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True,
                                 timeout=90).stdout
            return dom if f"node/{victim}" in dom else ""

        dom = wait_for(rendered, 60, "the cordoned node in the UI's list")
        assert not any(f"node/{other}" in dom for other in others)
        subprocess.run([*browser, f"--screenshot={shot}", url], capture_output=True,
                       timeout=90, check=True)
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    finally:
        assert stop(proc) == 0


@pytest.fixture
def codec_up(up_env):
    """`navarch up --demo` with codec keys, once a node is ready: (env, port, ui, home, log,
    the ready node's id); stopped cleanly after the test."""
    import base64

    env, port, ui, home = up_env
    env = {**env, "NAVARCH_CODEC_KEYS": f"up1={base64.b64encode(b'u' * 32).decode()}"}
    log = home / "up.log"
    proc = start_up(env, port, ui, log)
    try:
        node = wait_for(lambda: [n for n in demo_nodes(env) if n["state"] == "ready"], 90,
                        "a ready node", log)[0]["node_id"]
        yield env, port, ui, home, log, node
    finally:
        assert stop(proc) == 0
    assert "stopped" in log.read_text()


def test_up_with_codec_keys_encrypts_history_and_serves_the_ui_a_codec(codec_up):
    """With NAVARCH_CODEC_KEYS set, `navarch up` writes every payload encrypted, the operator
    CLI still reads the fleet, and the UI it starts decodes through its own codec server."""
    import base64
    import re

    from navarch.temporal.client import temporal_cli_path

    env, port, ui, _home, log, node = codec_up
    settings = json.loads(urllib.request.urlopen(
        f"http://127.0.0.1:{ui}/api/v1/settings", timeout=5).read())
    endpoint = settings["Codec"]["Endpoint"]
    announced = re.search(r"--codec-endpoint (\S+) --codec-auth 'Bearer (\S+)'",
                          log.read_text())
    assert announced, log.read_text()[-2000:]
    url, token = announced.groups()
    assert endpoint == f"{url}/{token}" and url.startswith("http://127.0.0.1:")

    plain_env = {k: v for k, v in env.items() if k != "NAVARCH_CODEC_KEYS"}

    def show(*extra: str) -> str:
        done = subprocess.run(
            [temporal_cli_path(), "workflow", "show", "-w", f"node/{node}", "-o", "json",
             "--address", f"127.0.0.1:{port}", *extra], env=plain_env,
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def payloads(dump: str) -> list[dict[str, Any]]:
        """Every payload in a dump but search attributes and patch ids (plain by design)."""
        found: list[dict[str, Any]] = []

        def walk(value):
            if isinstance(value, dict):
                if "metadata" in value and "data" in value:
                    found.append(value)
                for key, inner in value.items():
                    if key not in ("searchAttributes", "patch-data"):
                        walk(inner)
            elif isinstance(value, list):
                for inner in value:
                    walk(inner)

        walk(json.loads(dump))
        return found

    def encoding(payload: dict[str, Any]) -> str:
        return base64.b64decode(payload["metadata"].get("encoding", "")).decode()

    raw = payloads(show())
    assert raw and {encoding(p) for p in raw} == {"binary/encrypted"}
    assert not any(b"H100" in base64.b64decode(p["data"]) for p in raw)
    decoded = payloads(show("--codec-endpoint", url, "--codec-auth", f"Bearer {token}"))
    assert "binary/encrypted" not in {encoding(p) for p in decoded}
    assert any(b"H100" in base64.b64decode(p["data"]) for p in decoded)
    refused = subprocess.run(
        [temporal_cli_path(), "workflow", "show", "-w", f"node/{node}", "-o", "json",
         "--address", f"127.0.0.1:{port}", "--codec-endpoint", url, "--codec-auth",
         "Bearer wrong"], env=plain_env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "H100" not in refused.stdout, refused.stderr


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed")
def test_ui_reads_an_encrypted_node_history_through_the_codec_server(codec_up):
    """The history is sealed on the server, yet the UI `navarch up` starts shows a node's
    input as JSON a person can read: it decodes through the codec server. The screenshot is
    kept in test-artifacts/."""
    _env, _port, ui, home, _log, node = codec_up
    url = f"http://127.0.0.1:{ui}/namespaces/default/workflows/node%2F{node}"
    artifacts = Path(os.environ.get("NAVARCH_TEST_ARTIFACTS",
                                    Path(__file__).parent.parent / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "ui-node-history-decoded.png"
    text = screenshot_when(url, [f'"node_id": "{node}"', '"instance_type": "h100-8x"'],
                           shot, home / "chromium", within=60)
    assert "Event History" in text and "binary/encrypted" not in text
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
