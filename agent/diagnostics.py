"""Active diagnostics on a node: DCGM's `dcgmi diag`, a GPU burn, an NCCL all-reduce.

Each reports pass, fail or skipped with a reason. A tool that is not installed is
"skipped: ... not installed", never a pass. A failed diagnostic becomes a `diagnostic`
health event that the pool's policy judges like any other (default: unhealthy).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "skipped"]

DCGM_LEVEL_TIMEOUT = {1: 300, 2: 1200, 3: 3600, 4: 14400}  # seconds each level may take
_BUS_BW = re.compile(r"Avg bus bandwidth\s*:\s*([0-9.]+)")


@dataclass
class Outcome:
    status: Status
    detail: str
    metrics: dict[str, Any] = field(default_factory=dict)


def _run(argv: list[str], timeout: float) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "", f"{argv[0]} did not finish within {timeout:.0f} s"
    except OSError as exc:
        return -1, "", f"{argv[0]}: {exc}"
    return proc.returncode, proc.stdout, proc.stderr


def dcgm_diag(level: int) -> Outcome:
    dcgmi = shutil.which("dcgmi")
    if dcgmi is None:
        return Outcome("skipped", "skipped: DCGM not installed (no dcgmi)")
    rc, out, err = _run([dcgmi, "diag", "-r", str(level), "-j"],
                        DCGM_LEVEL_TIMEOUT.get(level, 3600))
    try:
        doc = json.loads(out[out.find("{"): out.rfind("}") + 1]) if "{" in out else None
    except json.JSONDecodeError:
        doc = None
    if doc is None:
        text = (err or out).strip().splitlines()
        return Outcome("fail", f"dcgmi diag -r {level} gave no result (exit {rc}): "
                               f"{text[-1] if text else 'no output'}")
    failed: list[str] = []
    counts = {"pass": 0, "fail": 0, "skip": 0, "warn": 0}
    for test, result in _diag_results(doc):
        status = str(result.get("status", "")).lower()
        for key in counts:
            if status.startswith(key):
                counts[key] += 1
        if status.startswith("fail"):
            gpu = result.get("gpu_id", result.get("entity_id", result.get("gpu_ids", "?")))
            info = result.get("info") or result.get("warnings") or ""
            failed.append(f"{test} (GPU {gpu}){': ' + str(info)[:120] if info else ''}")
    metrics = {f"diag_{k}": v for k, v in counts.items()}
    if failed:
        return Outcome("fail", f"dcgmi diag -r {level}: " + "; ".join(failed[:5]), metrics)
    if counts["pass"] == 0 and rc != 0:
        return Outcome("fail", f"dcgmi diag -r {level} exited {rc} with no passing test",
                       metrics)
    return Outcome("pass", f"dcgmi diag -r {level}: {counts['pass']} passed, "
                           f"{counts['skip']} skipped, {counts['warn']} warnings", metrics)


def _diag_results(node: Any, test: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every result record in a `dcgmi diag -j` document, with its test's name (tolerant of
    the layout changes between DCGM releases)."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        name = str(node.get("name") or node.get("test_name") or test)
        if "status" in node and ("gpu_id" in node or "entity_id" in node or "gpu_ids" in node
                                 or "info" in node):
            found.append((name, node))
        for value in node.values():
            found += _diag_results(value, name)
    elif isinstance(node, list):
        for item in node:
            found += _diag_results(item, test)
    return found


def gpu_burn(seconds: int, command: str = "gpu_burn") -> Outcome:
    binary = shutil.which(command)
    if binary is None:
        return Outcome("skipped", f"skipped: {command} not installed")
    rc, out, err = _run([binary, str(seconds)], seconds + 120)
    text = out + err
    if rc != 0 or "FAULTY" in text:
        faulty = [line.strip() for line in text.splitlines() if "FAULTY" in line]
        return Outcome("fail", f"{command} {seconds}s: " + ("; ".join(faulty[:4]) or
                                                            f"exit {rc}"))
    return Outcome("pass", f"{command} ran {seconds} s with no faulty GPU")


def nccl_all_reduce(gpus: int, min_bus_gbps: float | None,
                    command: str = "all_reduce_perf") -> Outcome:
    binary = shutil.which(command)
    if binary is None:
        return Outcome("skipped", f"skipped: {command} (nccl-tests) not installed")
    rc, out, err = _run([binary, "-b", "8", "-e", "1G", "-f", "2", "-g", str(gpus)], 900)
    match = _BUS_BW.search(out)
    if rc != 0 or match is None:
        tail = (err or out).strip().splitlines()
        return Outcome("fail", f"{command} failed (exit {rc}): {tail[-1] if tail else ''}")
    bandwidth = float(match.group(1))
    metrics = {"bus_bandwidth_gbps": bandwidth}
    if min_bus_gbps is not None and bandwidth < min_bus_gbps:
        return Outcome("fail", f"all-reduce bus bandwidth {bandwidth:g} GB/s is below "
                               f"{min_bus_gbps:g} GB/s", metrics)
    return Outcome("pass", f"all-reduce bus bandwidth {bandwidth:g} GB/s", metrics)
