"""Remedies: what fixes a fault most cheaply, as the repair ladder's rungs.

    reset    reset the GPU (or every GPU of an NVSwitch machine together), on the host
    reboot   restart the machine, through the cloud's API (or the agent's `systemctl reboot`)
    replace  terminate the machine and provision a new one

A verdict's first rung comes from the rule that judged it (`remedy:` in a policy rule), else
from NVIDIA's immediate action for its Xid (the catalog), else `replace`. Faults no reset or
reboot heals go straight to replacement: a GPU fallen off the bus, a failed row remap, an
ECC error that escaped containment, Xids that NVIDIA sends to support or to a mechanical
check.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from navarch.health.events import EventType, HealthEvent
from navarch.health.xid import lookup
from navarch.validation import StrictModel

Rung = Literal["reset", "reboot", "replace"]
RUNGS: tuple[Rung, ...] = ("reset", "reboot", "replace")  # cheapest first

# NVIDIA's immediate actions, by the rung that carries them out.
_RESET_ACTIONS = {"RESET_GPU", "WORKFLOW_XID_48", "WORKFLOW_NVLINK_ERR", "WORKFLOW_NVLINK5_ERR"}
_REBOOT_ACTIONS = {"RESTART_BM", "RESTART_VM"}
# Hardware: whatever the catalog's first action, a reset or reboot does not bring these
# back for long (79 fallen off the bus, 64 a row remap that failed, 140 an uncorrectable
# ECC error that escaped retirement and remapping).
HARDWARE_XIDS = frozenset({79, 64, 140})
_XID_154_ACTION = re.compile(r"\((GPU Reset Required|Node Reboot Required|Drain and Reset)")


class Attempts(StrictModel):
    """How often a rung may be tried for one fault class on one node within the pool's
    `remediation_window` before the ladder moves up (GPUd's rule: two reboots, then the
    hardware is looked at)."""

    reset: int = Field(default=1, ge=1, le=10)
    reboot: int = Field(default=2, ge=1, le=10)

    def of(self, rung: Rung) -> int:
        return self.reset if rung == "reset" else self.reboot if rung == "reboot" else 1


class Remedy(StrictModel):
    """What a verdict asks for: the first rung, the fault class the escalation counts, the
    GPUs involved (empty: the whole node) and the rule's attempt limits."""

    rung: Rung = "replace"
    fault: str = ""  # e.g. "xid 119", "sxid 12028", or the rule's name
    gpus: list[int] = Field(default_factory=list)
    attempts: Attempts = Field(default_factory=Attempts)


def catalog_rung(code: int, message: str = "") -> Rung:
    """The rung NVIDIA's immediate action for an Xid calls for."""
    if code in HARDWARE_XIDS:
        return "replace"
    if code == 154:
        found = _XID_154_ACTION.search(message)
        if found is not None:
            return "reboot" if found.group(1) == "Node Reboot Required" else "reset"
        return "replace"
    info = lookup(code)
    if info is None:
        return "replace"
    if info.nvidia_action in _RESET_ACTIONS:
        return "reset"
    if info.nvidia_action in _REBOOT_ACTIONS:
        return "reboot"
    return "replace"


def fault_class(rule: str | None, event: HealthEvent | None) -> str:
    """What counts as "the same fault" for escalation: the Xid or SXid code, else the rule."""
    if event is not None:
        for kind, key in (("xid", "xid_code"), ("sxid", "sxid_code")):
            code = event.metrics.get(key)
            if isinstance(code, int) and not isinstance(code, bool):
                return f"{kind} {code}"
    return rule or "unhealthy"


def remedy_for(remedy: Rung | None, attempts: Attempts | None, rule: str | None,
               event: HealthEvent | None) -> Remedy:
    """The remedy for an event a rule judged unhealthy: the rule's own `remedy`, else the
    catalog's for an Xid, else replace."""
    rung: Rung = "replace"
    if remedy is not None:
        rung = remedy
    elif event is not None and event.event_type is EventType.XID:
        code = event.metrics.get("xid_code")
        if isinstance(code, int) and not isinstance(code, bool):
            rung = catalog_rung(code, event.message)
    gpus = [event.gpu_index] if event is not None and event.gpu_index >= 0 else []
    return Remedy(rung=rung, fault=fault_class(rule, event), gpus=gpus,
                  attempts=attempts or Attempts())
