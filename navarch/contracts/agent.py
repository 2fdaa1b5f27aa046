"""The contract between workflows and the node agent's activities: names and models.

These activities run on the node's own task queue (`navarch-node-<node_id>`), served by
`navarch-agent` on the GPU host.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field
from temporalio import activity

from navarch.contracts.base import StoredModel
from navarch.durations import GoDuration
from navarch.health.events import HealthEvent, HealthResult
from navarch.health.policy import PolicyFile
from navarch.health.remedy import Remedy
from navarch.validation import BoundedText

GPU_INVENTORY = "agent.gpu_inventory"
BOOT_CHECK = "agent.boot_check"
WATCH_HEALTH = "agent.watch_health"
WAIT_IDLE = "agent.wait_idle"
RUN_DIAGNOSTIC = "agent.run_diagnostic"
RESET_GPU = "agent.reset_gpu"
REBOOT_HOST = "agent.reboot_host"


class GpuInfo(StoredModel):
    """One GPU as the agent finds it."""


    index: int
    name: str = ""
    uuid: str = ""
    pci_bus_id: str = ""
    memory_total_mib: int = 0


class CheckResult(StoredModel):
    """One boot check's outcome."""


    name: str
    status: str  # pass | fail | skipped
    detail: BoundedText = ""


class Inventory(StoredModel):
    node_id: str
    gpus: list[GpuInfo] = Field(default_factory=list)
    driver_version: str = ""
    cuda_driver_version: str = ""
    backend: str = ""
    hostname: str = ""  # the host's name (a workload scheduler may know the node by it)
    boot_id: str = ""  # changes with every boot: how a reboot is known to have happened


class BootCheckInput(StoredModel):
    node_id: str
    expected_gpu_count: int | None = None
    expected_gpu_model: str | None = None
    required_services: list[str] = Field(default_factory=list)


class BootCheckResult(StoredModel):
    passed: bool
    checks: list[CheckResult] = Field(default_factory=list)
    # What the checks found, so a new machine's first answer is also its registration (one
    # activity and one workflow task instead of two). None from a driver that did not
    # answer, and from agents older than this field.
    inventory: Inventory | None = None


MAX_OCCURRENCES = 200  # the repeat counts a node keeps (newest kept)


class Occurrence(StoredModel):
    """One event a `repeats` rule counted: which rule, on which GPU, when it happened."""

    rule: str
    gpu_index: int
    at: datetime


class WatchHealthInput(StoredModel):
    node_id: str
    policy: PolicyFile
    last_health: HealthResult = HealthResult.HEALTHY
    check_interval: GoDuration = timedelta(seconds=60)
    unhealthy_after: int = Field(default=1, ge=1)
    recover_after: int = Field(default=1, ge=1)  # healthier checks in a row before saying so
    occurrences: list[Occurrence] = Field(default_factory=list)  # counted so far (durable)


class GpuSummary(StoredModel):
    index: int
    temperature_c: float | None = None
    utilization_pct: float | None = None
    memory_used_mib: float | None = None
    power_w: float | None = None
    sm_clock_mhz: float | None = None


class HealthSummary(StoredModel):
    """What watch_health heartbeats: shown live in the UI as the activity's details."""

    node_id: str
    health: HealthResult
    gpus: list[GpuSummary] = Field(default_factory=list)
    last_events: list[str] = Field(default_factory=list)
    unhealthy_streak: int = 0
    checks: int = 0
    processes: int | None = None  # GPU compute processes (None: the driver did not say)


class WatchHealthResult(StoredModel):
    health: HealthResult
    rule: str | None = None
    events: list[HealthEvent] = Field(default_factory=list)
    summary: HealthSummary | None = None
    # Every count a `repeats` rule keeps, with what this watch added. A watch also returns,
    # health unchanged, when it counted a new event, so the count outlives the agent.
    occurrences: list[Occurrence] = Field(default_factory=list)
    remedy: Remedy | None = None  # for an unhealthy result: what the policy says fixes it
    # The agent is stopping (a restart, a package upgrade) and nothing changed: the node
    # keeps its verdict and starts a new watch, which the agent's next process picks up.
    handover: bool = False


class WaitIdleInput(StoredModel):
    node_id: str
    grace: GoDuration = timedelta(minutes=10)
    poll_interval: GoDuration = timedelta(seconds=2)


class WaitIdleResult(StoredModel):
    outcome: Literal["idle", "grace_expired"]
    remaining_processes: int = 0


class DiagnosticInput(StoredModel):
    node_id: str
    kind: Literal["dcgm", "gpu_burn", "nccl"]
    level: int = Field(default=2, ge=1, le=4)  # dcgmi diag -r LEVEL
    seconds: int = Field(default=60, ge=1)  # gpu_burn duration
    command: str | None = None  # gpu_burn / all_reduce_perf binary name or path
    min_bus_gbps: float | None = None  # NCCL all-reduce threshold for this instance type


# How long a diagnostic may run: DCGM's levels by their published durations, a burn for
# its seconds; plus a margin for start-up and reporting.
DCGM_LEVEL_TIME = {1: timedelta(minutes=5), 2: timedelta(minutes=20), 3: timedelta(hours=1),
                   4: timedelta(hours=4)}
CHECK_MARGIN = timedelta(minutes=10)


def diagnostic_limit(kind: str, level: int, seconds: int) -> timedelta:
    run = (DCGM_LEVEL_TIME.get(level, timedelta(hours=1)) if kind == "dcgm"
           else timedelta(seconds=seconds))
    return run + CHECK_MARGIN


class DiagnosticResult(StoredModel):
    kind: str
    status: Literal["pass", "fail", "skipped"]
    detail: str = ""
    metrics: dict[str, float | int | str | bool] = Field(default_factory=dict)


class ResetGpuInput(StoredModel):
    node_id: str
    gpus: list[int] = Field(default_factory=list)  # empty: every GPU of the host


class ResetGpuResult(StoredModel):
    """`reset`: done; `refused`: a precondition failed (work still on the GPU, no reset on
    this platform), nothing was touched; `failed`: the reset itself failed."""

    outcome: Literal["reset", "refused", "failed"]
    gpus: list[int] = Field(default_factory=list)  # the GPUs reset (all, on a fabric machine)
    detail: BoundedText = ""


class RebootHostInput(StoredModel):
    node_id: str
    delay_seconds: float = Field(default=5.0, ge=0, le=300)  # lets the answer reach Temporal


# ------------------------------------------------------------------------ activities
# Each activity's signature, declared once under its stable name: workflows call these stubs
# (so mypy checks every call), workers register implementations under the same names; a
# stub itself never runs.


@activity.defn(name=GPU_INVENTORY)
async def gpu_inventory(node_id: str) -> Inventory:
    """The host's GPUs and driver: the agent's first answer proves it is there."""
    raise NotImplementedError


@activity.defn(name=BOOT_CHECK)
async def boot_check(params: BootCheckInput) -> BootCheckResult:
    """The light checks a new machine passes before it takes work."""
    raise NotImplementedError


@activity.defn(name=WATCH_HEALTH)
async def watch_health(params: WatchHealthInput) -> WatchHealthResult:
    """Judge the node with the pool's policy; return only when its health changes."""
    raise NotImplementedError


@activity.defn(name=WAIT_IDLE)
async def wait_idle(params: WaitIdleInput) -> WaitIdleResult:
    """Return when no GPU compute processes remain, or when the grace ends."""
    raise NotImplementedError


@activity.defn(name=RUN_DIAGNOSTIC)
async def run_diagnostic(params: DiagnosticInput) -> DiagnosticResult:
    """One active diagnostic (DCGM, GPU burn, NCCL all-reduce)."""
    raise NotImplementedError


@activity.defn(name=RESET_GPU)
async def reset_gpu(params: ResetGpuInput) -> ResetGpuResult:
    """Reset GPUs that no process holds (all together where the fabric needs it)."""
    raise NotImplementedError


@activity.defn(name=REBOOT_HOST)
async def reboot_host(params: RebootHostInput) -> str:
    """Reboot the host from inside (`systemctl reboot`), for a cloud with no reboot API."""
    raise NotImplementedError
