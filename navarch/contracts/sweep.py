"""The contract of the orphan sweep: the long-lived workflow that compares what runs at the
clouds with the live node workflows, in both directions.

- A machine of this installation that no live node owns (an orphan) is terminated, or only
  reported, once it is older than the grace.
- A live node whose machine the cloud no longer runs is told (`instance_gone`), and leaves
  at once so its pool replaces it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field
from temporalio import activity

from navarch.config.instance_types import resolve_instance_type
from navarch.config.loader import LoadedConfig
from navarch.config.schema import CLUSTER_ID_PATTERN
from navarch.contracts.base import StoredModel
from navarch.contracts.spec import ProviderChoice, provider_choice
from navarch.durations import GoDuration
from navarch.validation import BoundedText

RECONCILE = "cloud.reconcile"
SweepMode = Literal["terminate", "report", "off"]
# Providers whose one listing covers every region (Lambda's API is global; GCE's aggregated
# list spans every zone): swept once, not per region.
GLOBAL_LISTING = frozenset({"lambda", "gcp"})


class SweepTarget(StoredModel):
    """One listing the sweep makes: a provider in one region ("": every region it lists)."""

    provider: ProviderChoice
    region: str = ""

    def key(self) -> str:
        return f"{self.provider.name}/{self.region or '*'}"


class SweepConfig(StoredModel):
    cluster_id: str = Field(default="", pattern=f"^$|{CLUSTER_ID_PATTERN}")
    interval: GoDuration = timedelta(minutes=2)
    grace: GoDuration = timedelta(minutes=10)
    mode: SweepMode = "terminate"
    targets: list[SweepTarget] = Field(default_factory=list)


class Orphan(StoredModel):
    """A machine of this installation that no live node workflow owns."""

    provider: str
    region: str = ""
    zone: str = ""
    instance_id: str
    node_id: str = ""  # from its tag ("": it has none)
    pool: str = ""
    state: str = ""
    created_at: datetime | None = None  # as the cloud says (None: it does not say)
    first_seen: datetime | None = None  # by the sweep
    why: BoundedText = ""  # why no node owns it

    def key(self) -> str:
        return f"{self.provider}/{self.instance_id}"


class GoneMachine(StoredModel):
    """A live node whose machine the cloud no longer runs."""

    node_id: str
    instance_id: str
    provider: str
    region: str = ""
    state: str  # "terminated", "stopping" or "absent"


class ReconcileRequest(StoredModel):
    target: SweepTarget
    cluster_id: str = ""


class ReconcileResult(StoredModel):
    target: str
    cluster_id: str  # the installation id the listing was compared for
    listed: int = 0  # machines Navarch made (any installation) at the target
    owned: int = 0  # this installation's, with a live owner
    others: int = 0  # another installation's, or untagged (made before installation ids)
    orphans: list[Orphan] = Field(default_factory=list)
    gone: list[GoneMachine] = Field(default_factory=list)


SweepAction = Literal["terminated", "terminate_failed", "reported", "instance_gone", "error"]


class SweepRecord(StoredModel):
    """One thing the sweep did or found, as a node's transitions record its life."""

    at: datetime
    action: SweepAction
    target: str
    instance_id: str = ""
    node_id: str = ""
    detail: BoundedText = ""


class SweepState(StoredModel):
    """What the sweep remembers across runs (continue-as-new)."""

    first_seen: dict[str, datetime] = Field(default_factory=dict)  # Orphan.key() -> when
    reported: list[str] = Field(default_factory=list)  # keys already recorded as reported
    records: list[SweepRecord] = Field(default_factory=list)
    sweeps: int = 0
    terminated: int = 0


class SweepInput(StoredModel):
    config: SweepConfig
    state: SweepState | None = None


class SweepStatus(StoredModel):
    """The `status` query: what `navarch cloud orphans` shows."""

    config: SweepConfig
    cluster_id: str = ""  # as resolved by the last listing
    sweeps: int = 0
    last_sweep_at: datetime | None = None
    orphans: list[Orphan] = Field(default_factory=list)  # found by the last sweep, still there
    terminated: int = 0
    records: list[SweepRecord] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)  # target -> why its listing failed
    results: list[ReconcileResult] = Field(default_factory=list)  # the last sweep's, counts


def build_sweep_config(loaded: LoadedConfig) -> SweepConfig:
    """The sweep a config asks for: every configured provider, in every region its own
    settings or a pool name for it."""
    cfg = loaded.config
    sweep = cfg.server.orphan_sweep
    targets: list[SweepTarget] = []
    for name, prov in sorted(cfg.providers.items()):
        regions: list[str] = [prov.region] if prov.region else []
        regions += list(prov.regions)
        instance_type = ""
        for pool in cfg.pools.values():
            entries = ([(pool.provider, [])] if pool.provider
                       else [(e.name, e.regions) for e in pool.providers or []])
            for used, entry_regions in entries:
                if used != name:
                    continue
                regions += entry_regions or ([pool.region] if pool.region else [])
                instance_type = instance_type or resolve_instance_type(
                    pool.instance_type, prov.type) or pool.instance_type
        places = [""] if prov.type in GLOBAL_LISTING or not regions else list(
            dict.fromkeys(regions))
        choice = provider_choice(name, prov, instance_type)
        targets += [SweepTarget(provider=choice, region=r) for r in places]
    return SweepConfig(cluster_id=cfg.server.cluster_id or "", interval=sweep.interval,
                       grace=sweep.grace, mode=sweep.mode, targets=targets)


# ------------------------------------------------------------------------ activities


@activity.defn(name=RECONCILE)
async def reconcile(request: ReconcileRequest) -> ReconcileResult:
    """List the target's machines and compare them with the live node workflows."""
    raise NotImplementedError
