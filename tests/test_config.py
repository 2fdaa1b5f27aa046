"""The Go Navarch's config format loads unchanged; broken files report every error at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from navarch.config.loader import load_config
from navarch.validation import ValidationFailed


def _errors(text: str, name: str = "cfg.yaml") -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        load_config(name, text=text)
    return [str(p) for p in info.value.problems]


def test_go_format_config_with_several_pools_and_providers_loads(fixtures):
    loaded = load_config(fixtures / "go_config.yaml")
    cfg = loaded.config
    assert set(cfg.pools) == {"training", "fungible", "dev"}
    assert {n: p.type for n, p in cfg.providers.items()} == {
        "lambda": "lambda", "gcp": "gcp", "aws": "aws", "local": "fake",
    }
    training = cfg.pools["training"]
    assert training.cooldown == timedelta(minutes=5)
    assert training.labels == {"team": "research", "tier": "1"}
    assert training.autoscaling is not None and training.autoscaling.scale_up_at == 85
    assert training.ssh_timeout == timedelta(minutes=2)
    fungible = cfg.pools["fungible"]
    assert fungible.strategy == "cost"
    assert [e.name for e in fungible.providers or []] == ["lambda", "gcp", "aws"]
    assert fungible.cooldown == timedelta(seconds=90)
    composite = fungible.autoscaling
    assert composite is not None and composite.mode == "max"
    assert composite.autoscalers[1].fallback is not None
    assert composite.autoscalers[1].fallback.growth_factor == 1.3
    # The Go name `coordinator` is the notifier.
    notifier = cfg.server.effective_notifier
    assert notifier.type == "webhook" and notifier.webhook is not None
    assert notifier.webhook.timeout == timedelta(seconds=20)
    assert notifier.webhook.headers["Authorization"] == "Bearer ${SCHEDULER_TOKEN}"
    # Documented-but-ignored settings now have meaning.
    assert cfg.server.instance_manager.registration_timeout == timedelta(minutes=12)
    assert cfg.server.effective_heartbeat_timeout == timedelta(seconds=90)
    assert loaded.health_policy_path() == fixtures / "policies" / "strict.yaml"
    assert loaded.warnings == []


def test_defaults_apply_to_pools(fixtures):
    cfg = load_config(fixtures / "go_config.yaml").config
    dev, training = cfg.pools["dev"], cfg.pools["training"]
    assert cfg.pool_ssh_keys(dev) == ["ops", "ml"]
    assert cfg.pool_ssh_keys(training) == ["ops"]
    assert cfg.pool_health(dev).unhealthy_after == 3
    assert cfg.pool_health(training).unhealthy_after == 2
    assert cfg.pool_ssh_user(dev) == "ubuntu"
    assert dev.cooldown == timedelta(minutes=5)
    assert dev.min_nodes == 0


def test_broken_file_reports_every_error_with_file_path_line_and_value(fixtures):
    path = fixtures / "broken_config.yaml"
    with pytest.raises(ValidationFailed) as info:
        load_config(path)
    text = "\n".join(str(p) for p in info.value.problems)
    expected = [
        f"{path}:2: server.heartbeat_intreval: unknown key 'heartbeat_intreval'; "
        "did you mean 'heartbeat_interval'?",
        f"{path}:4: providers.lambda.type: this key is required",
        f"{path}:11: pools.training.provider: unknown provider 'lamda'; did you mean 'lambda'?",
        f"{path}:13: pools.training.min_nodes: min_nodes (8) cannot exceed max_nodes (4)",
        f"{path}:15: pools.training.cooldown: 5 has no unit; write a duration such as 5s or 5m",
        f"{path}:16: pools.training.setup_commands: setup_commands and file_uploads run over "
        "SSH: set ssh_private_key_path",
        f"{path}:17: pools.inference: set `provider` or `providers`, not both",
        "pools.inference.instance_type: this key is required",
        f"{path}:21: pools.inference.min_nodes: expected a number at least 0 (got -1)",
        f"{path}:22: pools.inference.max_nodes: expected a number greater than 0 (got 0)",
        f"{path}:24: pools.inference.autoscaling.type: expected one of 'reactive', 'queue', "
        "'scheduled', 'predictive' or 'composite'; did you mean 'reactive'? (got 'reactiv')",
    ]
    for fragment in expected:
        assert fragment in text, f"missing: {fragment}\n--- got:\n{text}"
    assert len(info.value.problems) == len(expected)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("providers: {}\npools: {}\n", "pools: at least one pool is required"),
        ("providers: {f: {type: fake}}\npools:\n  p: {instance_type: x, max_nodes: 1}\n",
         "pools.p: needs `provider` (one provider) or `providers` (a list)"),
        ("providers: {f: {type: fake}}\npools:\n  p: {provider: f, max_nodes: 1}\n",
         "pools.p.instance_type: this key is required"),
        ("providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: -2}\n",
         "pools.p.max_nodes: expected a number greater than 0"),
        ("providers: {f: {type: fake}}\npools:\n  p: {provider: g, instance_type: x, max_nodes: 1}\n",
         "pools.p.provider: unknown provider 'g'"),
        ("providers: {f: {}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: 1}\n",
         "providers.f.type: this key is required"),
        ("providers: {a: {type: aws}}\npools:\n  p: {provider: a, instance_type: a100-1x, max_nodes: 1}\n",
         "abstract instance type 'a100-1x' has no aws equivalent"),
        ("providers: {a: {type: aws}}\npools:\n  p: {provider: a, instance_type: a100-4x, max_nodes: 1}\n",
         "abstract instance type 'a100-4x' has no aws equivalent"),
        ("providers: {g: {type: gcp, project: x}}\npools:\n  p: {provider: g, instance_type: a10-1x, "
         "max_nodes: 1}\n",
         "abstract instance type 'a10-1x' has no gcp equivalent"),
        ("providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: 1,\n"
         "      autoscaling: {type: scheduled}}\n",
         "a scheduled autoscaler needs at least one `schedule` window"),
        ("providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: 1,\n"
         "      autoscaling: {type: composite, mode: median, autoscalers: [{type: queue}]}}\n",
         "pools.p.autoscaling.mode: expected one of 'max', 'min' or 'avg'"),
        ("server: {heartbeat_interval: 30 seconds}\nproviders: {f: {type: fake}}\n"
         "pools:\n  p: {provider: f, instance_type: x, max_nodes: 1}\n",
         "server.heartbeat_interval: '30 seconds' is not a duration"),
        ("pools: [a, b]\n", "pools: expected a mapping of keys to values"),
        ("providers: {a: {type: aws, region: us-east-1, ami: ami-east, subnet_id: subnet-e}}\n"
         "pools:\n  p: {provider: a, instance_type: h100-8x, max_nodes: 1, region: us-west-2}\n",
         "cfg.yaml:3: pools.p.provider: pool lands in us-west-2, but provider 'a' gives ami, "
         "subnet_id only for us-east-1: set them under providers.a.regions.us-west-2"),
        ("providers: {a: {type: aws, region: us-east-1, ami: ami-east, subnet_id: subnet-e,\n"
         "  regions: {us-west-2: {ami: ami-west}}}}\n"
         "pools:\n  p: {provider: a, instance_type: h100-8x, max_nodes: 1, region: us-west-2}\n",
         "gives subnet_id only for us-east-1"),
        ("server: {orphan_sweep: {mode: delete}}\nproviders: {f: {type: fake}}\n"
         "pools:\n  p: {provider: f, instance_type: x, max_nodes: 1}\n",
         "server.orphan_sweep.mode: expected one of 'terminate', 'report' or 'off'"),
        ("server: {notifier: {type: slurm, slurm: {node_name: 'gpu-{{.Host}}'}}}\n"
         "providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, "
         "max_nodes: 1}\n", "unknown field {{.Host}} (known: Hostname, NodeID, InstanceID, Pool)"),
        ("server: {notifier: {type: kubernetes, kubernetes: {on_grace_end: requeue}}}\n"
         "providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, "
         "max_nodes: 1}\n", "server.notifier.kubernetes.on_grace_end: expected one of"),
        ("server: {cluster_id: Prod_A}\nproviders: {f: {type: fake}}\n"
         "pools:\n  p: {provider: f, instance_type: x, max_nodes: 1}\n",
         "server.cluster_id"),
        ("providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: 1\n",
         "not valid YAML"),
        ("providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: 1,\n"
         "      health: {remediation: [reboot, reset]}}\n",
         "cfg.yaml:4: pools.p.health.remediation: list the rungs cheapest first: reset, reboot"),
        ("providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, max_nodes: 1,\n"
         "      health: {remediation: [restart]}}\n",
         "pools.p.health.remediation[0]: expected one of 'reset', 'reboot' or 'replace'; did "
         "you mean 'reset'? (got 'restart')"),
    ],
)
def test_go_validation_rules_and_more(snippet, message):
    errors = _errors(snippet)
    assert any(message in e for e in errors), errors


def test_irrelevant_autoscaler_parameter_is_a_warning_not_an_error():
    loaded = load_config("c.yaml", text=(
        "providers: {f: {type: fake}}\npools:\n  p:\n    provider: f\n    instance_type: x\n"
        "    max_nodes: 2\n    autoscaling: {type: queue, jobs_per_node: 5, scale_up_at: 90}\n"
    ))
    assert [str(w) for w in loaded.warnings] == [
        "c.yaml:7: pools.p.autoscaling.scale_up_at: queue autoscaler ignores `scale_up_at`"
    ]


def test_bad_health_policy_file_is_reported_through_the_config(tmp_path):
    (tmp_path / "policy.yaml").write_text(
        "version: v1\nrules:\n  - name: r\n    condition: event.event_type ==\n    result: healthy\n"
    )
    (tmp_path / "config.yaml").write_text(
        "server: {health_policy: policy.yaml}\nproviders: {f: {type: fake}}\n"
        "pools:\n  p: {provider: f, instance_type: x, max_nodes: 1}\n"
    )
    errors = _errors_from(tmp_path / "config.yaml")
    assert "server.health_policy: the health policy" in errors[0]
    assert "rules[0].condition: rule 'r': CEL syntax error at line 1" in errors[1]


def _errors_from(path):
    with pytest.raises(ValidationFailed) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_missing_file_is_a_clear_error(tmp_path):
    errors = _errors_from(tmp_path / "nope.yaml")
    assert errors == [f"{tmp_path / 'nope.yaml'}: (top level): file not found"]


def test_schedule_days_accept_short_names_and_reject_typos():
    base = ("providers: {f: {type: fake}}\npools:\n  p:\n    provider: f\n    instance_type: x\n"
            "    max_nodes: 9\n    autoscaling:\n      type: scheduled\n      schedule:\n")
    ok = load_config("c.yaml", text=base + "        - {days: [Mon, tue], start: 22, end: 6,"
                     " min_nodes: 1, max_nodes: 2}\n")
    window = ok.config.pools["p"].autoscaling.schedule[0]  # type: ignore[union-attr]
    assert window.days == ["monday", "tuesday"]
    errors = _errors(base + "        - {days: [thursdy], start: 9, end: 9, min_nodes: 3,"
                     " max_nodes: 2}\n")
    assert any("'thursdy' is not a day of the week; did you mean 'thursday'?" in e
               for e in errors)


def test_per_region_ids_and_the_orphan_sweep_load():
    from navarch.contracts.spec import build_pool_specs
    from navarch.contracts.sweep import build_sweep_config

    loaded = load_config("cfg.yaml", text="""
server:
  cluster_id: prod-a
  orphan_sweep: {interval: 30s, grace: 5m, mode: report}
providers:
  aws:
    type: aws
    region: us-east-1
    ami: ami-east
    regions:
      us-west-2: {ami: ami-west, subnet_id: subnet-w}
  lam: {type: lambda}
pools:
  p:
    providers:
      - {name: aws, regions: [us-east-1, us-west-2]}
      - {name: lam, regions: [us-west-1]}
    instance_type: h100-8x
    max_nodes: 2
""")
    choice = build_pool_specs(loaded)["p"].providers[0]
    assert choice.ids_for("us-west-2").ami == "ami-west"
    assert choice.ids_for("us-west-2").subnet_id == "subnet-w"
    assert choice.ids_for("us-east-1").ami == "ami-east"
    assert build_pool_specs(loaded)["p"].cluster_id == "prod-a"
    sweep = build_sweep_config(loaded)
    assert (sweep.cluster_id, sweep.interval, sweep.grace, sweep.mode) == (
        "prod-a", timedelta(seconds=30), timedelta(minutes=5), "report")
    # AWS per region; Lambda's listing is global: once.
    assert [t.key() for t in sweep.targets] == ["aws/us-east-1", "aws/us-west-2", "lam/*"]


def test_a_pool_may_drain_through_its_own_scheduler():
    from navarch.contracts.spec import build_pool_specs

    loaded = load_config("cfg.yaml", text="""
server:
  notifier: {type: slurm, slurm: {node_name: "{{.Hostname}}", on_grace_end: cancel}}
providers: {f: {type: fake}}
pools:
  hpc: {provider: f, instance_type: h100-8x, max_nodes: 2}
  serving:
    provider: f
    instance_type: h100-8x
    max_nodes: 2
    notifier: {type: kubernetes}
""")
    specs = build_pool_specs(loaded)
    assert specs["hpc"].notifier.slurm is not None
    assert specs["hpc"].notifier.on_grace_end == "cancel"
    assert specs["serving"].notifier.type == "kubernetes"
    assert specs["serving"].notifier.on_grace_end == "delete"  # the default block


def test_a_go_config_replaces_and_the_ladder_is_opt_in(fixtures):
    """Without `remediation` a pool replaces, as the Go Navarch; with it, the ladder's rungs
    and settings reach the pool spec."""
    from navarch.contracts.spec import build_pool_specs

    go = build_pool_specs(load_config(fixtures / "go_config.yaml"))
    assert go and all(spec.health.remediation == ["replace"] for spec in go.values())
    loaded = load_config("c.yaml", text=(
        "providers: {f: {type: fake}}\npools:\n  p: {provider: f, instance_type: x, "
        "max_nodes: 1,\n      health: {remediation: [reset, reboot, replace], "
        "reboot_timeout: 20m, validation: [{kind: gpu_burn, seconds: 120}]}}\n"))
    [spec] = build_pool_specs(loaded).values()
    assert spec.health.remediation == ["reset", "reboot", "replace"]
    assert spec.health.reboot_timeout.total_seconds() == 1200
    assert [(c.kind, c.seconds) for c in spec.health.validation] == [("gpu_burn", 120)]
