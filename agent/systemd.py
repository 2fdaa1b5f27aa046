"""Whether a systemd unit is active (nvidia-fabricmanager, nvidia-persistenced, ...)."""

from __future__ import annotations

import shutil
import subprocess

from navarch.contracts.agent import CheckResult


def service_active(unit: str) -> CheckResult:
    name = f"service:{unit}"
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return CheckResult(name=name, status="skipped", detail="systemctl not found")
    try:
        result = subprocess.run([systemctl, "is-active", unit], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult(name=name, status="fail", detail=f"systemctl failed: {exc}")
    state = result.stdout.strip() or result.stderr.strip()
    return CheckResult(name=name, status="pass" if state == "active" else "fail", detail=state)
