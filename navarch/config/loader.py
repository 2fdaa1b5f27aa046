"""Loading the control-plane config file: the schema (`schema.py`), then the rules that span
several keys, then the health policy it names; every problem in the file at once, errors
apart from warnings, each with its file, key path, line and value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from navarch.config.instance_types import ABSTRACT_INSTANCE_TYPES, resolve_instance_type
from navarch.config.schema import (
    AUTOSCALER_PARAMETERS,
    AutoscalingConfig,
    NavarchConfig,
    regional_gaps,
)
from navarch.config.setup_commands import template_problems
from navarch.health.policy import load_policy
from navarch.validation import (
    KeyPath,
    Problem,
    ValidationFailed,
    YamlDocument,
    load_yaml,
    problems_from_pydantic,
    suggest,
)


@dataclass
class LoadedConfig:
    """A config that passed validation, with where it came from and any warnings."""

    path: Path
    config: NavarchConfig
    warnings: list[Problem] = field(default_factory=list)

    def health_policy_path(self) -> Path | None:
        if not self.config.server.health_policy:
            return None
        return resolve_relative(self.path, self.config.server.health_policy)


def resolve_relative(config_path: Path, target: str) -> Path:
    """Paths in a config file are relative to the file, not to the working directory."""
    p = Path(target).expanduser()
    return p if p.is_absolute() else config_path.parent / p


def _check_gcp_accelerator(path: KeyPath, ref: str, provider: Any, override: Any,
                           instance_type: str, problem: Callable[..., None]) -> None:
    """N1 machine types carry no GPU: they need the provider's `accelerator_type`; the
    A2/A3/G2 families have theirs built in and take none."""
    if not isinstance(provider, dict):
        return
    concrete = (override if isinstance(override, str)
                else resolve_instance_type(instance_type, "gcp") or instance_type)
    accelerator = provider.get("accelerator_type")
    if concrete.startswith("n1-") and not accelerator:
        problem(path, f"{concrete} has no GPU built in: set accelerator_type (e.g. "
                f"nvidia-tesla-t4) on provider {ref!r}", value=ref)
    elif accelerator and not concrete.startswith("n1-"):
        problem(path, f"provider {ref!r} attaches {accelerator}, but {concrete} is not an N1 "
                "machine type (A2/A3/G2 have their GPUs built in)", value=ref)


def _check_regional_ids(path: KeyPath, ref: str, provider: Any, regions: list[Any],
                        problem: Callable[..., None]) -> None:
    """An AWS pool landing outside its provider's region needs that region's own AMI,
    subnet and security groups when the provider names any: never another region's."""
    if not isinstance(provider, dict):
        return
    regional = provider.get("regions")
    regional = {str(k): v for k, v in regional.items() if isinstance(v, dict)} \
        if isinstance(regional, dict) else {}
    home = provider.get("region") or (str(regions[0]) if regions else None)
    for region in regions:
        gaps = regional_gaps(provider, home, regional, str(region))
        if gaps:
            problem(path, f"pool lands in {region}, but provider {ref!r} gives "
                    f"{', '.join(gaps)} only for {home}: set them under "
                    f"providers.{ref}.regions.{region}", value=region)


def load_config(path: str | Path, *, text: str | None = None) -> LoadedConfig:
    """Load and validate a config file; raise ValidationFailed listing every error."""
    doc = load_yaml(path, text=text)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise ValidationFailed(
            [Problem(doc.file, (), "expected a mapping with server, providers, pools, defaults",
                     value=doc.data, line=1)]
        )
    problems: list[Problem] = []
    config: NavarchConfig | None = None
    try:
        config = NavarchConfig.model_validate(doc.data)
    except ValidationError as exc:
        problems += problems_from_pydantic(doc, NavarchConfig, exc)
    problems += _cross_checks(doc)
    warnings = [p for p in problems if p.severity == "warning"]
    errors = [p for p in problems if p.severity == "error"]
    if config is not None and not errors:
        errors += _policy_problems(doc, config)
    if errors or config is None:
        raise ValidationFailed(sorted(errors, key=lambda p: (p.line or 0, p.path)))
    return LoadedConfig(Path(path), config, warnings)


def _policy_problems(doc: YamlDocument, config: NavarchConfig) -> list[Problem]:
    if not config.server.health_policy:
        return []
    path = resolve_relative(Path(doc.file), config.server.health_policy)
    try:
        load_policy(path)
    except ValidationFailed as exc:
        where: KeyPath = ("server", "health_policy")
        head = Problem(
            doc.file, where, f"the health policy {str(path)!r} is not valid (see below)",
            line=doc.line_of(where),
        )
        return [head, *exc.problems]
    return []


def _cross_checks(doc: YamlDocument) -> list[Problem]:
    """Rules that span several keys; they run even when other keys have errors."""
    data: dict[str, Any] = doc.data
    out: list[Problem] = []

    def problem(path: KeyPath, message: str, value: Any = None, *, warn: bool = False) -> None:
        kwargs: dict[str, Any] = {"line": doc.line_of(path)}
        if value is not None:
            kwargs["value"] = value
        if warn:
            kwargs["severity"] = "warning"
        out.append(Problem(doc.file, path, message, **kwargs))

    providers = data.get("providers")
    provider_types: dict[str, str] = {}
    if isinstance(providers, dict):
        for name, prov in providers.items():
            if isinstance(prov, dict) and isinstance(prov.get("type"), str):
                provider_types[str(name)] = prov["type"]
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    assert isinstance(defaults, dict)

    server = data.get("server")
    if isinstance(server, dict) and server.get("notifier") and server.get("coordinator"):
        problem(("server", "coordinator"),
                "set either `notifier` or `coordinator` (the Go name), not both")

    pools = data.get("pools")
    if not pools:
        problem(("pools",), "at least one pool is required")
        return out
    if not isinstance(pools, dict):
        return out
    for pool_name, pool in pools.items():
        if not isinstance(pool, dict):
            continue
        base: KeyPath = ("pools", str(pool_name))
        single = pool.get("provider")
        multi = pool.get("providers")
        if single and multi:
            problem(base, "set `provider` or `providers`, not both")
        elif not single and not multi:
            problem(base, "needs `provider` (one provider) or `providers` (a list)")
        refs: list[tuple[KeyPath, Any, str | None]] = []
        if single:
            refs.append(((*base, "provider"), single, None))
        if isinstance(multi, list):
            for i, entry in enumerate(multi):
                if isinstance(entry, dict) and "name" in entry:
                    override = entry.get("instance_type")
                    refs.append(((*base, "providers", i, "name"), entry["name"],
                                 override if isinstance(override, str) else None))
        instance_type = pool.get("instance_type")
        for path, ref, override in refs:
            if not isinstance(ref, str):
                continue
            if ref not in provider_types and not (isinstance(providers, dict) and ref in providers):
                names = [str(n) for n in providers] if isinstance(providers, dict) else []
                hint = suggest(ref, names)
                known = ", ".join(sorted(names)) or "none are defined"
                problem(path, f"unknown provider {ref!r}"
                        + (f"; did you mean {hint!r}?" if hint else f" (providers: {known})"),
                        value=ref)
                continue
            cloud = provider_types.get(ref)
            if cloud == "aws" and isinstance(providers, dict):
                entry = next((e for e in multi if isinstance(e, dict) and e.get("name") == ref),
                             {}) if isinstance(multi, list) else {}
                regions = entry.get("regions") or ([pool["region"]] if pool.get("region")
                                                   else [])
                if isinstance(regions, list):
                    _check_regional_ids(path, ref, providers.get(ref), regions, problem)
            if cloud == "gcp" and isinstance(providers, dict) and isinstance(instance_type, str):
                _check_gcp_accelerator(path, ref, providers.get(ref), override, instance_type,
                                       problem)
            if (cloud and override is None and isinstance(instance_type, str)
                    and instance_type in ABSTRACT_INSTANCE_TYPES
                    and resolve_instance_type(instance_type, cloud) is None):
                problem(path, f"abstract instance type {instance_type!r} has no {cloud} "
                        "equivalent; give this provider its own instance_type", value=ref)
        lo, hi = pool.get("min_nodes", 0), pool.get("max_nodes")
        if (isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool)
                and hi > 0 and lo > hi):
            problem((*base, "min_nodes"),
                    f"min_nodes ({lo}) cannot exceed max_nodes ({hi})", value=lo)
        needs_ssh = pool.get("setup_commands") or pool.get("file_uploads")
        has_key = pool.get("ssh_private_key_path") or defaults.get("ssh_private_key_path")
        if needs_ssh and not has_key:
            problem((*base, "setup_commands"),
                    "setup_commands and file_uploads run over SSH: set "
                    "ssh_private_key_path on the pool or under defaults")
        commands = pool.get("setup_commands")
        for i, command in enumerate(commands if isinstance(commands, list) else []):
            for text in template_problems(command) if isinstance(command, str) else []:
                problem((*base, "setup_commands", i), f"template: {text}", value=command)
        if multi is None and pool.get("strategy") not in (None, "priority"):
            problem((*base, "strategy"), "strategy only matters with a `providers` list",
                    warn=True)
        for i, entry in enumerate(multi if isinstance(multi, list) else []):
            if not isinstance(entry, dict) or not isinstance(entry.get("zones"), list):
                continue
            regions = entry.get("regions") or ([pool["region"]] if pool.get("region") else [])
            for j, zone in enumerate(entry["zones"]):
                if (isinstance(zone, str) and isinstance(regions, list) and regions
                        and not any(zone.startswith(str(r)) for r in regions)):
                    problem((*base, "providers", i, "zones", j),
                            f"zone {zone!r} is in none of this provider's regions "
                            f"({', '.join(map(str, regions))})", value=zone)
        autoscaling = pool.get("autoscaling")
        if isinstance(autoscaling, dict):
            _autoscaler_warnings(autoscaling, (*base, "autoscaling"), problem)
    return out


def _autoscaler_warnings(block: dict[str, Any], path: KeyPath, problem: Any) -> None:
    kind = block.get("type")
    allowed = AUTOSCALER_PARAMETERS.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        return
    for key in block:
        if key in ("timezone", "metrics") and path[-1] != "autoscaling":
            problem((*path, key), f"`{key}` is read on the pool's top-level autoscaler only",
                    warn=True)
        elif (key not in ("type", "timezone", "metrics") and key in AutoscalingConfig.model_fields
              and key not in allowed):
            problem((*path, key), f"{kind} autoscaler ignores `{key}`", warn=True)
    if isinstance(block.get("fallback"), dict):
        _autoscaler_warnings(block["fallback"], (*path, "fallback"), problem)
    for i, child in enumerate(block.get("autoscalers") or []):
        if isinstance(child, dict):
            _autoscaler_warnings(child, (*path, "autoscalers", i), problem)
