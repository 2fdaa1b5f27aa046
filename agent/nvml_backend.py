"""The NVML backend: GPU inventory, telemetry, NVML Xid events and driver failures, turned
into Navarch health events for the pool's policy to judge.

Telemetry becomes events every time it is read (temperature, throttle reasons, ECC counts,
row remapping, NVLink and PCIe error counters, the GPU recovery action); the policy decides
what is bad, so thresholds stay in the user's policy file. One-shot events — Xids from the
NVML event set and from the kernel log — stay current for `recent_window` after they
happen. A query a GPU does not support is skipped, never an error. A GPU that stops
answering (`GPU is lost`, `Unknown Error`) is itself an event.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from navarch.contracts.agent import (
    CheckResult,
    DiagnosticInput,
    GpuInfo,
    GpuSummary,
    Inventory,
    ResetGpuResult,
)
from navarch.health.events import EventType, HealthEvent
from navarch.health.kernel_log import KernelLogEvent, normalize_pci_bus_id

from . import host_repair
from .backend import BackendError, ComputeProcess
from .changes import Changes
from .cuda_check import memory_check
from .dcgm_health import DcgmHealthWatcher
from .diagnostics import Outcome
from .systemd import service_active

log = logging.getLogger(__name__)

# How long a one-shot event (an Xid) keeps a node judged by it.
RECENT_WINDOW_SECONDS = 600.0
EVENT_WAIT_MS = 1000

_RECOVERY_ACTIONS = {
    0: "None", 1: "GPU Reset Required", 2: "Node Reboot Required", 3: "Drain P2P",
    4: "Drain and Reset",
}


class NvmlUnavailable(BackendError):
    """NVML is not installed or not loadable (no driver, no GPU)."""


@dataclass
class _Gpu:
    index: int
    handle: Any
    info: GpuInfo
    baseline: dict[str, int] = field(default_factory=dict)


class NvmlBackend:
    name = "nvml"

    def __init__(self, nvml: ModuleType | Any | None = None, *,
                 recent_window: float = RECENT_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 watch_events: bool = True, dcgm: DcgmHealthWatcher | None = None) -> None:
        self.nvml = nvml if nvml is not None else _import_pynvml()
        self.recent_window = recent_window
        self._clock = clock
        self._recent: deque[tuple[float, HealthEvent]] = deque()
        self._recent_lock = threading.Lock()
        self.changes = Changes()
        self._stop = threading.Event()
        self.dcgm = dcgm
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:
            raise NvmlUnavailable(f"NVML did not initialise: {exc}") from None
        self.driver_version = _text(self._try(self.nvml.nvmlSystemGetDriverVersion) or "")
        cuda = self._try(self.nvml.nvmlSystemGetCudaDriverVersion)
        self.cuda_driver_version = f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else ""
        self.gpus = [self._describe(i) for i in range(self.nvml.nvmlDeviceGetCount())]
        self._by_uuid = {g.info.uuid: g for g in self.gpus}
        self._by_pci = {normalize_pci_bus_id(g.info.pci_bus_id): g for g in self.gpus}
        for gpu in self.gpus:
            gpu.baseline = self._counters(gpu)
        self._event_thread: threading.Thread | None = None
        if watch_events:
            self._event_thread = threading.Thread(target=self._watch_nvml_events,
                                                  name="nvml-xid-events", daemon=True)
            self._event_thread.start()

    # ------------------------------------------------------------------ set-up

    def _describe(self, index: int) -> _Gpu:
        nv = self.nvml
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        pci = self._try(nv.nvmlDeviceGetPciInfo, handle)
        memory = self._try(nv.nvmlDeviceGetMemoryInfo, handle)
        info = GpuInfo(
            index=index,
            name=_text(nv.nvmlDeviceGetName(handle)),
            uuid=_text(nv.nvmlDeviceGetUUID(handle)),
            pci_bus_id=normalize_pci_bus_id(_text(pci.busId)) if pci is not None else "",
            memory_total_mib=int(memory.total // (1024 * 1024)) if memory is not None else 0,
        )
        return _Gpu(index, handle, info)

    def _try(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call an NVML query; None when the GPU or driver does not support it."""
        try:
            return fn(*args)
        except (self.nvml.NVMLError_NotSupported, self.nvml.NVMLError_FunctionNotFound):
            return None

    # ------------------------------------------------------------------ GpuBackend

    def inventory(self) -> Inventory:
        return Inventory(node_id="", gpus=[g.info for g in self.gpus], boot_id=self.boot_id(),
                         driver_version=self.driver_version,
                         cuda_driver_version=self.cuda_driver_version, backend=self.name)

    def sample(self) -> list[GpuSummary]:
        out = []
        for gpu in self.gpus:
            try:
                temp = self._try(self.nvml.nvmlDeviceGetTemperature, gpu.handle,
                                 self.nvml.NVML_TEMPERATURE_GPU)
                util = self._try(self.nvml.nvmlDeviceGetUtilizationRates, gpu.handle)
                mem = self._try(self.nvml.nvmlDeviceGetMemoryInfo, gpu.handle)
                power = self._try(self.nvml.nvmlDeviceGetPowerUsage, gpu.handle)
                clock = self._try(self.nvml.nvmlDeviceGetClockInfo, gpu.handle,
                                  self.nvml.NVML_CLOCK_SM)
            except self.nvml.NVMLError as exc:
                raise BackendError(f"GPU {gpu.index}: {exc}") from None
            out.append(GpuSummary(
                index=gpu.index,
                temperature_c=float(temp) if temp is not None else None,
                utilization_pct=float(util.gpu) if util is not None else None,
                memory_used_mib=mem.used / (1024 * 1024) if mem is not None else None,
                power_w=power / 1000 if power is not None else None,
                sm_clock_mhz=float(clock) if clock is not None else None,
            ))
        return out

    def current_events(self) -> list[HealthEvent]:
        events: list[HealthEvent] = []
        for gpu in self.gpus:
            try:
                events += self._gpu_events(gpu)
            except self.nvml.NVMLError as exc:
                events.append(self._event(gpu, EventType.DRIVER_ERROR, {"nvml_error": str(exc)},
                                          f"GPU {gpu.index} does not answer NVML: {exc}"))
        if self.dcgm is not None:
            events += self.dcgm.events
        now = self._clock()
        with self._recent_lock:
            while self._recent and now - self._recent[0][0] > self.recent_window:
                self._recent.popleft()
            events += [e for _, e in self._recent]
        return events

    def compute_processes(self) -> list[ComputeProcess]:
        found = []
        for gpu in self.gpus:
            try:
                procs = self._try(self.nvml.nvmlDeviceGetComputeRunningProcesses, gpu.handle)
            except self.nvml.NVMLError as exc:
                raise BackendError(f"GPU {gpu.index}: {exc}") from None
            for proc in procs or []:
                found.append(ComputeProcess(gpu.index, int(proc.pid), _process_name(proc.pid)))
        return found

    def memory_check(self, gpu_index: int) -> CheckResult:
        gpu = self.gpus[gpu_index] if 0 <= gpu_index < len(self.gpus) else None
        return memory_check(gpu_index, gpu.info.pci_bus_id if gpu else None)

    def service_active(self, unit: str) -> CheckResult:
        return service_active(unit)

    def simulated_diagnostic(self, params: DiagnosticInput) -> Outcome | None:
        return None  # a real host runs the real tools

    # ------------------------------------------------------------------ repairs

    def boot_id(self) -> str:
        return host_repair.boot_id()

    def reset_plan(self, gpus: list[int]) -> host_repair.ResetPlan:
        """What a reset of `gpus` would do here, or why it must not run (nothing touched)."""
        busy: dict[int, list[int]] = {}
        for proc in self.compute_processes():
            busy.setdefault(proc.gpu_index, []).append(proc.pid)
        mode = getattr(self.nvml, "nvmlDeviceGetVirtualizationMode", None)
        vgpu = [g.index for g in self.gpus if mode is not None
                and self._try(mode, g.handle) == host_repair.VGPU_MODE]
        return host_repair.plan_reset(
            gpus, len(self.gpus), busy, fabric=host_repair.on_fabric(
                self.nvml, [g.handle for g in self.gpus]),
            vgpu=vgpu, tool=shutil.which("nvidia-smi"), root=host_repair.is_root())

    def reset_gpus(self, gpus: list[int]) -> ResetGpuResult:
        plan = self.reset_plan(gpus)
        if plan.refusal:
            return ResetGpuResult(outcome="refused", detail=plan.refusal)
        # NVML's open handles would keep the devices busy: close the session around it.
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()
        try:
            done, said = host_repair.run_reset(plan)
        finally:
            self.nvml.nvmlInit()
            self.gpus = [self._describe(i) for i in range(self.nvml.nvmlDeviceGetCount())]
            self._by_uuid = {g.info.uuid: g for g in self.gpus}
            self._by_pci = {normalize_pci_bus_id(g.info.pci_bus_id): g for g in self.gpus}
            for gpu in self.gpus:
                gpu.baseline = self._counters(gpu)
        if not done:
            return ResetGpuResult(outcome="failed", gpus=plan.gpus, detail=said)
        self.forget(plan.gpus)
        return ResetGpuResult(outcome="reset", gpus=plan.gpus, detail=said)

    def forget(self, gpus: list[int]) -> None:
        """Drop the one-shot events of GPUs a repair fixed (empty: every GPU's)."""
        with self._recent_lock:
            self._recent = deque((t, e) for t, e in self._recent
                                 if gpus and e.gpu_index not in gpus)

    def reboot(self, delay_seconds: float) -> str:
        return host_repair.schedule_reboot(delay_seconds)

    # ------------------------------------------------------------------ events

    def record(self, event: HealthEvent) -> None:
        """Keep a one-shot event (an Xid) current for the recent window."""
        with self._recent_lock:
            self._recent.append((self._clock(), event))
        self.changes.notify()  # the health watch judges it now, not at its next poll

    def record_kernel_event(self, line: KernelLogEvent) -> None:
        """An Xid/SXid line from the kernel log, mapped to its GPU by PCI bus id."""
        gpu = self._by_pci.get(line.normalized_pci_bus_id)
        self.record(line.to_health_event(gpu_index=gpu.index if gpu else -1,
                                         gpu_uuid=gpu.info.uuid if gpu else ""))

    def _event(self, gpu: _Gpu, kind: EventType, metrics: dict[str, Any],
               message: str = "") -> HealthEvent:
        return HealthEvent(event_type=kind, gpu_index=gpu.index, gpu_uuid=gpu.info.uuid,
                           metrics=metrics, message=message)

    def _gpu_events(self, gpu: _Gpu) -> list[HealthEvent]:
        nv, h = self.nvml, gpu.handle
        events = []
        temp = self._try(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
        power = self._try(nv.nvmlDeviceGetPowerUsage, h)
        limit = self._try(nv.nvmlDeviceGetEnforcedPowerLimit, h)
        reasons = self._try(nv.nvmlDeviceGetCurrentClocksThrottleReasons, h) or 0
        thermal: dict[str, Any] = {}
        if temp is not None:
            thermal["temperature"] = int(temp)
        if reasons & nv.nvmlClocksThrottleReasonHwThermalSlowdown:
            thermal["hw_thermal_slowdown"] = True
        if reasons & nv.nvmlClocksThrottleReasonSwThermalSlowdown:
            thermal["sw_thermal_slowdown"] = True
        if thermal:
            events.append(self._event(gpu, EventType.THERMAL, thermal))
        throttled = {
            "hw_slowdown": reasons & nv.nvmlClocksThrottleReasonHwSlowdown,
            "hw_power_brake": reasons & nv.nvmlClocksThrottleReasonHwPowerBrakeSlowdown,
            "sw_power_cap": reasons & nv.nvmlClocksThrottleReasonSwPowerCap,
        }
        # Only the hardware's own slowdowns are faults. A busy GPU at its power cap, idle
        # clocks or clocks an operator set (sw_power_cap, gpu_idle, applications clocks)
        # is routine: reported alongside a fault, never as one, so a loaded node never flaps.
        if throttled["hw_slowdown"] or throttled["hw_power_brake"]:
            metrics: dict[str, Any] = {k: True for k, v in throttled.items() if v}
            if power is not None:
                metrics["power_draw_w"] = round(power / 1000, 1)
            if limit is not None:
                metrics["power_limit_w"] = round(limit / 1000, 1)
            events.append(self._event(gpu, EventType.POWER, metrics, "clocks held down"))
        unc = self._try(nv.nvmlDeviceGetTotalEccErrors, h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                        nv.NVML_VOLATILE_ECC)
        if unc:
            total = self._try(nv.nvmlDeviceGetTotalEccErrors, h,
                              nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_AGGREGATE_ECC)
            metrics = {"ecc_dbe_count": int(unc)}
            if total is not None:
                metrics["ecc_dbe_aggregate"] = int(total)
            events.append(self._event(gpu, EventType.ECC_DBE, metrics,
                                      "uncorrectable ECC errors since boot"))
        corr = self._try(nv.nvmlDeviceGetTotalEccErrors, h, nv.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                         nv.NVML_VOLATILE_ECC)
        if corr:
            events.append(self._event(gpu, EventType.ECC_SBE, {"ecc_sbe_count": int(corr)}))
        rows = self._try(nv.nvmlDeviceGetRemappedRows, h)
        if rows is not None and (rows[2] or rows[3]):
            events.append(self._event(gpu, EventType.MEMORY, {
                "row_remap_pending": bool(rows[2]), "row_remap_failure": bool(rows[3]),
                "remapped_rows_uncorrectable": int(rows[1]),
            }, "row remapping pending" if not rows[3] else "row remapping failed"))
        pending = self._try(nv.nvmlDeviceGetRetiredPagesPendingStatus, h)
        if pending:
            events.append(self._event(gpu, EventType.MEMORY, {"retired_pages_pending": True}))
        counters = self._counters(gpu)
        nvlink = {k: v - gpu.baseline.get(k, 0) for k, v in counters.items()
                  if k.startswith("nvlink_") and v > gpu.baseline.get(k, 0)}
        down = self._nvlinks_down(gpu)
        if nvlink or down:
            metrics = dict(nvlink)
            if down:
                metrics["links_down"] = len(down)
            events.append(self._event(gpu, EventType.NVLINK, metrics))
        replays = counters.get("pcie_replay", 0) - gpu.baseline.get("pcie_replay", 0)
        if replays > 0:
            events.append(self._event(gpu, EventType.PCIE, {"pcie_replay_count": replays}))
        action = self._recovery_action(gpu)
        if action:
            name = _RECOVERY_ACTIONS.get(action, f"action {action}")
            events.append(self._event(gpu, EventType.DRIVER_ERROR, {"recovery_action": action},
                                      f"GPU recovery action: {name}"))
        return events

    def _counters(self, gpu: _Gpu) -> dict[str, int]:
        nv, out = self.nvml, {}
        replay = self._try(nv.nvmlDeviceGetPcieReplayCounter, gpu.handle)
        if replay is not None:
            out["pcie_replay"] = int(replay)
        kinds = {"replay": nv.NVML_NVLINK_ERROR_DL_REPLAY,
                 "recovery": nv.NVML_NVLINK_ERROR_DL_RECOVERY,
                 "crc_flit": nv.NVML_NVLINK_ERROR_DL_CRC_FLIT,
                 "crc_data": nv.NVML_NVLINK_ERROR_DL_CRC_DATA}
        for link in range(nv.NVML_NVLINK_MAX_LINKS):
            for name, code in kinds.items():
                try:
                    value = nv.nvmlDeviceGetNvLinkErrorCounter(gpu.handle, link, code)
                except nv.NVMLError:  # link absent or unsupported: no counter to watch
                    break
                key = f"nvlink_{name}_errors"
                out[key] = out.get(key, 0) + int(value)
        return out

    def _nvlinks_down(self, gpu: _Gpu) -> list[int]:
        nv, down, seen_up = self.nvml, [], False
        for link in range(nv.NVML_NVLINK_MAX_LINKS):
            try:
                state = nv.nvmlDeviceGetNvLinkState(gpu.handle, link)
            except nv.NVMLError:
                continue
            if state:
                seen_up = True
            else:
                down.append(link)
        return down if seen_up else []  # a GPU with no active link has no NVLink in use

    def _recovery_action(self, gpu: _Gpu) -> int:
        nv = self.nvml
        field_id = getattr(nv, "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION", None)
        if field_id is None:
            return 0
        try:
            values = nv.nvmlDeviceGetFieldValues(gpu.handle, [field_id])
        except nv.NVMLError:
            return 0
        value = values[0]
        return int(value.value.uiVal) if value.nvmlReturn == 0 else 0

    def _watch_nvml_events(self) -> None:
        nv = self.nvml
        try:
            event_set = nv.nvmlEventSetCreate()
        except nv.NVMLError as exc:
            log.info("NVML events unavailable: %s", exc)
            return
        registered = 0
        for gpu in self.gpus:
            try:
                nv.nvmlDeviceRegisterEvents(gpu.handle, nv.nvmlEventTypeXidCriticalError,
                                            event_set)
                registered += 1
            except nv.NVMLError as exc:
                log.info("GPU %d: no NVML Xid events (%s)", gpu.index, exc)
        try:
            while registered and not self._stop.is_set():
                try:
                    data = nv.nvmlEventSetWait_v2(event_set, EVENT_WAIT_MS)
                except nv.NVMLError_Timeout:
                    continue
                except nv.NVMLError as exc:
                    log.warning("NVML event wait failed: %s", exc)
                    time.sleep(1)
                    continue
                self._record_nvml_xid(data)
        finally:
            with contextlib.suppress(nv.NVMLError):
                nv.nvmlEventSetFree(event_set)

    def _record_nvml_xid(self, data: Any) -> None:
        try:
            uuid = _text(self.nvml.nvmlDeviceGetUUID(data.device))
        except self.nvml.NVMLError:
            uuid = ""
        gpu = self._by_uuid.get(uuid)
        code = int(data.eventData)
        event = HealthEvent(
            event_type=EventType.XID, gpu_index=gpu.index if gpu else -1,
            gpu_uuid=uuid, metrics={"xid_code": code},
            message=f"NVML Xid {code} on GPU {gpu.index if gpu else '?'}",
        )
        self.record(event)

    def close(self) -> None:
        self._stop.set()
        if self.dcgm is not None:
            self.dcgm.stop()
        if self._event_thread is not None:
            self._event_thread.join(timeout=(EVENT_WAIT_MS / 1000) + 1)
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()


def _import_pynvml() -> ModuleType:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise NvmlUnavailable(
            "nvidia-ml-py is not installed; install the agent with `pip install 'navarch[agent]'`"
        ) from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""
