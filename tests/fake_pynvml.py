"""A scripted stand-in for the `pynvml` module: every call the NVML backend makes, with
answers and failures a test sets per GPU. Names and exception classes mirror pynvml's."""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_FunctionNotFound(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


class NVMLError_Unknown(NVMLError):
    pass


class NVMLError_Timeout(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


NVML_TEMPERATURE_GPU = 0
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_CLOCK_SM = 1
NVML_NVLINK_MAX_LINKS = 4
NVML_NVLINK_ERROR_DL_REPLAY = 0
NVML_NVLINK_ERROR_DL_RECOVERY = 1
NVML_NVLINK_ERROR_DL_CRC_FLIT = 2
NVML_NVLINK_ERROR_DL_CRC_DATA = 3
NVML_FI_DEV_GET_GPU_RECOVERY_ACTION = 271
nvmlEventTypeXidCriticalError = 8
nvmlClocksThrottleReasonHwSlowdown = 0x8
nvmlClocksThrottleReasonSwThermalSlowdown = 0x20
nvmlClocksThrottleReasonHwThermalSlowdown = 0x40
nvmlClocksThrottleReasonHwPowerBrakeSlowdown = 0x80
nvmlClocksThrottleReasonSwPowerCap = 0x4


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""
    bus_id: str = ""
    temperature: int = 40
    power_mw: int = 120_000
    power_limit_mw: int = 700_000
    throttle: int = 0
    ecc_uncorrected: int = 0
    ecc_corrected: int = 0
    remapped: tuple[int, int, int, int] = (0, 0, 0, 0)
    pages_pending: int = 0
    nvlink_states: list[int] | None = None  # None: NVLink not supported
    nvlink_errors: int = 0
    pcie_replays: int = 0
    recovery_action: int = 0
    processes: list[int] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)
    broken: Exception | None = None  # raised by every telemetry call (GPU lost)


class FakeNvml:
    """Import-compatible with pynvml for what the backend uses."""

    def __init__(self, gpus: list[FakeGpu], *, library_missing: bool = False) -> None:
        self.gpus = gpus
        for i, g in enumerate(gpus):
            g.uuid = g.uuid or f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd"
            g.bus_id = g.bus_id or f"00000000:{0x18 + i:02X}:00.0"
        self.library_missing = library_missing
        self.events: queue.Queue[Any] = queue.Queue()
        self.registered: list[int] = []
        self.shutdown = False
        for name, value in globals().items():
            if name.startswith(("NVML", "nvml")):
                setattr(self, name, value)

    # ---- helpers
    def _gpu(self, handle: int, call: str) -> FakeGpu:
        gpu = self.gpus[handle]
        if call in gpu.unsupported:
            raise NVMLError_NotSupported("Not Supported")
        if gpu.broken is not None and call != "nvmlDeviceGetUUID":
            raise gpu.broken
        return gpu

    def xid(self, index: int, code: int) -> None:
        self.events.put(SimpleNamespace(device=index, eventData=code, eventType=8))

    # ---- pynvml API
    def nvmlInit(self) -> None:
        if self.library_missing:
            raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return self.gpus[h].name.encode()

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self.gpus[h].uuid

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return SimpleNamespace(busId=self.gpus[h].bus_id.encode())

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        self._gpu(h, "nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=81559 * 1024 * 1024, used=1024 * 1024 * 1024)

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return self._gpu(h, "nvmlDeviceGetTemperature").temperature

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        gpu = self._gpu(h, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=90 if gpu.processes else 0, memory=0)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetCurrentClocksThrottleReasons").throttle

    def nvmlDeviceGetTotalEccErrors(self, h: int, kind: int, counter: int) -> int:
        gpu = self._gpu(h, "nvmlDeviceGetTotalEccErrors")
        unc = kind == NVML_MEMORY_ERROR_TYPE_UNCORRECTED
        value = gpu.ecc_uncorrected if unc else gpu.ecc_corrected
        return value * 3 if counter == NVML_AGGREGATE_ECC else value

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        return 1980 if clock == NVML_CLOCK_SM else 0

    def nvmlDeviceGetRemappedRows(self, h: int) -> tuple[int, int, int, int]:
        return self._gpu(h, "nvmlDeviceGetRemappedRows").remapped

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetRetiredPagesPendingStatus").pages_pending

    def nvmlDeviceGetNvLinkState(self, h: int, link: int) -> int:
        gpu = self._gpu(h, "nvmlDeviceGetNvLinkState")
        if gpu.nvlink_states is None or link >= len(gpu.nvlink_states):
            raise NVMLError_NotSupported("Not Supported")
        return gpu.nvlink_states[link]

    def nvmlDeviceGetNvLinkErrorCounter(self, h: int, link: int, kind: int) -> int:
        gpu = self._gpu(h, "nvmlDeviceGetNvLinkErrorCounter")
        if gpu.nvlink_states is None or link >= len(gpu.nvlink_states):
            raise NVMLError_NotSupported("Not Supported")
        return gpu.nvlink_errors if (link, kind) == (0, NVML_NVLINK_ERROR_DL_REPLAY) else 0

    def nvmlDeviceGetPcieReplayCounter(self, h: int) -> int:
        return self._gpu(h, "nvmlDeviceGetPcieReplayCounter").pcie_replays

    def nvmlDeviceGetFieldValues(self, h: int, ids: list[int]) -> list[Any]:
        gpu = self._gpu(h, "nvmlDeviceGetFieldValues")
        return [SimpleNamespace(nvmlReturn=0, value=SimpleNamespace(uiVal=gpu.recovery_action))]

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        return [SimpleNamespace(pid=p) for p in self._gpu(h, "procs").processes]

    def nvmlEventSetCreate(self) -> str:
        return "event-set"

    def nvmlDeviceRegisterEvents(self, h: int, kinds: int, event_set: str) -> None:
        if "events" in self.gpus[h].unsupported:
            raise NVMLError_NotSupported("Not Supported")
        self.registered.append(h)

    def nvmlEventSetWait_v2(self, event_set: str, timeout_ms: int) -> Any:
        try:
            return self.events.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise NVMLError_Timeout("Timeout") from None

    def nvmlEventSetFree(self, event_set: str) -> None:
        pass
