"""A fake GPU backend whose faults live in the FakeWorld, so a test, the simulator or
`navarch demo inject-xid` (another process) can break a simulated host."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from datetime import UTC, datetime

from navarch.contracts.agent import (
    CheckResult,
    DiagnosticInput,
    GpuInfo,
    GpuSummary,
    Inventory,
    ResetGpuResult,
)
from navarch.health.events import EventType, HealthEvent
from navarch.health.kernel_log import KernelLogEvent
from navarch.health.xid import lookup
from navarch.sim.fakeworld import FakeWorld, GpuFault

from .backend import BackendError, ComputeProcess
from .changes import Changes
from .diagnostics import Outcome
from .world_feed import WorldFeed

# Faults are read from SQLite at most this often; a check loop polls faster than that.
_REFRESH_SECONDS = 0.05
_IDLE_TEMPERATURE = 42.0
RECENT_WINDOW_SECONDS = 600.0  # as the NVML backend keeps one-shot events

_EVENT_TYPES = {
    "xid": EventType.XID,
    "temperature": EventType.THERMAL,
    "ecc_dbe": EventType.ECC_DBE,
    "ecc_sbe": EventType.ECC_SBE,
    "nvlink": EventType.NVLINK,
    "pcie": EventType.PCIE,
    "power": EventType.POWER,
    "nvml_failure": EventType.DRIVER_ERROR,
}
# What each simulated diagnostic finds: the fault kinds its tests exercise.
_DIAGNOSED = {
    "dcgm": {"xid", "ecc_dbe", "nvlink", "pcie", "power", "temperature", "nvml_failure"},
    "gpu_burn": {"xid", "ecc_dbe", "power", "temperature", "nvml_failure"},
    "nccl": {"nvlink", "pcie", "nvml_failure"},
}
_HOT_C = 90.0  # a simulated stress test fails a GPU at or above this temperature
_METRIC = {
    "xid": "xid_code",
    "temperature": "temperature",
    "ecc_dbe": "ecc_dbe_count",
    "ecc_sbe": "ecc_sbe_count",
    "nvlink": "nvlink_errors",
    "pcie": "pcie_replay_count",
    "power": "power_draw_w",
}


class FakeGpuBackend:
    name = "fake"

    def __init__(self, world: FakeWorld, node_id: str, gpu_count: int, gpu_model: str, *,
                 feed: WorldFeed | None = None) -> None:
        self.world = world
        self.feed = feed  # many hosts in one process read the world through one feed
        self.node_id = node_id
        self.gpu_count = gpu_count
        self.gpu_model = gpu_model
        self._faults: list[GpuFault] = []
        self._read_at = 0.0
        self._recorded: list[tuple[float, HealthEvent]] = []
        self._recorded_lock = threading.Lock()  # the kernel-log reader records from its thread
        self.changes = Changes()
        # A simulated host's backend is made anew each time its machine comes up.
        self._boot_id = str(uuid.uuid4())

    def _current_faults(self) -> list[GpuFault]:
        if self.feed is not None:
            return self.feed.faults(self.node_id)
        now = time.monotonic()
        if now - self._read_at >= _REFRESH_SECONDS:
            self._faults = self.world.faults(self.node_id)
            self._read_at = now
        return self._faults

    def _check_driver(self) -> None:
        if any(f.kind == "nvml_failure" for f in self._current_faults()):
            raise BackendError("NVML: Unknown Error (injected)")

    def _uuid(self, index: int) -> str:
        digest = hashlib.sha1(f"{self.node_id}/{index}".encode()).hexdigest()
        return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

    def inventory(self) -> Inventory:
        self._check_driver()
        gpus = [
            GpuInfo(index=i, name=f"NVIDIA {self.gpu_model} (simulated)", uuid=self._uuid(i),
                    pci_bus_id=_pci_bus_id(i), memory_total_mib=81559)
            for i in range(self.gpu_count)
        ]
        return Inventory(node_id=self.node_id, gpus=gpus, hostname=self.node_id,
                         boot_id=self._boot_id,
                         driver_version="550.54.15-fake",
                         cuda_driver_version="12.4", backend=self.name)

    def sample(self) -> list[GpuSummary]:
        self._check_driver()
        temps = {f.gpu_index: f.value for f in self._current_faults()
                 if f.kind == "temperature" and f.value is not None}
        busy = {p.gpu_index for p in self.compute_processes()}
        return [
            GpuSummary(index=i, temperature_c=temps.get(i, _IDLE_TEMPERATURE),
                       utilization_pct=90.0 if i in busy else 0.0,
                       memory_used_mib=40000.0 if i in busy else 0.0)
            for i in range(self.gpu_count)
        ]

    def current_events(self) -> list[HealthEvent]:
        events = []
        for fault in self._current_faults():
            metrics: dict[str, bool | int | float | str] = {}
            metric = _METRIC.get(fault.kind)
            if metric is not None and fault.value is not None:
                value = fault.value
                metrics[metric] = int(value) if float(value).is_integer() else value
            events.append(HealthEvent(
                event_type=_EVENT_TYPES[fault.kind],
                gpu_index=fault.gpu_index,
                gpu_uuid=self._uuid(fault.gpu_index),
                metrics=metrics,
                message=fault.message or f"injected {fault.kind} fault",
                # An injected fault happened once, when it was injected (as a kernel-log
                # line has its own time), however often it is read.
                **({"timestamp": datetime.fromtimestamp(fault.created_at, UTC)}
                   if fault.created_at else {}),
            ))
        return events + self._recent()

    def record(self, event: HealthEvent) -> None:
        with self._recorded_lock:
            self._recorded.append((time.monotonic(), event))
        self.changes.notify()
        if self.feed is not None:  # a shared host's watch sleeps until woken
            self.feed.wake(self.node_id)

    def record_kernel_event(self, line: KernelLogEvent) -> None:
        """An Xid/SXid line from a kernel log the agent follows (`navarch-agent --fake-gpus N
        --kernel-log PATH`), mapped to its simulated GPU by PCI bus id as on a real host."""
        index = next((i for i in range(self.gpu_count)
                      if _pci_bus_id(i) == line.normalized_pci_bus_id), -1)
        self.record(line.to_health_event(gpu_index=index,
                                         gpu_uuid=self._uuid(index) if index >= 0 else ""))

    def _recent(self) -> list[HealthEvent]:
        cutoff = time.monotonic() - RECENT_WINDOW_SECONDS
        with self._recorded_lock:
            self._recorded = [(t, e) for t, e in self._recorded if t >= cutoff]
            return [e for _, e in self._recorded]

    def compute_processes(self) -> list[ComputeProcess]:
        self._check_driver()
        processes = (self.feed.processes(self.node_id) if self.feed is not None
                     else self.world.processes(self.node_id))
        return [ComputeProcess(p.gpu_index, p.pid, p.name) for p in processes]

    def memory_check(self, gpu_index: int) -> CheckResult:
        if any(f.kind == "ecc_dbe" and f.gpu_index == gpu_index for f in self._current_faults()):
            return CheckResult(name="memory", status="fail",
                               detail=f"GPU {gpu_index}: read back differs (injected ECC DBE)")
        return CheckResult(name="memory", status="pass",
                           detail=f"GPU {gpu_index}: 64 MiB written, read back, compared")

    def service_active(self, unit: str) -> CheckResult:
        return CheckResult(name=f"service:{unit}", status="pass", detail="simulated host")

    def boot_id(self) -> str:
        return self._boot_id

    def reset_gpus(self, gpus: list[int]) -> ResetGpuResult:
        """The world's GPU reset: refused while a process holds a GPU; else the faults a
        reset heals on those GPUs are gone."""
        self._check_driver()
        targets = sorted(set(gpus)) or list(range(self.gpu_count))
        outside = [g for g in targets if not 0 <= g < self.gpu_count]
        if outside:
            return ResetGpuResult(outcome="refused", detail=f"no GPU {outside[0]} on this host "
                                                            f"({self.gpu_count} GPUs)")
        refusal = self.world.reset_gpus(self.node_id, targets)
        if refusal:
            return ResetGpuResult(outcome="refused", detail=refusal)
        self._read_at = 0.0  # read the healed faults at once
        self.forget(targets)
        if self.feed is not None:
            self.feed.wake(self.node_id)
        return ResetGpuResult(outcome="reset", gpus=targets,
                              detail=f"simulated reset of GPU {', '.join(map(str, targets))}")

    def forget(self, gpus: list[int]) -> None:
        with self._recorded_lock:
            self._recorded = [(t, e) for t, e in self._recorded
                              if gpus and e.gpu_index not in gpus]

    def reboot(self, delay_seconds: float) -> str:
        inst = self.world.get_by_node(self.node_id)
        if inst is None or not self.world.reboot(inst.instance_id, through_cloud=False):
            raise OSError(f"simulated host {self.node_id} has no live machine to reboot")
        return "simulated systemctl reboot"

    def simulated_diagnostic(self, params: DiagnosticInput) -> Outcome | None:
        """Where the world simulates diagnostics: fail on the faults the diagnostic's tests
        would find (an Xid only if the catalog calls it unhealthy), else pass. None: run
        the real tools."""
        if not self.world.diagnostics_simulated():
            return None
        found = [f for f in self.world.faults(self.node_id) if _finds(params.kind, f)]
        took: dict[str, bool | float] = {"simulated": True}
        seconds = self.world.diagnostic_seconds()
        if seconds:
            took["run_seconds"] = seconds  # the agent takes this long to answer
        what = {"dcgm": f"dcgmi diag -r {params.level}", "gpu_burn": "gpu_burn",
                "nccl": "all_reduce_perf"}[params.kind]
        if not found:
            return Outcome("pass", f"{what} (simulated): all {self.gpu_count} GPUs passed",
                           dict(took))
        return Outcome("fail", f"{what} (simulated): " + "; ".join(
            f"GPU {f.gpu_index} {f.kind}" + (f" {f.value:g}" if f.value is not None else "")
            for f in found), {**took, "failed_gpus": len({f.gpu_index for f in found})})


def _pci_bus_id(index: int) -> str:
    return f"0000:{0x18 + index:02x}:00.0"


def _finds(kind: str, fault: GpuFault) -> bool:
    if fault.kind not in _DIAGNOSED[kind]:
        return False
    if fault.kind == "xid":
        info = lookup(int(fault.value or 0))
        return info is not None and info.verdict == "unhealthy"
    if fault.kind == "temperature":
        return (fault.value or 0.0) >= _HOT_C
    return True
