"""Repairs a real GPU host does to itself: a GPU reset through `nvidia-smi`, and a reboot
through systemd (for a cloud with no reboot API).

A reset is refused, touching nothing, unless it can work: `nvidia-smi` present, the agent
running as root, the GPU not a vGPU (a guest cannot reset one), and no process on the GPUs
to be reset. On an NVSwitch machine (a GPU fabric) the GPUs are reset together, since one
GPU alone cannot leave and rejoin the fabric. NVML's own handles keep the device open, so
the backend closes its NVML session around the reset.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESET_TIMEOUT_SECONDS = 180.0
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
VGPU_MODE = 2  # NVML_GPU_VIRTUALIZATION_MODE_VGPU: a guest's virtual GPU
FABRIC_NOT_SUPPORTED = 0  # NVML_GPU_FABRIC_STATE_NOT_SUPPORTED


@dataclass(frozen=True)
class ResetPlan:
    gpus: list[int]  # what a reset would touch ([] with a refusal)
    together: bool  # all GPUs in one call (a fabric machine)
    refusal: str = ""  # why it must not run; empty: it may


def boot_id(path: Path = BOOT_ID_PATH) -> str:
    """This boot's id (Linux); empty where the kernel does not say."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def on_fabric(nvml: Any, handles: Sequence[Any]) -> bool:
    """Whether the GPUs sit on an NVSwitch fabric: NVML reports fabric state (Hopper and
    later), or the host has NVSwitch devices (A100 HGX)."""
    if glob.glob("/dev/nvidia-nvswitch*"):
        return True
    query = getattr(nvml, "nvmlDeviceGetGpuFabricInfo", None)
    if query is None or not handles:
        return False
    try:
        info = query(handles[0])
    except Exception:  # not supported on this GPU or driver
        return False
    return int(getattr(info, "state", FABRIC_NOT_SUPPORTED)) != FABRIC_NOT_SUPPORTED


def plan_reset(wanted: Sequence[int], count: int, busy: dict[int, list[int]], *,
               fabric: bool, vgpu: Sequence[int] = (), tool: str | None = "nvidia-smi",
               root: bool = True) -> ResetPlan:
    """What a reset of `wanted` GPUs (empty: all) would do on a host with `count` GPUs,
    `busy` (GPU → pids still on it), and the platform's facts; or why it must not run."""
    targets = sorted(set(wanted)) if wanted and not fabric else list(range(count))
    outside = [g for g in targets if not 0 <= g < count]
    if outside:
        return ResetPlan([], fabric, f"no GPU {outside[0]} on this host ({count} GPUs)")
    if tool is None:
        return ResetPlan([], fabric, "nvidia-smi is not installed")
    if not root:
        return ResetPlan([], fabric, "a GPU reset needs root; the agent runs as another user")
    virtual = [g for g in targets if g in vgpu]
    if virtual:
        return ResetPlan([], fabric, f"GPU {virtual[0]} is a vGPU; a guest cannot reset it")
    held = {g: busy[g] for g in targets if busy.get(g)}
    if held:
        what = "; ".join(f"GPU {g}: pid {', '.join(map(str, pids))}" for g, pids in held.items())
        scope = " (an NVSwitch machine resets all its GPUs together)" if fabric else ""
        return ResetPlan([], fabric, f"processes still hold the GPU{scope}: {what}")
    return ResetPlan(targets, fabric)


def reset_argv(plan: ResetPlan, tool: str = "nvidia-smi") -> list[list[str]]:
    """The commands that carry a plan out: one for all GPUs together, else one per GPU."""
    if plan.together:
        return [[tool, "--gpu-reset"]]
    return [[tool, "--gpu-reset", "-i", str(g)] for g in plan.gpus]


def run_reset(plan: ResetPlan, *, run: Callable[..., Any] = subprocess.run) -> tuple[bool, str]:
    """Run the reset commands; (done, what they said)."""
    tool = shutil.which("nvidia-smi") or "nvidia-smi"
    said = []
    for argv in reset_argv(plan, tool):
        try:
            done = run(argv, capture_output=True, text=True, timeout=RESET_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{' '.join(argv)}: {exc}"
        out = " ".join((done.stdout + " " + done.stderr).split())[:400]
        if done.returncode != 0:
            return False, f"{' '.join(argv[1:])} exited {done.returncode}: {out}"
        said.append(out)
    return True, "; ".join(s for s in said if s) or "reset"


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def schedule_reboot(delay_seconds: float) -> str:
    """Ask systemd to reboot the host shortly (the activity's answer gets out first)."""
    seconds = max(1, int(delay_seconds))
    argv = ["systemd-run", f"--on-active={seconds}", "--timer-property=AccuracySec=1s",
            "systemctl", "reboot"]
    if shutil.which("systemd-run") is None:
        raise OSError("systemd-run is not installed: this host cannot reboot itself")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(f"systemd-run exited {done.returncode}: {done.stderr.strip()[:300]}")
    return f"systemctl reboot in {seconds} s"
