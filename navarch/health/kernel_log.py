"""Turn kernel-log lines into Xid / SXid events.

Understands `NVRM: Xid (PCI:0000:3b:00): 79, pid=..., name=..., <message>` and its variants
(with or without pid/name, quoted or `<unknown>` pid), NVSwitch `SXid (PCI:...): <code>,
<Fatal|Non-fatal>, <message>` lines, and the prefixes they arrive with: dmesg `[  12.345]`
and `[Mon Jan 15 10:30:00 2024]`, `/dev/kmsg` records `pri,seq,usec,flags;`, syslog and
journald `Jan 15 10:30:00 host kernel:` / ISO-timestamp lines. Any other line is ignored:
`parse_line` never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from navarch.health.events import EventType, HealthEvent
from navarch.health.xid import lookup

Kind = Literal["xid", "sxid"]

_PCI = r"(?P<pci>(?:[0-9A-Fa-f]{4,8}:)?[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}(?:\.[0-7])?)"
_XID = re.compile(
    r"NVRM: Xid \(PCI:" + _PCI + r"\): (?P<code>\d{1,5})(?:,|\b)\s*(?P<rest>.*)$"
)
_SXID = re.compile(
    r"SXid \(PCI:" + _PCI + r"\): (?P<code>\d{1,6})(?:,|\b)\s*(?P<rest>.*)$"
)
_PID = re.compile(r"^pid=(?P<q>['\"]?)(?P<pid><unknown>|\d+)(?P=q)\s*(?:,\s*|$)")
_NAME = re.compile(r"^name=(?P<name><unknown>|[^,]*?)\s*(?:,\s*|$)")
_SEVERITY = re.compile(r"^(?P<sev>Non-fatal|Fatal)\s*(?:,\s*|$)", re.IGNORECASE)
_MAX_LINE = 8192


@dataclass(frozen=True)
class KernelLogEvent:
    """One Xid or SXid line, with what it says."""

    kind: Kind
    code: int
    pci_bus_id: str
    message: str
    pid: int | None = None
    process_name: str | None = None
    fatal: bool | None = None  # SXid lines say Fatal / Non-fatal
    raw: str = ""

    @property
    def normalized_pci_bus_id(self) -> str:
        return normalize_pci_bus_id(self.pci_bus_id)

    def to_health_event(self, gpu_index: int = -1, gpu_uuid: str = "") -> HealthEvent:
        metrics: dict[str, bool | int | float | str] = {"pci_bus_id": self.normalized_pci_bus_id}
        if self.kind == "xid":
            metrics["xid_code"] = self.code
            event_type = EventType.XID
        else:
            metrics["sxid_code"] = self.code
            event_type = EventType.SXID
            if self.fatal is not None:
                metrics["fatal"] = self.fatal
        if self.pid is not None:
            metrics["pid"] = self.pid
        if self.process_name:
            metrics["process_name"] = self.process_name
        return HealthEvent(
            event_type=event_type,
            system="DCGM_HEALTH_WATCH_NVSWITCH_FATAL" if self.fatal
            else ("DCGM_HEALTH_WATCH_NVSWITCH_NONFATAL" if self.kind == "sxid" else ""),
            gpu_index=gpu_index,
            gpu_uuid=gpu_uuid,
            metrics=metrics,
            message=self.raw or self.message,
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind,
            "code": self.code,
            "pci_bus_id": self.normalized_pci_bus_id,
            "pid": self.pid,
            "process_name": self.process_name,
            "message": self.message,
        }
        if self.kind == "sxid":
            out["fatal"] = self.fatal
        else:
            info = lookup(self.code)
            out["name"] = info.name if info else None
            out["verdict"] = info.verdict if info else "unknown"
        return out


def normalize_pci_bus_id(pci: str) -> str:
    """`0000:3b:00`, `00000000:3B:00.0` -> `0000:3b:00.0` (the form NVML ids map onto)."""
    text = pci.strip().lower()
    parts = text.split(":")
    if len(parts) == 2:
        parts.insert(0, "0000")
    domain = parts[0][-4:].rjust(4, "0")
    bus = parts[1]
    device_fn = parts[2] if len(parts) > 2 else "00"
    if "." not in device_fn:
        device_fn += ".0"
    return f"{domain}:{bus}:{device_fn}"


def parse_line(line: str) -> KernelLogEvent | None:
    """Parse one line; return the event, or None for any line that is not an Xid/SXid."""
    try:
        return _parse(line)
    except Exception:  # a malformed line must never take the watcher down
        return None


def _parse(line: object) -> KernelLogEvent | None:
    if not isinstance(line, str) or "Xid" not in line:
        return None
    text = line[:_MAX_LINE].rstrip("\r\n")
    kind: Kind
    m = _XID.search(text)
    if m is not None:
        kind = "xid"
    else:
        m = _SXID.search(text)
        if m is None:
            return None
        kind = "sxid"
    code = int(m.group("code"))
    if code <= 0:
        return None
    rest = m.group("rest").strip()
    pid: int | None = None
    name: str | None = None
    fatal: bool | None = None
    if kind == "xid":
        pm = _PID.match(rest)
        if pm:
            pid = None if pm.group("pid") == "<unknown>" else int(pm.group("pid"))
            rest = rest[pm.end():]
        nm = _NAME.match(rest)
        if nm:
            raw_name = nm.group("name").strip()
            name = None if raw_name in ("", "<unknown>") else raw_name
            rest = rest[nm.end():]
    else:
        sm = _SEVERITY.match(rest)
        if sm:
            fatal = sm.group("sev").lower() == "fatal"
            rest = rest[sm.end():]
    message = rest.strip().rstrip(".").strip() if rest.strip() else ""
    return KernelLogEvent(
        kind=kind,
        code=code,
        pci_bus_id=m.group("pci"),
        message=message,
        pid=pid,
        process_name=name,
        fatal=fatal,
        raw=_strip_prefix(text),
    )


_PREFIXES = (
    re.compile(r"^\d+,\d+,\d+,[^;]*;"),  # /dev/kmsg record header
    # ISO-timestamp syslog / journald: "2024-01-15T10:30:00+00:00 host kernel:"
    re.compile(r"^\S+\s+\S+\s+kernel:\s*"),
    # classic syslog / journalctl -k: "Jan 15 10:30:00 host kernel:"
    re.compile(r"^[A-Z][a-z]{2}\s+\d+\s+[\d:]+\s+\S+\s+kernel:\s*"),
    re.compile(r"^\[[^\]]*\]\s*"),  # dmesg "[ 123.456]" or "[Mon Jan 15 ...]"
)


def _strip_prefix(text: str) -> str:
    for pattern in _PREFIXES:
        text = pattern.sub("", text, count=1)
    return text.strip()


def scan(lines: Iterable[str]) -> Iterator[KernelLogEvent]:
    """Every Xid/SXid event in a stream of lines (a saved dmesg, kern.log, journalctl -k)."""
    for line in lines:
        event = parse_line(line)
        if event is not None:
            yield event
