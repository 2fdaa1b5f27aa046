"""Turn kernel-log lines into Xid / SXid events.

Understands every form of the lines drivers in the field print (a corpus of real ones, each
with its source, is in tests/fixtures/kernel-log-corpus.txt):

- `NVRM: Xid (PCI:0000:3b:00): 79, pid=..., name=..., <message>` and its variants (with or
  without pid/name, quoted or `<unknown>` pid), with or without the `PCI:` prefix (older
  drivers print the bus id bare), and on MIG GPUs with the GPU-instance and
  compute-instance ids in the parentheses (`GPU-I:05 GPU-C:00`);
- NVLink5 Xids 144-150, whose first intrinfo word carries the sub-code (bits 20-25) and
  whose second is the error status, with their `Fatal` / `Nonfatal` word;
- "fallen off the bus" reported without an Xid number, on one line
  (`NVRM: GPU 0000:3b:00.0: GPU has fallen off the bus.`) or over three (`NVRM: The NVIDIA
  GPU 0000:b3:00.0` ... `NVRM: fallen off the bus and is not responding to commands.`):
  read as Xid 79 (needs `LineParser`, which remembers the line before);
- NVSwitch `SXid (PCI:...): <code>, <Fatal|Non-fatal>, <message>`, with or without `PCI:`;
  the `Data {...}` and `Severity ...` lines that follow an SXid are its details, not new
  events;

and the prefixes they arrive with: dmesg `[  12.345]` and `[Mon Jan 15 10:30:00 2024]`,
`/dev/kmsg` records `pri,seq,usec,flags;`, syslog and journald `Jan 15 10:30:00 host
kernel:` / ISO-timestamp lines. Any other line is ignored: parsing never raises.
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
_MIG = r"(?P<mig>(?:\s+GPU-[IC]:\s*\d+)*)"
_XID = re.compile(
    r"NVRM: Xid \((?:PCI:)?" + _PCI + _MIG + r"\s*\): (?P<code>\d{1,5})(?:,|\b)\s*(?P<rest>.*)$"
)
_SXID = re.compile(
    r"SXid \((?:PCI:)?" + _PCI + r"\): (?P<code>\d{1,6})(?:,|\b)\s*(?P<rest>.*)$"
)
_SXID_DETAIL = re.compile(r"^(?:Data \{|Severity \d)")
_MIG_ID = re.compile(r"GPU-(?P<kind>[IC]):\s*(?P<id>\d+)")
# NVLink5 (Xid 144-150): "<UNIT> <Fatal|Nonfatal> XC0 i0 Link N (0x........ 0x........ ...)"
_NVLINK5 = range(144, 151)
_INTRINFO = re.compile(r"\((?P<info>0x[0-9A-Fa-f]{1,8})\s+(?P<status>0x[0-9A-Fa-f]{1,8})")
_NVLINK_SEVERITY = re.compile(r"\b(?P<sev>Nonfatal|Non-fatal|Fatal)\b")
# "fallen off the bus" without an Xid number: one line, or three that start with the GPU.
_FALLEN_ONE = re.compile(r"NVRM: GPU (?:at )?(?:PCI:)?" + _PCI + r":?\s.*fallen off the bus")
_FALLEN_START = re.compile(r"NVRM: The NVIDIA GPU (?:PCI:)?" + _PCI + r"\s*$")
_FALLEN_END = re.compile(r"NVRM: .*fallen off the bus")
FALLEN_OFF_THE_BUS = 79
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
    fatal: bool | None = None  # SXid and NVLink5 lines say Fatal / Non-fatal
    raw: str = ""
    subcode: int | None = None  # NVLink5 (Xid 144-150): from the intrinfo word
    error_status: int | None = None  # NVLink5: the word after it
    gpu_instance: int | None = None  # MIG: the GPU instance the error is in
    compute_instance: int | None = None

    @property
    def normalized_pci_bus_id(self) -> str:
        return normalize_pci_bus_id(self.pci_bus_id)

    def to_health_event(self, gpu_index: int = -1, gpu_uuid: str = "") -> HealthEvent:
        metrics: dict[str, bool | int | float | str] = {"pci_bus_id": self.normalized_pci_bus_id}
        if self.kind == "xid":
            metrics["xid_code"] = self.code
            event_type = EventType.XID
            for key, value in (("xid_subcode", self.subcode),
                               ("nvlink_error_status", self.error_status),
                               ("gpu_instance", self.gpu_instance),
                               ("compute_instance", self.compute_instance)):
                if value is not None:
                    metrics[key] = value
            if self.fatal is not None:
                metrics["fatal"] = self.fatal
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
            if self.subcode is not None:
                out["subcode"], out["error_status"] = self.subcode, self.error_status
                out["fatal"] = self.fatal
            if self.gpu_instance is not None:
                out["gpu_instance"] = self.gpu_instance
                out["compute_instance"] = self.compute_instance
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
    if not isinstance(line, str):
        return None
    text = line[:_MAX_LINE].rstrip("\r\n")
    if "Xid" not in text:
        fallen = _FALLEN_ONE.search(text)
        return _fallen(fallen.group("pci"), text) if fallen else None
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
        if _SXID_DETAIL.match(rest):
            return None  # the details of the SXid line just before
        sm = _SEVERITY.match(rest)
        if sm:
            fatal = sm.group("sev").lower() == "fatal"
            rest = rest[sm.end():]
    subcode = status = None
    if kind == "xid" and code in _NVLINK5:
        info = _INTRINFO.search(rest)
        if info:
            subcode = (int(info.group("info"), 16) >> 20) & 0x3F
            status = int(info.group("status"), 16)
        sev = _NVLINK_SEVERITY.search(rest)
        if sev:
            fatal = sev.group("sev") == "Fatal"
    mig = {g.group("kind"): int(g.group("id"))
           for g in _MIG_ID.finditer(m.groupdict().get("mig") or "")}
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
        subcode=subcode,
        error_status=status,
        gpu_instance=mig.get("I"),
        compute_instance=mig.get("C"),
    )


def _fallen(pci: str, text: str) -> KernelLogEvent:
    return KernelLogEvent(kind="xid", code=FALLEN_OFF_THE_BUS, pci_bus_id=pci,
                          message="GPU has fallen off the bus (reported without an Xid)",
                          raw=_strip_prefix(text))


class LineParser:
    """Parse lines in order, for the forms that span lines: the three-line "fallen off the
    bus" report names its GPU on the first line and says what happened on the third."""

    WINDOW = 4  # lines after "The NVIDIA GPU ..." that may carry "fallen off the bus"

    def __init__(self) -> None:
        self._gpu: str | None = None
        self._left = 0

    def feed(self, line: str) -> KernelLogEvent | None:
        event = parse_line(line)
        if event is not None or not isinstance(line, str):
            return event
        try:
            text = _strip_prefix(line[:_MAX_LINE].rstrip("\r\n"))
            start = _FALLEN_START.search(text)
            if start:
                self._gpu, self._left = start.group("pci"), self.WINDOW
                return None
            if self._gpu is not None and self._left > 0:
                self._left -= 1
                if _FALLEN_END.search(text):
                    gpu, self._gpu = self._gpu, None
                    return _fallen(gpu, f"NVRM: The NVIDIA GPU {gpu} ... {text}")
        except Exception:
            return None
        return None


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
    parser = LineParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
