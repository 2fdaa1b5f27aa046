"""A small GPU memory test through the CUDA driver API (libcuda via ctypes, no framework):
write a pattern to device memory, read it back, compare.

The test runs in a child process (`python -m navarch.agent.cuda_check`): a CUDA context and
the test buffers cost the agent well over 100 MiB of resident memory that the driver does not
give back, and a GPU that hangs inside a CUDA call can only be escaped by killing the process
that made it. The agent waits for the child with a deadline and reads one JSON line.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import subprocess
import sys
from typing import Any

from navarch.contracts.agent import CheckResult

TEST_BYTES = 64 * 1024 * 1024
CHECK_TIMEOUT_S = 120.0


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


def memory_check(gpu_index: int, pci_bus_id: str | None = None, size: int = TEST_BYTES,
                 timeout_s: float = CHECK_TIMEOUT_S) -> CheckResult:
    """Run the memory test on one GPU in a child process; a crash or a hang is a failure."""
    argv = [sys.executable, "-m", "navarch.agent.cuda_check", "--gpu", str(gpu_index),
            "--size", str(size)]
    if pci_bus_id:
        argv += ["--pci-bus-id", pci_bus_id]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        return CheckResult(name="memory", status="fail",
                           detail=f"GPU {gpu_index}: memory test did not finish in "
                                  f"{timeout_s:g} s (killed)")
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        try:
            return CheckResult.model_validate_json(lines[-1])
        except ValueError:
            pass
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return CheckResult(name="memory", status="fail",
                       detail=f"GPU {gpu_index}: memory test exited {done.returncode}: {tail}")


def memory_check_here(gpu_index: int, pci_bus_id: str | None = None,
                      size: int = TEST_BYTES) -> CheckResult:
    """The memory test in this process (what the child process runs)."""
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
        pattern = bytes(range(251)) * (size // 251 + 1)
        source = ctypes.create_string_buffer(pattern[:size], size)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="CUDA memory test on one GPU (JSON result)")
    parser.add_argument("--gpu", type=int, required=True)
    parser.add_argument("--pci-bus-id", default=None)
    parser.add_argument("--size", type=int, default=TEST_BYTES)
    args = parser.parse_args(argv)
    print(memory_check_here(args.gpu, args.pci_bus_id, args.size).model_dump_json(), flush=True)


if __name__ == "__main__":
    main()
