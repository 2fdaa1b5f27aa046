"""The control-plane config file's schema, in the Go Navarch's format.

Top level: `server`, `providers`, `pools`, `defaults`. A file written for the Go Navarch loads
unchanged; what it got wrong silently (unknown keys, documented-but-ignored settings) is now
reported or given meaning. Strict models: what people write. The loader (`loader.py`) reads
the file, runs these and the checks that span several keys, and reports every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from navarch.bootstrap.credentials import CredentialsError, check_reference
from navarch.durations import GoDuration
from navarch.health.remedy import RUNGS, Rung
from navarch.validation import (
    StrictModel,
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


REGIONAL_KEYS = ("ami", "subnet_id", "security_group_ids")


def regional_gaps(top: Mapping[str, Any], home: str | None,
                  regional: Mapping[str, Mapping[str, Any]], region: str) -> list[str]:
    """The ids a launch in `region` lacks: each one the provider's top level gives (those
    belong to its `home` region) that `region`'s own entry does not give. Empty: fine."""
    if not region or (region == home and region not in regional):
        return []
    given = [k for k in REGIONAL_KEYS if top.get(k)]
    entry = regional.get(region)
    if entry is None:
        return given if home else []
    return [k for k in given if not entry.get(k)]


class RegionalSettings(StrictModel):
    """aws: one region's own ids (an AMI, a subnet and security groups exist in one region)."""

    ami: str | None = None
    subnet_id: str | None = None
    security_group_ids: list[str] = Field(default_factory=list)


def _agent_credentials(value: str | None) -> str | None:
    if value is not None:
        try:
            check_reference(value)
        except CredentialsError as exc:
            raise ValueError(str(exc)) from None
    return value


AgentCredentials = Annotated[str | None, AfterValidator(_agent_credentials)]


class AgentInstallConfig(StrictModel):
    """How a new machine installs its agent and gets its Temporal credentials (Navarch's
    addition, under `server.agent`). The public index and this control plane's own
    version are the defaults only when nothing is named."""

    version: str | None = Field(default=None, pattern=r"^[0-9][0-9A-Za-z.+!-]*$",
                                description="the navarch version to install (default: "
                                            "the control plane's own)")
    index_url: str | None = Field(default=None, pattern=r"^https?://[^\s'\"]+$",
                                  description="a private package index (PEP 503 simple)")
    wheel: str | None = Field(default=None, pattern=r"^(https?://|file:///|/)[^\s'\"]+\.whl$",
                              description="a wheel URL or a path on the machine, instead "
                                          "of the index")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                               description="the wheel's hash; pip refuses anything else")
    credentials: AgentCredentials = Field(
        default=None, description="where agents get their Temporal credentials: "
                                  "aws-ssm:NAME, aws-secretsmanager:NAME, "
                                  "gcp-secretmanager:projects/P/secrets/S, or worker-env")

    @model_validator(mode="after")
    def _one_source(self) -> AgentInstallConfig:
        if self.wheel and self.version:
            raise ValueError("give version (from the index) or wheel, not both")
        return self


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
    # aws: ids for the regions other than `region` that pools launch in.
    regions: dict[str, RegionalSettings] = Field(default_factory=dict)
    # Where this provider's machines get their agent's credentials (overrides
    # server.agent.credentials): a secret read with the machine's identity, or worker-env.
    agent_credentials: AgentCredentials = None


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
DEFAULT_FLAP_WINDOW = timedelta(hours=1)
# The repair ladder: a repeat of the same fault within this window after a reset or a
# reboot counts against the rung's attempts; how long a rebooted machine's agent has to
# come back before the machine is replaced.
DEFAULT_REMEDIATION_WINDOW = timedelta(hours=24)
DEFAULT_REBOOT_TIMEOUT = timedelta(minutes=15)


def _replace_only() -> list[Rung]:
    return ["replace"]


class DiagnosticCheck(StrictModel):
    kind: Literal["dcgm", "gpu_burn", "nccl"]
    level: int = Field(default=2, ge=1, le=4)
    seconds: int = Field(default=60, ge=1, le=86400)
    command: str | None = None
    min_bus_gbps: float | None = Field(default=None, gt=0)


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
    # A degraded node counts as healthy again only after this many consecutive health
    # checks without the condition (a settle period, not the first quiet reading).
    recover_after: int = Field(default=3, ge=1)
    # A node that turns degraded more than `flap_limit` times within `flap_window` stays
    # degraded until it has been quiet for a whole window.
    flap_limit: int = Field(default=3, ge=1)
    flap_window: GoDuration = DEFAULT_FLAP_WINDOW
    # The repair ladder's rungs this pool allows, cheapest first. Without it a pool
    # replaces every unhealthy node, as the Go Navarch does.
    remediation: list[Rung] = Field(default_factory=_replace_only, min_length=1)
    remediation_window: GoDuration = DEFAULT_REMEDIATION_WINDOW
    reboot_timeout: GoDuration = DEFAULT_REBOOT_TIMEOUT
    # What a node passes after a reset or reboot before its hold is released: its boot
    # checks, then these active checks under load. A check that cannot run (its tool is
    # not installed) is not a pass; `validation: []` returns a node on its boot checks alone.
    validation: list[DiagnosticCheck] = Field(
        default_factory=lambda: [DiagnosticCheck(kind="dcgm", level=2)])

    @field_validator("remediation")
    @classmethod
    def _ladder(cls, rungs: list[Rung]) -> list[Rung]:
        if len(set(rungs)) != len(rungs):
            raise ValueError(f"each rung at most once: {', '.join(rungs)}")
        ordered = sorted(rungs, key=RUNGS.index)
        if ordered != rungs:
            raise ValueError(f"list the rungs cheapest first: {', '.join(ordered)}")
        return rungs


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
    # Navarch addition: this pool's own notifier (else the server's).
    notifier: NotifierConfig | None = None


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


NODE_NAME_FIELDS = ("Hostname", "NodeID", "InstanceID", "Pool")
_NODE_NAME_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def render_node_name(template: str, values: dict[str, str]) -> str:
    """A scheduler's name for a node from a template such as `gpu-{{.NodeID}}`."""
    return _NODE_NAME_FIELD.sub(lambda m: values.get(m.group(1), ""), template)


class SlurmNotifierConfig(StrictModel):
    """Cordon and drain through slurmctld, with `scontrol` run by the control-plane worker
    (SLURM_CONF and the munge socket from its environment)."""

    # The node's Slurm NodeName: a template over {{.Hostname}} (from the agent's inventory),
    # {{.NodeID}}, {{.InstanceID}}, {{.Pool}}.
    node_name: str = "{{.Hostname}}"
    reason_prefix: str = Field(default="navarch:", min_length=1, max_length=32)
    # At the drain grace's end: requeue the node's jobs, cancel them, or keep waiting.
    on_grace_end: Literal["requeue", "cancel", "wait"] = "requeue"
    scontrol: str = "scontrol"  # the command (a path where it is not on PATH)
    timeout: GoDuration = timedelta(seconds=30)
    # How often a node in service asks whether someone else drained it there.
    check_interval: GoDuration = timedelta(minutes=5)

    @field_validator("node_name")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        for name in _NODE_NAME_FIELD.findall(value):
            if name not in NODE_NAME_FIELDS:
                raise ValueError(f"unknown field {{{{.{name}}}}} (known: "
                                 f"{', '.join(NODE_NAME_FIELDS)})")
        return value


class KubernetesNotifierConfig(StrictModel):
    """Cordon and drain through the Kubernetes API (in-cluster or kubeconfig credentials
    from the control-plane worker's environment)."""

    # How a Navarch node is found: by the Node's spec.providerID (aws:///zone/i-...,
    # gce://project/zone/name), else by the label the bootstrap gives the kubelet.
    node_label: str = "navarch.io/node-id"
    taint_key: str = "navarch.io/cordoned"
    # At the drain grace's end: delete the pods still there, or keep waiting.
    on_grace_end: Literal["delete", "wait"] = "delete"
    timeout: GoDuration = timedelta(seconds=30)
    check_interval: GoDuration = timedelta(minutes=5)


class NotifierConfig(StrictModel):
    type: Literal["noop", "webhook", "slurm", "kubernetes"] = "noop"
    webhook: WebhookConfig | None = None
    slurm: SlurmNotifierConfig | None = None
    kubernetes: KubernetesNotifierConfig | None = None

    @model_validator(mode="after")
    def _webhook_needs_urls(self) -> NotifierConfig:
        if self.type == "webhook" and self.webhook is None:
            raise ValueError("type webhook needs a `webhook:` block with its URLs")
        if self.type == "slurm" and self.slurm is None:
            self.slurm = SlurmNotifierConfig()
        if self.type == "kubernetes" and self.kubernetes is None:
            self.kubernetes = KubernetesNotifierConfig()
        return self

    @property
    def scheduler(self) -> SlurmNotifierConfig | KubernetesNotifierConfig | None:
        """The workload scheduler that owns the node's work (its drain is the drain)."""
        return self.slurm if self.type == "slurm" else (
            self.kubernetes if self.type == "kubernetes" else None)

    @property
    def on_grace_end(self) -> str:
        cfg = self.scheduler
        return cfg.on_grace_end if cfg is not None else "terminate"


class InstanceManagerConfig(StrictModel):
    registration_timeout: GoDuration = DEFAULT_REGISTRATION_TIMEOUT
    stale_check_interval: GoDuration = DEFAULT_STALE_CHECK_INTERVAL


# An installation id: a GCE label value too (lowercase letters, digits, dashes).
CLUSTER_ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"


class OrphanSweepConfig(StrictModel):
    """The reconciler that finds machines no live node owns (`server.orphan_sweep`)."""

    interval: GoDuration = timedelta(minutes=2)
    # How old a machine with no live owner must be before the sweep acts on it: a launch
    # still on its way to being recorded is never one.
    grace: GoDuration = timedelta(minutes=10)
    mode: Literal["terminate", "report", "off"] = "terminate"

    @model_validator(mode="after")
    def _sane(self) -> OrphanSweepConfig:
        if self.interval < timedelta(seconds=1):
            raise ValueError(f"interval {self.interval} is under a second")
        return self


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
    # Navarch additions: whose machines (the tag on every instance; default: derived from
    # the Temporal namespace) and the sweep for machines no node owns.
    cluster_id: str | None = Field(default=None, pattern=CLUSTER_ID_PATTERN)
    orphan_sweep: OrphanSweepConfig = Field(default_factory=OrphanSweepConfig)
    agent: AgentInstallConfig = Field(default_factory=AgentInstallConfig)

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
