"""The GPU backend interface the agent's activities run on: NVML on a real host, the fake
backend in tests and simulation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from navarch.contracts.agent import (
    CheckResult,
    DiagnosticInput,
    GpuSummary,
    Inventory,
    ResetGpuResult,
)
from navarch.health.events import HealthEvent

from .changes import Changes
from .diagnostics import Outcome


class BackendError(Exception):
    """The GPU driver did not answer (NVML failure, GPU lost)."""


@dataclass(frozen=True)
class ComputeProcess:
    gpu_index: int
    pid: int
    name: str = ""


class GpuBackend(Protocol):
    name: str
    # Notified whenever the events change other than by a reading of the GPUs (an Xid
    # line, an NVML event, a recorded diagnostic), so the health watch wakes at once.
    changes: Changes

    def inventory(self) -> Inventory:
        """GPUs and driver versions. Raises BackendError when the driver does not answer."""
        ...

    def sample(self) -> list[GpuSummary]:
        """Temperature, utilization and memory per GPU. Raises BackendError."""
        ...

    def current_events(self) -> list[HealthEvent]:
        """Events describing the node's condition now (faults, recent Xids, thresholds).
        Never raises: a driver that does not answer is itself an event."""
        ...

    def compute_processes(self) -> list[ComputeProcess]:
        """Processes holding a GPU. Raises BackendError."""
        ...

    def memory_check(self, gpu_index: int) -> CheckResult:
        """Write, read back and compare a small buffer on one GPU."""
        ...

    def service_active(self, unit: str) -> CheckResult:
        """Whether a systemd unit (nvidia-fabricmanager, ...) is active."""
        ...

    def record(self, event: HealthEvent) -> None:
        """Keep a one-shot event (an Xid, a failed diagnostic) among the current events for
        a while, so the policy judges it; notify `changes`. Safe from any thread."""
        ...

    def simulated_diagnostic(self, params: DiagnosticInput) -> Outcome | None:
        """A simulated host's answer to an active diagnostic; None runs the real tools."""
        ...

    def boot_id(self) -> str:
        """The host's current boot (a reboot changes it); empty where unknown."""
        ...

    def reset_gpus(self, gpus: list[int]) -> ResetGpuResult:
        """Reset GPUs (empty: all) if nothing holds them; refused, touching nothing, when a
        precondition fails. Events of the GPUs reset are forgotten."""
        ...

    def forget(self, gpus: list[int]) -> None:
        """Drop recorded one-shot events of these GPUs (empty: all): a repair fixed them."""
        ...

    def reboot(self, delay_seconds: float) -> str:
        """Reboot the host from inside, shortly; what was done. Raises OSError."""
        ...
