"""Health events and results: the shapes every event source produces and every policy judges."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from navarch.validation import BoundedText, StrictModel


class EventType(StrEnum):
    """What kind of health event this is (the `event.event_type` a policy sees)."""

    XID = "xid"
    SXID = "sxid"
    THERMAL = "thermal"
    POWER = "power"
    MEMORY = "memory"
    NVLINK = "nvlink"
    PCIE = "pcie"
    DRIVER_ERROR = "driver_error"
    ECC_SBE = "ecc_sbe"
    ECC_DBE = "ecc_dbe"
    DIAGNOSTIC = "diagnostic"


class HealthResult(StrEnum):
    """A policy's verdict on an event or on a node, ordered from best to worst."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    def is_worse_than(self, other: HealthResult) -> bool:
        return self.severity > other.severity

    @classmethod
    def worst(cls, results: Iterable[HealthResult]) -> HealthResult:
        worst = cls.HEALTHY
        for result in results:
            if result.is_worse_than(worst):
                worst = result
        return worst


_SEVERITY = {HealthResult.HEALTHY: 0, HealthResult.DEGRADED: 1, HealthResult.UNHEALTHY: 2}

MetricValue = bool | int | float | str


def _now() -> datetime:
    return datetime.now(UTC)


class HealthEvent(StrictModel):
    """One observation about a node's GPUs, from NVML, the kernel log, DCGM or a diagnostic."""

    event_type: EventType
    system: str = Field(default="", description="DCGM health-watch system name, if any")
    gpu_index: int = Field(default=-1, description="GPU index; -1 for node-level events")
    gpu_uuid: str = ""
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    message: BoundedText = ""
    timestamp: datetime = Field(default_factory=_now)

    def cel_activation(self) -> dict[str, Any]:
        """The `event` variable as CEL conditions see it (the Go Navarch's field names)."""
        return {
            "event_type": self.event_type.value,
            "system": self.system,
            "gpu_index": self.gpu_index,
            "gpu_uuid": self.gpu_uuid,
            "metrics": dict(self.metrics),
            "message": self.message,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
        }
