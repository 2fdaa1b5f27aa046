"""The pool spec: what a PoolWorkflow receives. Built from a config file, or written as JSON
for `temporal workflow start --type PoolWorkflow --input '{...}'`.

It carries no secrets: a provider's API key is named by its environment variable
(`api_key_env`), webhook headers keep their `${VAR}` references, and both are resolved by
activities inside the worker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from navarch.config.instance_types import (
    GpuShape,
    gcp_accelerator_model,
    gpu_shape,
    resolve_instance_type,
)
from navarch.config.loader import LoadedConfig, resolve_relative
from navarch.config.schema import (
    CLUSTER_ID_PATTERN,
    DEFAULT_AUTOSCALE_INTERVAL,
    DEFAULT_COOLDOWN,
    DEFAULT_HEALTH_CHECK_INTERVAL,
    DEFAULT_REGISTRATION_TIMEOUT,
    REGIONAL_KEYS,
    AgentInstallConfig,
    AutoscalingConfig,
    DiagnosticsConfig,
    HealthConfig,
    NotifierConfig,
    ProviderConfig,
    ProviderType,
    Strategy,
    regional_gaps,
)
from navarch.config.setup_commands import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_IP_WAIT_TIMEOUT,
    DEFAULT_SSH_CONNECT_TIMEOUT,
    DEFAULT_SSH_PORT,
    DEFAULT_SSH_TIMEOUT,
    FileUpload,
)
from navarch.contracts.base import StoredModel
from navarch.durations import GoDuration
from navarch.health.policy import PolicyFile, builtin_policy, load_policy

POOL_NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"

# Parsed once, at import: a spec without a policy is decoded inside workflows, where
# reading and parsing a YAML file would be I/O in the sandbox.
_DEFAULT_POLICY = builtin_policy("default").source


def _default_policy() -> PolicyFile:
    return _DEFAULT_POLICY.model_copy(deep=True)


class RegionalIds(StoredModel):
    """One region's own AWS ids: an AMI, a subnet and security groups each exist in one
    region only."""

    ami: str | None = None
    subnet_id: str | None = None
    security_group_ids: list[str] = Field(default_factory=list)


class AgentBootstrap(StoredModel):
    """How a provider's new machines install their agent and find its credentials
    (`server.agent`, with the provider's `agent_credentials` over its `credentials`). The
    credentials are a reference the machine resolves, never the secret itself."""

    version: str | None = None
    index_url: str | None = None
    wheel: str | None = None
    sha256: str | None = None
    credentials: str | None = None


class ProviderChoice(StoredModel):
    """One provider a pool may provision from, resolved against the config's providers."""

    name: str
    type: ProviderType
    instance_type: str
    priority: int = 0
    weight: int = 0
    regions: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    project: str | None = None
    zone: str | None = None
    region: str | None = None
    gpu_count: int | None = None
    api_key_env: str | None = None
    ami: str | None = None
    subnet_id: str | None = None
    security_group_ids: list[str] = Field(default_factory=list)
    key_name: str | None = None
    iam_instance_profile: str | None = None
    spot: bool = False
    image: str | None = None
    accelerator_type: str | None = None  # gcp N1: attached GPUs
    accelerator_count: int = 1
    regional: dict[str, RegionalIds] = Field(default_factory=dict)  # aws: per-region ids
    agent: AgentBootstrap | None = None  # None: the public index, no credentials

    def home_region(self) -> str | None:
        """The region the top-level ids belong to: the provider's own, else the first the
        pool names."""
        return self.region or (self.regions[0] if self.regions else None)

    def ids_for(self, region: str) -> RegionalIds:
        """The AMI, subnet and security groups a launch in `region` uses: the region's own
        entry, else the top level's (they belong to the home region). A region that would
        borrow another region's ids is refused (config validation says so first)."""
        top = {k: getattr(self, k) for k in REGIONAL_KEYS}
        gaps = regional_gaps(top, self.home_region(),
                             {r: e.model_dump() for r, e in self.regional.items()}, region)
        if gaps:
            raise ValueError(f"provider {self.name!r} has no {', '.join(gaps)} for region "
                             f"{region!r} (the top-level ones are {self.home_region()}'s): "
                             f"set them under providers.{self.name}.regions.{region}")
        if region in self.regional:
            return self.regional[region]
        return RegionalIds(**top)

    def gpu_shape(self) -> GpuShape | None:
        """GPUs a machine of this choice has: attached accelerators, else the type's own."""
        if self.accelerator_type:
            return GpuShape(self.accelerator_count, gcp_accelerator_model(self.accelerator_type))
        return gpu_shape(self.instance_type)


class PoolSpec(StoredModel):
    """Everything a pool's workflows need, JSON-friendly and secret-free."""

    name: str = Field(pattern=POOL_NAME_PATTERN)
    providers: list[ProviderChoice] = Field(min_length=1)
    strategy: Strategy = "priority"
    instance_type: str
    region: str | None = None
    zones: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    ssh_keys: list[str] = Field(default_factory=list)
    min_nodes: int = Field(default=0, ge=0)
    max_nodes: int = Field(gt=0)
    cooldown: GoDuration = DEFAULT_COOLDOWN
    autoscaling: AutoscalingConfig | None = None
    health: HealthConfig = Field(default_factory=HealthConfig)
    health_policy: PolicyFile = Field(default_factory=_default_policy)
    health_check_interval: GoDuration = DEFAULT_HEALTH_CHECK_INTERVAL
    boot_deadline: GoDuration = DEFAULT_REGISTRATION_TIMEOUT
    heartbeat_timeout: GoDuration = timedelta(seconds=90)
    autoscale_interval: GoDuration = DEFAULT_AUTOSCALE_INTERVAL
    notifier: NotifierConfig = Field(default_factory=NotifierConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    # SSH bootstrap (run by the control-plane worker after provisioning, before the agent
    # is awaited); the private key stays a path on the worker's host.
    setup_commands: list[str] = Field(default_factory=list)
    ssh_user: str = "ubuntu"
    ssh_private_key_path: str | None = None
    file_uploads: list[FileUpload] = Field(default_factory=list)
    ssh_port: int = Field(default=DEFAULT_SSH_PORT, ge=1, le=65535)
    ssh_timeout: GoDuration = DEFAULT_SSH_TIMEOUT
    ssh_connect_timeout: GoDuration = DEFAULT_SSH_CONNECT_TIMEOUT
    command_timeout: GoDuration = DEFAULT_COMMAND_TIMEOUT
    ip_wait_timeout: GoDuration = DEFAULT_IP_WAIT_TIMEOUT
    # Continue-as-new after this many history events; None: when the server suggests it.
    continue_as_new_after: int | None = Field(default=None, ge=50)
    shape_check: Literal["strict", "count", "off"] = "count"
    required_services: list[str] = Field(default_factory=list)
    # How long a (provider, region, instance type) that had no capacity is tried last.
    capacity_memory: GoDuration = timedelta(minutes=3)
    # The installation tag on the pool's machines ("": the namespace's default).
    cluster_id: str = Field(default="", pattern=f"^$|{CLUSTER_ID_PATTERN}")

    @model_validator(mode="after")
    def _bounds(self) -> PoolSpec:
        if self.min_nodes > self.max_nodes:
            raise ValueError(
                f"min_nodes ({self.min_nodes}) cannot exceed max_nodes ({self.max_nodes})"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_the_default_policy(self, handler: SerializerFunctionWrapHandler) -> Any:
        """The built-in default policy is left out of a spec's stored form (decoding fills
        it in again). It is 5 of a spec's 6.5 KB, and a spec travels in every node's input,
        a pool's every batch of node starts and every continue-as-new: a batch of 100
        starts was a 650 KB workflow-task completion, over the SDK's payload warning."""
        data = handler(self)
        if isinstance(data, dict) and self.health_policy == _DEFAULT_POLICY:
            data.pop("health_policy", None)
        return data

    def ordered_providers(self) -> list[ProviderChoice]:
        """Providers by priority (lowest first)."""
        return sorted(self.providers, key=lambda p: p.priority)

    def placements(self, rotation: int = 0, avoid: frozenset[str] = frozenset(), *,
                   prices: dict[str, float | None] | None = None,
                   capacity: dict[str, list[str] | None] | None = None,
                   ) -> list[tuple[ProviderChoice, str, str]]:
        """Where a new node tries to go, in order: (provider, region, zone) triples, so a
        refusal moves to the next zone, then region, then provider.

        `priority` goes lowest priority first; `round-robin` starts at the provider whose
        turn it is, turns shared by `weight`; `cost` goes cheapest first (`prices` per
        provider; unknown prices last); `availability` puts first the providers whose
        `capacity` (regions with capacity, per provider) includes one of their regions, then
        those that do not say, then those that report none — and within a provider its
        regions with capacity first. Ties keep priority order. Within a provider, its
        regions in order, and in each region the pool's zones that belong to it (none: the
        cloud picks). Places that recently had no capacity (`avoid`) go last."""
        ordered = self.ordered_providers()
        capacity = capacity or {}
        if self.strategy == "cost" and prices:
            ordered.sort(key=lambda p: (prices.get(p.name) is None, prices.get(p.name) or 0.0))
        elif self.strategy == "availability" and capacity:
            ordered.sort(key=lambda p: _availability_rank(p, capacity.get(p.name)))
        if self.strategy == "round-robin" and ordered:
            turns = [p for p in ordered for _ in range(max(p.weight, 1))]
            first = turns[rotation % len(turns)]
            ordered = [first, *(p for p in ordered if p is not first)]
        places = [(p, r, z) for p in ordered
                  for r in _regions_by_capacity(p, p.regions or [p.region or self.region or ""],
                                                capacity.get(p.name))
                  for z in _zones_in(p, r)]
        return sorted(places, key=lambda pl: placement_key(*pl) in avoid)


def provider_choice(name: str, prov: ProviderConfig, instance_type: str, *, priority: int = 0,
                    weight: int = 0, regions: list[str] | None = None,
                    zones: list[str] | None = None,
                    agent: AgentInstallConfig | None = None) -> ProviderChoice:
    """A configured provider as a pool (or the orphan sweep) uses it."""
    install = AgentBootstrap(**(agent.model_dump() if agent else {}))
    install.credentials = prov.agent_credentials or install.credentials
    return ProviderChoice(
        name=name, type=prov.type, instance_type=instance_type, priority=priority,
        weight=weight, regions=list(regions or []), zones=list(zones or []),
        project=prov.project, zone=prov.zone, region=prov.region,
        gpu_count=prov.gpu_count, api_key_env=prov.api_key_env, ami=prov.ami,
        subnet_id=prov.subnet_id, security_group_ids=list(prov.security_group_ids),
        key_name=prov.key_name, iam_instance_profile=prov.iam_instance_profile,
        spot=prov.spot, image=prov.image,
        accelerator_type=prov.accelerator_type if prov.accelerator_type else None,
        accelerator_count=prov.accelerator_count,
        regional={r: RegionalIds(**e.model_dump()) for r, e in prov.regions.items()},
        agent=install if install != AgentBootstrap() else None,
    )


def build_pool_spec(loaded: LoadedConfig, name: str) -> PoolSpec:
    cfg = loaded.config
    pool = cfg.pools[name]
    entries = (
        [(pool.provider, None, 0, 0, [], [])] if pool.provider
        else [(e.name, e.instance_type, e.priority, e.weight, e.regions, e.zones)
              for e in pool.providers or []]
    )
    choices = []
    for prov_name, override, priority, weight, regions, zones in entries:
        assert prov_name is not None
        prov = cfg.providers[prov_name]
        concrete = override or resolve_instance_type(pool.instance_type, prov.type)
        assert concrete is not None, "config validation rejects unmappable abstract types"
        choices.append(provider_choice(
            prov_name, prov, concrete, priority=priority, weight=weight,
            regions=list(regions) or ([pool.region] if pool.region else []),
            zones=list(zones) or list(pool.zones), agent=cfg.server.agent))
    policy_path = loaded.health_policy_path()
    policy = load_policy(policy_path).source if policy_path else _default_policy()
    server = cfg.server
    return PoolSpec(
        name=name,
        providers=choices,
        strategy=pool.strategy,
        instance_type=pool.instance_type,
        region=pool.region,
        zones=list(pool.zones),
        labels=dict(pool.labels),
        ssh_keys=cfg.pool_ssh_keys(pool),
        min_nodes=pool.min_nodes,
        max_nodes=pool.max_nodes,
        cooldown=pool.cooldown,
        autoscaling=pool.autoscaling,
        health=cfg.pool_health(pool),
        health_policy=policy,
        health_check_interval=server.health_check_interval,
        boot_deadline=server.instance_manager.registration_timeout,
        heartbeat_timeout=server.effective_heartbeat_timeout,
        autoscale_interval=server.autoscale_interval,
        notifier=pool.notifier or server.effective_notifier,
        diagnostics=pool.diagnostics,
        cluster_id=server.cluster_id or "",
        shape_check="strict" if pool.boot_checks.match_gpu_model else "count",
        required_services=list(pool.boot_checks.required_services),
        setup_commands=list(pool.setup_commands),
        ssh_user=cfg.pool_ssh_user(pool),
        ssh_private_key_path=cfg.pool_ssh_key_path(pool),
        file_uploads=[FileUpload(local=str(resolve_relative(loaded.path, f.local)), remote=f.remote,
                                 mode=f.mode) for f in pool.file_uploads],
        **{key: value for key in ("ssh_port", "ssh_timeout", "ssh_connect_timeout",
                                  "command_timeout", "ip_wait_timeout")
           if (value := cfg.pool_bootstrap(pool, key)) is not None},
    )


def build_pool_specs(loaded: LoadedConfig) -> dict[str, PoolSpec]:
    return {name: build_pool_spec(loaded, name) for name in loaded.config.pools}


def placement_key(choice: ProviderChoice, region: str, zone: str = "") -> str:
    return f"{choice.name}/{region or '-'}/{zone or '-'}/{choice.instance_type}"


def _availability_rank(choice: ProviderChoice, available: list[str] | None) -> int:
    if available is None:
        return 1
    wanted = set(choice.regions or ([choice.region] if choice.region else []))
    return 0 if available and (not wanted or wanted & set(available)) else 2


def _regions_by_capacity(choice: ProviderChoice, regions: list[str],
                         available: list[str] | None) -> list[str]:
    if not available:
        return regions
    return sorted(regions, key=lambda r: r not in available)


def _zones_in(choice: ProviderChoice, region: str) -> list[str]:
    zones = choice.zones or ([choice.zone] if choice.zone else [])
    mine = [z for z in zones if not region or z.startswith(region)]
    return mine or [""]
