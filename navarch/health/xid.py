"""The Xid dictionary: every code in NVIDIA's published catalog, with what Navarch does.

Facts (code, mnemonic, category, NVIDIA's immediate action, fatal yes/no/conditional) come
from the catalog; the summaries are Navarch's own. Built by tools/build_xid_catalog.py.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Verdict = Literal["unhealthy", "degraded", "conditional"]

NVIDIA_ACTIONS = {
    "RESTART_APP": "restart the application",
    "IGNORE": "no action needed",
    "RESET_GPU": "reset the GPU (reboot the node if the reset fails)",
    "RESTART_BM": "reboot the node",
    "RESTART_VM": "restart the VM",
    "CONTACT_SUPPORT": "contact NVIDIA support",
    "CHECK_MECHANICALS": "check the board's power cabling",
    "UPDATE_SWFW": "update the driver / firmware",
    "CHECK_UVM": "check the application's unified-memory use",
    "WORKFLOW_XID_45": "follow the accompanying Xid; alone, restart Fabric Manager",
    "WORKFLOW_XID_48": "reset the GPU so the row is remapped; run field diagnostics if no "
    "Xid 63/64 follows",
    "WORKFLOW_NVLINK_ERR": "NVLink workflow: reset the GPU or reboot; check the remote end",
    "WORKFLOW_NVLINK5_ERR": "NVLink5 workflow: decode the subcode; fatal ones need a GPU reset",
    "XID_154": "follow the recovery action named in the message",
    "NONE_GIVEN": "none published",
}

NAVARCH_ACTIONS: dict[str, str] = {
    "unhealthy": "node judged unhealthy: cordon, drain, terminate and replace it",
    "degraded": "node marked degraded: recorded and shown, not replaced for this alone",
    "conditional": "depends on the message or the Xids next to it (see summary)",
}


@dataclass(frozen=True)
class XidInfo:
    code: int
    name: str
    category: str
    nvidia_action: str
    fatal: str
    verdict: Verdict
    summary: str

    @property
    def nvidia_action_text(self) -> str:
        return NVIDIA_ACTIONS.get(self.nvidia_action, self.nvidia_action.lower())

    @property
    def navarch_action(self) -> str:
        return NAVARCH_ACTIONS[self.verdict]

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "category": self.category,
            "nvidia_action": self.nvidia_action,
            "nvidia_action_text": self.nvidia_action_text,
            "fatal": self.fatal,
            "verdict": self.verdict,
            "navarch_action": self.navarch_action,
            "summary": self.summary,
        }


@cache
def catalog() -> dict[int, XidInfo]:
    text = resources.files("navarch.health").joinpath("data", "xid_catalog.csv").read_text("utf-8")
    out: dict[int, XidInfo] = {}
    for row in csv.DictReader(text.splitlines()):
        verdict = row["verdict"]
        assert verdict in ("unhealthy", "degraded", "conditional"), verdict
        info = XidInfo(
            code=int(row["code"]),
            name=row["name"],
            category=row["category"],
            nvidia_action=row["nvidia_action"],
            fatal=row["fatal"],
            verdict=verdict,  # type: ignore[arg-type]
            summary=row["summary"],
        )
        out[info.code] = info
    return out


def lookup(code: int) -> XidInfo | None:
    return catalog().get(code)


def unhealthy_codes() -> list[int]:
    """Codes whose NVIDIA action needs a GPU reset, a reboot or an operator workflow."""
    return sorted(c for c, info in catalog().items() if info.verdict == "unhealthy")
