"""The control-plane config file, in the Go Navarch's format, validated properly.

Top level: `server`, `providers`, `pools`, `defaults`. A file written for the Go Navarch loads
unchanged; what it got wrong silently (unknown keys, documented-but-ignored settings) is now
reported or given meaning. `load_config` reports every problem in the file at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from navarch.durations import GoDuration
from navarch.instance_types import ABSTRACT_INSTANCE_TYPES, resolve_instance_type
from navarch.setup_commands import template_problems
from navarch.validation import (
    KeyPath,
    Problem,
    StrictModel,
    ValidationFailed,
    YamlDocument,
    load_yaml,
    problems_from_pydantic,
    suggest,
)

ProviderType = Literal["lambda", "gcp", "aws", "fake"]
Strategy = Literal["priority", "cost", "availability", "round-robin"]
AutoscalerType = Literal["reactive", "queue", "scheduled", "predictive", "composite"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=30)
DEFAULT_HEALTH_CHECK_INTERVAL = timedelta(seconds=60)
DEFAULT_AUTOSCALE_INTERVAL = timedelta(seconds=30)
DEFAULT_COOLDOWN = timedelta(minutes=5)
# How long a new machine may take from the provision call until its agent picks up the
# boot check: the `instance_manager.registration_timeout` the Go version documented.
DEFAULT_REGISTRATION_TIMEOUT = timedelta(minutes=10)
DEFAULT_STALE_CHECK_INTERVAL = timedelta(seconds=30)
DEFAULT_WEBHOOK_TIMEOUT = timedelta(seconds=30)


def _scalar_to_str(value: Any) -> Any:
    """YAML turns `tier: 1` into an int; Go's decoder kept it as the string "1"."""
    if isinstance(value, dict):
        return {
            k: (str(v).lower() if isinstance(v, bool) else str(v))
            if isinstance(v, int | float | bool)
            else v
            for k, v in value.items()
        }
    return value


StringMap = Annotated[dict[str, str], BeforeValidator(_scalar_to_str)]


class ProviderConfig(StrictModel):
    type: ProviderType
    api_key_env: str | None = Field(default=None, description="lambda: env var with the API key")
    project: str | None = Field(default=None, description="gcp: project id")
    zone: str | None = Field(default=None, description="gcp: default zone")
    region: str | None = Field(default=None, description="aws: region")
    gpu_count: int | None = Field(default=None, ge=1, le=64, description="fake: GPUs per node")
    # Navarch additions for AWS (the Go version's AWS provider was a stub):
    ami: str | None = Field(default=None, description="aws: AMI (default: DLAMI via SSM)")
    subnet_id: str | None = None
    security_group_ids: list[str] = Field(default_factory=list)
    key_name: str | None = None
    iam_instance_profile: str | None = None
    spot: bool = False
    image: str | None = Field(default=None, description="gcp: boot image (default: a DLVM)")
    # gcp, for N1 machine types (their GPUs are attached, not built in):
    accelerator_type: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$",
                                         description="gcp: e.g. nvidia-tesla-t4")
    accelerator_count: int = Field(default=1, ge=1, le=16)


class PoolProviderEntry(StrictModel):
    name: str = Field(min_length=1)
    priority: int = 0
    weight: int = Field(default=0, ge=0)
    regions: list[str] = Field(default_factory=list)
    instance_type: str | None = None
    # Navarch addition: this provider's own zones (else the pool's `zones`).
    zones: list[str] = Field(default_factory=list)


class ScheduleWindow(StrictModel):
    days: list[str] = Field(default_factory=list)
    start: int = Field(ge=0, le=23)
    end: int = Field(ge=1, le=24)
    min_nodes: int = Field(ge=0)
    max_nodes: int = Field(ge=0)

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for day in value:
            text = str(day).strip().lower()
            match = next((d for d in WEEKDAYS if d == text or d[:3] == text), None)
            if match is None:
                hint = suggest(text, WEEKDAYS)
                raise ValueError(
                    f"{day!r} is not a day of the week"
                    + (f"; did you mean {hint!r}?" if hint else "; use monday ... sunday")
                )
            out.append(match)
        return out

    @model_validator(mode="after")
    def _window(self) -> ScheduleWindow:
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start}: the window is empty")
        if self.min_nodes > self.max_nodes:
            raise ValueError(
                f"min_nodes ({self.min_nodes}) is greater than max_nodes ({self.max_nodes})"
            )
        return self


# Which parameters each autoscaler reads; anything else set on it is ignored (and warned).
AUTOSCALER_PARAMETERS: dict[str, frozenset[str]] = {
    "reactive": frozenset({"scale_up_at", "scale_down_at"}),
    "queue": frozenset({"jobs_per_node"}),
    "scheduled": frozenset({"schedule", "fallback"}),
    "predictive": frozenset({"lookback_window", "growth_factor", "fallback", "scale_up_at"}),
    "composite": frozenset({"mode", "autoscalers"}),
}


class UtilizationSource(StrictModel):
    """Where GPU utilization comes from: the agents' own watch summaries (default), or a
    Prometheus server's HTTP API with a PromQL query that gives a percentage."""

    source: Literal["agents", "prometheus"] = "agents"
    url: str | None = Field(default=None, pattern=r"^https?://")
    query: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> UtilizationSource:
        if self.source == "prometheus" and not (self.url and self.query):
            raise ValueError("a prometheus source needs `url` and `query`")
        return self


class QueueSource(StrictModel):
    """Where queue depth comes from: a scheduler pushing the `report_queue_depth` signal
    (default), an HTTP URL answering JSON, or PromQL queries."""

    source: Literal["signal", "http", "prometheus"] = "signal"
    url: str | None = Field(default=None, pattern=r"^https?://")
    query: str | None = None  # prometheus: queue depth
    pending_query: str | None = None  # prometheus: jobs waiting (optional)
    depth_field: str = "queue_depth"  # http: JSON fields (dotted paths allowed)
    pending_field: str = "pending_jobs"
    headers: StringMap = Field(default_factory=dict)  # http; ${VAR} resolved in the worker

    @model_validator(mode="after")
    def _complete(self) -> QueueSource:
        if self.source == "http" and not self.url:
            raise ValueError("an http queue source needs `url`")
        if self.source == "prometheus" and not (self.url and self.query):
            raise ValueError("a prometheus queue source needs `url` and `query`")
        return self


class AutoscaleMetrics(StrictModel):
    utilization: UtilizationSource = Field(default_factory=UtilizationSource)
    queue: QueueSource = Field(default_factory=QueueSource)


class AutoscalingConfig(StrictModel):
    type: AutoscalerType
    scale_up_at: float | None = Field(default=None, ge=0, le=100)
    scale_down_at: float | None = Field(default=None, ge=0, le=100)
    jobs_per_node: int | None = Field(default=None, ge=1)
    schedule: list[ScheduleWindow] = Field(default_factory=list)
    fallback: AutoscalingConfig | None = None
    lookback_window: int | None = Field(default=None, ge=2)
    growth_factor: float | None = Field(default=None, gt=0)
    mode: Literal["max", "min", "avg"] | None = None
    autoscalers: list[AutoscalingConfig] = Field(default_factory=list)
    # Navarch additions, read on the pool's top-level autoscaler: the time zone schedule
    # windows are in (IANA name, default UTC) and where metrics come from.
    timezone: str | None = None
    metrics: AutoscaleMetrics | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "Europe/Berlin or America/New_York)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AutoscalingConfig:
        up = self.scale_up_at if self.scale_up_at is not None else 80.0
        down = self.scale_down_at if self.scale_down_at is not None else 20.0
        if self.type == "reactive" and down >= up:
            raise ValueError(
                f"scale_down_at ({down:g}) must be below scale_up_at ({up:g}), "
                "or the pool would flap between the two"
            )
        if self.type == "scheduled" and not self.schedule:
            raise ValueError("a scheduled autoscaler needs at least one `schedule` window")
        if self.type == "composite" and not self.autoscalers:
            raise ValueError("a composite autoscaler needs a non-empty `autoscalers` list")
        return self


# A silent agent is given this long to come back before its node is replaced.
DEFAULT_UNREACHABLE_TOLERATION = timedelta(minutes=5)
# How long a drain waits for GPU work to end (and the workload system to agree).
DEFAULT_DRAIN_GRACE = timedelta(minutes=10)
# Safety valve: pause automatic repair when more than this share of a pool goes unhealthy
# within the window (Karpenter stops at 20%). At least one repair is always allowed.
DEFAULT_MAX_UNHEALTHY_SHARE = 0.2
DEFAULT_UNHEALTHY_WINDOW = timedelta(minutes=10)


class HealthConfig(StrictModel):
    # Consecutive health checks the policy must judge unhealthy before the node is
    # replaced; any healthier check resets the count (the Go counter never reset).
    unhealthy_after: int = Field(default=2, ge=1)
    auto_replace: bool = True
    # Navarch additions (not in the Go format):
    unreachable_toleration: GoDuration = DEFAULT_UNREACHABLE_TOLERATION
    drain_grace: GoDuration = DEFAULT_DRAIN_GRACE
    max_unhealthy_share: float = Field(default=DEFAULT_MAX_UNHEALTHY_SHARE, gt=0, le=1)
    unhealthy_window: GoDuration = DEFAULT_UNHEALTHY_WINDOW


class DiagnosticCheck(StrictModel):
    kind: Literal["dcgm", "gpu_burn", "nccl"]
    level: int = Field(default=2, ge=1, le=4)
    seconds: int = Field(default=60, ge=1, le=86400)
    command: str | None = None
    min_bus_gbps: float | None = Field(default=None, gt=0)


class DiagnosticsConfig(StrictModel):
    """Navarch addition: active diagnostics on idle nodes, on a Temporal Schedule."""

    enabled: bool = True
    cron: str = "0 3 * * 0"  # Sundays 03:00 UTC
    checks: list[DiagnosticCheck] = Field(
        default_factory=lambda: [DiagnosticCheck(kind="dcgm", level=2)])
    max_parallel: int = Field(default=1, ge=1)


class BootChecksConfig(StrictModel):
    """Navarch addition: what the boot check verifies besides the driver and GPU count."""

    # systemd units that must be active, e.g. nvidia-fabricmanager on NVSwitch machines.
    required_services: list[str] = Field(default_factory=list)
    # Also require the GPU model of the instance type (e.g. "H100" in every GPU's name).
    match_gpu_model: bool = False


class FileUpload(StrictModel):
    local: str
    remote: str
    mode: str = Field(default="0644", pattern=r"^0?[0-7]{3,4}$")


class BootstrapTimeouts(StrictModel):
    """SSH bootstrap settings (pool, else defaults, else the Go Navarch's defaults).
    `ssh_port` is a Navarch addition; the Go version documented `ip_wait_timeout` but never
    read it."""

    ip_wait_timeout: GoDuration | None = None
    ssh_timeout: GoDuration | None = None
    ssh_connect_timeout: GoDuration | None = None
    command_timeout: GoDuration | None = None
    ssh_port: int | None = Field(default=None, ge=1, le=65535)


class PoolConfig(BootstrapTimeouts):
    provider: str | None = None
    providers: list[PoolProviderEntry] | None = None
    strategy: Strategy = "priority"
    instance_type: str = Field(min_length=1)
    region: str | None = None
    zones: list[str] = Field(default_factory=list)
    ssh_keys: list[str] | None = None
    min_nodes: int = Field(default=0, ge=0)
    max_nodes: int = Field(gt=0)
    cooldown: GoDuration = DEFAULT_COOLDOWN
    labels: StringMap = Field(default_factory=dict)
    autoscaling: AutoscalingConfig | None = None
    health: HealthConfig | None = None
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    boot_checks: BootChecksConfig = Field(default_factory=BootChecksConfig)
    setup_commands: list[str] = Field(default_factory=list)
    file_uploads: list[FileUpload] = Field(default_factory=list)
    ssh_user: str | None = None
    ssh_private_key_path: str | None = None


class DefaultsConfig(BootstrapTimeouts):
    ssh_keys: list[str] = Field(default_factory=list)
    health: HealthConfig | None = None
    ssh_user: str | None = None
    ssh_private_key_path: str | None = None


class WebhookConfig(StrictModel):
    cordon_url: str | None = None
    uncordon_url: str | None = None
    drain_url: str | None = None
    drain_status_url: str | None = None
    timeout: GoDuration = DEFAULT_WEBHOOK_TIMEOUT
    # Values may hold `${ENV_VAR}` references; they are expanded by the notifier activity
    # from the worker's environment, so a token never enters workflow history.
    headers: StringMap = Field(default_factory=dict)


class NotifierConfig(StrictModel):
    type: Literal["noop", "webhook"] = "noop"
    webhook: WebhookConfig | None = None

    @model_validator(mode="after")
    def _webhook_needs_urls(self) -> NotifierConfig:
        if self.type == "webhook" and self.webhook is None:
            raise ValueError("type webhook needs a `webhook:` block with its URLs")
        return self


class InstanceManagerConfig(StrictModel):
    registration_timeout: GoDuration = DEFAULT_REGISTRATION_TIMEOUT
    stale_check_interval: GoDuration = DEFAULT_STALE_CHECK_INTERVAL


class ServerConfig(StrictModel):
    address: str = ":50051"
    external_address: str | None = None
    heartbeat_interval: GoDuration = DEFAULT_HEARTBEAT_INTERVAL
    heartbeat_timeout: GoDuration | None = None
    health_check_interval: GoDuration = DEFAULT_HEALTH_CHECK_INTERVAL
    autoscale_interval: GoDuration = DEFAULT_AUTOSCALE_INTERVAL
    health_policy: str | None = None
    notifier: NotifierConfig | None = None
    # The Go version's docs called the notifier `coordinator`; both spellings load.
    coordinator: NotifierConfig | None = None
    instance_manager: InstanceManagerConfig = Field(default_factory=InstanceManagerConfig)

    @property
    def effective_heartbeat_timeout(self) -> timedelta:
        """Three missed heartbeats, as in the Go version, unless set explicitly."""
        return self.heartbeat_timeout or 3 * self.heartbeat_interval

    @property
    def effective_notifier(self) -> NotifierConfig:
        return self.notifier or self.coordinator or NotifierConfig()


class NavarchConfig(StrictModel):
    server: ServerConfig = Field(default_factory=ServerConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    pools: dict[str, PoolConfig] = Field(default_factory=dict)
    defaults: DefaultsConfig = Field(default_factory=DefaultsConfig)

    def pool_health(self, pool: PoolConfig) -> HealthConfig:
        return pool.health or self.defaults.health or HealthConfig()

    def pool_ssh_user(self, pool: PoolConfig) -> str:
        return pool.ssh_user or self.defaults.ssh_user or "ubuntu"

    def pool_ssh_key_path(self, pool: PoolConfig) -> str | None:
        return pool.ssh_private_key_path or self.defaults.ssh_private_key_path

    def pool_bootstrap(self, pool: PoolConfig, key: str) -> Any:
        """An SSH bootstrap setting of the pool, else of defaults, else None."""
        value = getattr(pool, key)
        return value if value is not None else getattr(self.defaults, key)

    def pool_ssh_keys(self, pool: PoolConfig) -> list[str]:
        return pool.ssh_keys if pool.ssh_keys is not None else list(self.defaults.ssh_keys)


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
    from navarch.policy import load_policy  # policy imports nothing from config

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
