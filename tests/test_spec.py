"""From a Go-format config to the pool spec the workflows receive."""

from __future__ import annotations

from datetime import timedelta

from navarch.config import load_config
from navarch.spec import PoolSpec, build_pool_spec, build_pool_specs


def test_spec_resolves_providers_policy_and_timeouts(fixtures):
    loaded = load_config(fixtures / "go_config.yaml")
    specs = build_pool_specs(loaded)
    fungible = specs["fungible"]
    assert [(p.name, p.type, p.instance_type) for p in fungible.ordered_providers()] == [
        ("lambda", "lambda", "gpu_8x_h100_sxm5"), ("gcp", "gcp", "a3-highgpu-8g"),
        ("aws", "aws", "p5.48xlarge")]
    assert fungible.providers[0].api_key_env == "LAMBDA_API_KEY"
    assert fungible.providers[1].regions == ["us-central1"]
    training = specs["training"]
    assert training.health_policy.metadata.name == "strict"  # server.health_policy, relative
    assert training.boot_deadline == timedelta(minutes=12)
    assert training.heartbeat_timeout == timedelta(seconds=90)
    assert training.health_check_interval == timedelta(minutes=1)
    assert training.notifier.type == "webhook"
    assert training.ssh_keys == ["ops"] and specs["dev"].ssh_keys == ["ops", "ml"]
    assert specs["dev"].providers[0].instance_type == "h100-8x"  # fake takes abstract names
    assert specs["dev"].health.unhealthy_after == 3  # from defaults


def test_spec_round_trips_through_json_without_secrets(fixtures, monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", "lambda-secret-123")
    spec = build_pool_spec(load_config(fixtures / "go_config.yaml"), "training")
    text = spec.model_dump_json()
    assert "lambda-secret-123" not in text
    assert '"cooldown":"5m"' in text
    assert PoolSpec.model_validate_json(text) == spec


def test_default_policy_when_config_names_none(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: 1}\n")
    spec = build_pool_spec(load_config(tmp_path / "c.yaml"), "p")
    assert spec.health_policy.metadata.name == "navarch-default"
    assert spec.boot_deadline == timedelta(minutes=10)


def test_navarch_additions_boot_checks_and_diagnostics(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "providers: {f: {type: fake}}\npools:\n  p:\n    provider: f\n    instance_type: h100-8x\n"
        "    max_nodes: 1\n    boot_checks: {required_services: [nvidia-fabricmanager],"
        " match_gpu_model: true}\n"
        "    diagnostics: {cron: '0 4 * * 6', checks: [{kind: nccl, min_bus_gbps: 350}]}\n")
    spec = build_pool_spec(load_config(tmp_path / "c.yaml"), "p")
    assert spec.required_services == ["nvidia-fabricmanager"] and spec.shape_check == "strict"
    assert spec.diagnostics.cron == "0 4 * * 6"
    assert spec.diagnostics.checks[0].kind == "nccl"
    assert spec.diagnostics.checks[0].min_bus_gbps == 350
