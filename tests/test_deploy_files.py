"""The deployment files say what Navarch actually reads: they parse, their pools pass the
config loader, the worker's arguments are ones it accepts, and the dashboard queries only
metrics that are exported (and is what the tool generates)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from navarch.config.loader import load_config
from navarch.workers.main import build_parser, control_plane

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def test_compose_file():
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgresql", "temporal", "temporal-ui", "navarch-setup",
                             "navarch-worker", "navarch-codec-server"}
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), (name, image)  # pinned
    worker = services["navarch-worker"]
    args = build_parser().parse_args(worker["command"])
    assert not args.fake_cloud and args.metrics_port == 9400
    assert worker["environment"]["NAVARCH_VERSIONED"] == "${NAVARCH_VERSIONED:-}"  # opt-in
    assert worker["environment"]["TEMPORAL_ADDRESS"] == "${TEMPORAL_ADDRESS:-temporal:7233}"
    # The worker and the setup job both get every setting of a secured connection (an empty
    # one counts as unset) and the secrets folder its TLS files sit in.
    secured = {"TEMPORAL_API_KEY", "TEMPORAL_TLS_CLIENT_CERT_PATH",
               "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
               "NAVARCH_CODEC_KEYS"}
    for name in ("navarch-worker", "navarch-setup"):
        assert secured <= set(services[name]["environment"]), name
        assert "./secrets:/run/secrets/navarch:ro" in services[name]["volumes"], name
    codec = services["navarch-codec-server"]
    assert codec["profiles"] == ["codec"] and codec["entrypoint"] == ["navarch"]
    _parses_as_codec_server(codec["command"])
    assert "NAVARCH_AGENT_TEMPORAL_ADDRESS" in worker["environment"]
    assert "NAVARCH_AGENT_TEMPORAL_ADDRESS" in (ROOT / "workers" / "control_plane.py").read_text()
    assert services["navarch-setup"]["build"]["context"] == "../.."
    assert "navarch setup" in services["navarch-setup"]["command"][0]
    load_config(DEPLOY / "compose" / "pools.example.yaml")


def _parses_as_codec_server(argv: list[str]) -> None:
    from typer.main import get_command

    from navarch.cli.main import app

    assert argv[0] == "codec-server"
    command = get_command(app).get_command(None, "codec-server")  # type: ignore[attr-defined]
    command.make_context("codec-server", list(argv[1:]))


def test_kubernetes_manifests(tmp_path):
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "navarch.yaml").read_text())
            if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "navarch-worker-0.1.0"), ("ConfigMap", "navarch-pools"),
            ("Secret", "navarch-cloud"), ("Secret", "navarch-temporal-tls"),
            ("Service", "navarch-worker-metrics"), ("Job", "navarch-apply-pools"),
            ("Secret", "navarch-temporal-auth"), ("Secret", "navarch-codec-tokens"),
            ("Deployment", "navarch-codec-server"), ("Service", "navarch-codec-server")} <= kinds
    assert all(d["metadata"].get("namespace") == "navarch" for d in docs
               if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"))
    # The RBAC the Kubernetes notifier needs: exactly the calls it makes.
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    grants = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert grants == {("nodes", "get"), ("nodes", "list"), ("nodes", "patch"),
                      ("nodes/status", "patch"), ("pods", "list"), ("pods", "delete"),
                      ("pods/eviction", "create")}
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "navarch-worker"
    deployment = next(d for d in docs if d["kind"] == "Deployment"
                      and d["metadata"]["name"].startswith("navarch-worker-"))
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "navarch-worker"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # Blue-green: a Deployment per build, its name, label, image, and build id all the one
    # build, run versioned; the metrics Service selects every build's pods.
    build = deployment["metadata"]["labels"]["navarch.dev/build"]
    assert deployment["metadata"]["name"] == f"navarch-worker-{build}"
    assert deployment["spec"]["selector"]["matchLabels"]["navarch.dev/build"] == build
    assert container["image"].endswith(f":{build}")
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert plain["NAVARCH_BUILD_ID"] == build and plain["NAVARCH_VERSIONED"] == "1"
    assert deployment["spec"].get("strategy", {}).get("type") != "RollingUpdate"
    service = next(d for d in docs if d["metadata"]["name"] == "navarch-worker-metrics")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "navarch-worker"}
    build_parser().parse_args(container["args"])
    secrets = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]
               if "valueFrom" in e}
    cloud = next(d for d in docs if d["metadata"]["name"] == "navarch-cloud")
    assert secrets <= set(cloud["stringData"])
    pools = next(d for d in docs if d["metadata"]["name"] == "navarch-pools")
    config = tmp_path / "pools.yaml"
    config.write_text(pools["data"]["pools.yaml"])
    load_config(config)
    # Both the worker and the setup job get the API key / codec keys and the TLS files.
    job = next(d for d in docs if d["kind"] == "Job")
    for pod in (deployment["spec"]["template"]["spec"], job["spec"]["template"]["spec"]):
        for c in pod["containers"]:
            refs = {next(iter(e.values()))["name"] for e in c["envFrom"]}
            assert {"navarch-temporal", "navarch-temporal-auth"} <= refs, c["name"]
            mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
            assert mounts["tls"] == "/etc/navarch/tls", c["name"]
        tls = next(v for v in pod["volumes"] if v["name"] == "tls")
        assert tls["secret"]["secretName"] == "navarch-temporal-tls"
    codec = next(d for d in docs if d["kind"] == "Deployment"
                 and d["metadata"]["name"] == "navarch-codec-server")
    codec_container = codec["spec"]["template"]["spec"]["containers"][0]
    assert codec_container["command"][0] == "navarch"
    _parses_as_codec_server(codec_container["command"][1:])
    temporal = next(d for d in docs if d["metadata"]["name"] == "navarch-temporal")
    assert set(temporal["data"]) <= {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE",
                                     "NAVARCH_AGENT_TEMPORAL_ADDRESS"}


def test_dockerfile_copies_what_exists():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def _exported_metrics() -> set[str]:
    names = set(re.findall(r"^\| `(\w+)` \|", (ROOT / "workflows" / "metrics.py").read_text(),
                           re.M))
    fleet = {"navarch_" + n for n in names}
    histograms = {f"{n}_bucket" for n in fleet if n.endswith("_seconds")}
    agent = set(re.findall(r'"((?:DCGM_FI_DEV|navarch)_[A-Za-z_]+)"',
                           (ROOT / "agent" / "metrics.py").read_text()))
    gauges = set(re.findall(r'\("(navarch_pool_[a-z_]+)", "',
                            (ROOT / "workers" / "fleet_gauges.py").read_text()))
    assert gauges == {"navarch_pool_nodes", "navarch_pool_gpus", "navarch_pool_target"}
    return fleet | histograms | agent | gauges


def test_grafana_dashboard_is_current_and_queries_exported_metrics():
    text = (DEPLOY / "grafana" / "navarch.json").read_text()
    dashboard = json.loads(text)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_grafana_dashboard", ROOT / "tools" / "build_grafana_dashboard.py")
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert dashboard == builder.build(), "run: python tools/build_grafana_dashboard.py"
    exported = _exported_metrics()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\b((?:navarch|DCGM_FI_DEV)_[A-Za-z_]+)\b", target["expr"]))
    assert used and used <= exported, used - exported


def test_setup_command_is_there():
    result = subprocess.run([sys.executable, "-m", "navarch.cli", "setup", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "search attributes" in result.stdout


async def test_setup_against_a_server(dev_env):
    import asyncio
    import os

    env = {**os.environ, "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "navarch.cli", "setup"], env=env,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "search attributes: all present" in result.stdout


def test_a_worker_offers_the_fake_cloud_only_when_asked(tmp_path):
    plain = control_plane(None, build_parser().parse_args([]))  # type: ignore[arg-type]
    assert plain.world is None and "fake" not in plain.provider_factories()
    asked = control_plane(None, build_parser().parse_args(  # type: ignore[arg-type]
        ["--fake-cloud", "--fake-world", str(tmp_path / "w.db")]))
    assert asked.world is not None and "fake" in asked.provider_factories()
