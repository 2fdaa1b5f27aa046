"""A small GPU memory test through the CUDA driver API (libcuda via ctypes, no framework):
write a pattern to device memory, read it back, compare."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from navarch.lifecycle import CheckResult

TEST_BYTES = 64 * 1024 * 1024
_PATTERN = bytes(range(251)) * (TEST_BYTES // 251 + 1)


class _CudaError(Exception):
    pass


def _load() -> Any:
    for name in ("libcuda.so.1", ctypes.util.find_library("cuda")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def memory_check(gpu_index: int, pci_bus_id: str | None = None,
                 size: int = TEST_BYTES) -> CheckResult:
    cuda = _load()
    if cuda is None:
        return CheckResult(name="memory", status="skipped",
                           detail="libcuda not found (no NVIDIA driver on this host)")

    def call(fn: str, *args: Any) -> None:
        rc = getattr(cuda, fn)(*args)
        if rc != 0:
            text = ctypes.c_char_p()
            cuda.cuGetErrorName(rc, ctypes.byref(text))
            raise _CudaError(f"{fn}: {text.value.decode() if text.value else rc}")

    device, context, pointer = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
    allocated = created = False
    try:
        call("cuInit", 0)
        if pci_bus_id:
            call("cuDeviceGetByPCIBusId", ctypes.byref(device), pci_bus_id.encode())
        else:
            call("cuDeviceGet", ctypes.byref(device), gpu_index)
        call("cuCtxCreate_v2", ctypes.byref(context), 0, device)
        created = True
        call("cuMemAlloc_v2", ctypes.byref(pointer), ctypes.c_size_t(size))
        allocated = True
        source = ctypes.create_string_buffer(_PATTERN[:size], size)
        target = ctypes.create_string_buffer(size)
        call("cuMemcpyHtoD_v2", pointer, source, ctypes.c_size_t(size))
        call("cuMemcpyDtoH_v2", target, pointer, ctypes.c_size_t(size))
        if target.raw != source.raw:
            bad = next(i for i, (a, b) in enumerate(zip(source.raw, target.raw, strict=True))
                       if a != b)
            return CheckResult(name="memory", status="fail",
                               detail=f"GPU {gpu_index}: read-back differs at byte {bad}")
        return CheckResult(name="memory", status="pass",
                           detail=f"GPU {gpu_index}: {size // (1024 * 1024)} MiB written, "
                                  "read back, compared")
    except _CudaError as exc:
        return CheckResult(name="memory", status="fail", detail=f"GPU {gpu_index}: {exc}")
    finally:
        if allocated:
            cuda.cuMemFree_v2(pointer)
        if created:
            cuda.cuCtxDestroy_v2(context)
