"""From a Go-format config to the pool spec the workflows receive."""

from __future__ import annotations

import json
from datetime import timedelta

from navarch.config.loader import load_config
from navarch.contracts.spec import PoolSpec, build_pool_spec, build_pool_specs


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


def test_the_default_policy_is_left_out_of_the_stored_spec_and_comes_back(tmp_path, fixtures):
    """A spec travels in every node's input: the built-in policy (5 of its 6.5 KB) is not
    written out, and decoding gives it back; a pool's own policy is always written."""
    (tmp_path / "c.yaml").write_text(
        "providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: 1}\n")
    spec = build_pool_spec(load_config(tmp_path / "c.yaml"), "p")
    stored = json.loads(spec.model_dump_json())
    assert "health_policy" not in stored and len(spec.model_dump_json()) < 2000
    assert PoolSpec.model_validate(stored) == spec
    strict = build_pool_spec(load_config(fixtures / "go_config.yaml"), "training")
    assert strict.health_policy.metadata.name == "strict"
    back = PoolSpec.model_validate_json(strict.model_dump_json())
    assert back.health_policy.metadata.name == "strict" and back == strict


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


GCP_CONFIG = """
providers:
  gcp-n1: {type: gcp, project: ml, zone: us-central1-a, accelerator_type: nvidia-tesla-t4,
           accelerator_count: 4}
  gcp: {type: gcp, project: ml}
  aws: {type: aws, region: us-east-1}
pools:
  t4:
    provider: gcp-n1
    instance_type: n1-standard-16
    max_nodes: 2
  spread:
    providers:
      - {name: gcp, regions: [us-central1], zones: [us-central1-b, us-central1-c]}
      - {name: aws, regions: [us-east-1]}
    zones: [us-east-1a]
    instance_type: h100-8x
    max_nodes: 2
"""


def test_n1_accelerators_and_per_provider_zones(tmp_path):
    path = tmp_path / "navarch.yaml"
    path.write_text(GCP_CONFIG)
    specs = build_pool_specs(load_config(path))
    n1 = specs["t4"].providers[0]
    assert (n1.instance_type, n1.accelerator_type, n1.accelerator_count) == (
        "n1-standard-16", "nvidia-tesla-t4", 4)
    shape = n1.gpu_shape()
    assert shape is not None and (shape.count, shape.model) == (4, "T4")
    gcp, aws = specs["spread"].providers
    assert gcp.zones == ["us-central1-b", "us-central1-c"]  # its own
    assert aws.zones == ["us-east-1a"]  # the pool's
    assert [(c.name, r, z) for c, r, z in specs["spread"].placements()] == [
        ("gcp", "us-central1", "us-central1-b"), ("gcp", "us-central1", "us-central1-c"),
        ("aws", "us-east-1", "us-east-1a")]


def test_n1_without_accelerator_and_stray_zones_are_errors(tmp_path):
    import pytest

    from navarch.validation import ValidationFailed

    path = tmp_path / "navarch.yaml"
    path.write_text(GCP_CONFIG.replace("accelerator_type: nvidia-tesla-t4,", "")
                    .replace("zones: [us-central1-b, us-central1-c]",
                             "zones: [us-central1-b, europe-west4-a]")
                    .replace("provider: gcp-n1\n    instance_type: n1-standard-16",
                             "provider: gcp-n1\n    instance_type: n1-standard-16\n"
                             "  t4b:\n    provider: gcp\n    instance_type: n1-standard-8"))
    with pytest.raises(ValidationFailed) as err:
        load_config(path)
    text = str(err.value)
    assert "n1-standard-8 has no GPU built in: set accelerator_type" in text
    assert "pools.spread.providers[0].zones[1]" in text
    assert "zone 'europe-west4-a' is in none of this provider's regions (us-central1)" in text
