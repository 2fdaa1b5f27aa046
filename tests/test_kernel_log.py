"""Kernel-log lines in every shape they arrive in; anything else is ignored, never raised."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from navarch.health.events import EventType
from navarch.health.kernel_log import LineParser, normalize_pci_bus_id, parse_line, scan

XID79 = "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python3, GPU has fallen off the bus."


@pytest.mark.parametrize(
    "line",
    [
        XID79,
        "[ 1234.567890] " + XID79,
        "[Mon Jan 15 10:30:00 2024] " + XID79,
        "4,1234,5678901234,-;" + XID79,
        "Jan 15 10:30:00 gpu-host-7 kernel: [ 1234.5] " + XID79,
        "2024-01-15T10:30:00.123456+00:00 gpu-host-7 kernel: " + XID79,
    ],
)
def test_xid_line_with_any_prefix(line):
    event = parse_line(line)
    assert event is not None
    assert (event.kind, event.code, event.pid, event.process_name) == ("xid", 79, 1234, "python3")
    assert event.pci_bus_id == "0000:3b:00"
    assert event.normalized_pci_bus_id == "0000:3b:00.0"
    assert event.message == "GPU has fallen off the bus"
    assert event.raw == XID79


@pytest.mark.parametrize(
    ("line", "code", "pid", "name", "message"),
    [
        ("NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.", 79, None, None,
         "GPU has fallen off the bus"),
        ("NVRM: Xid (PCI:0000:17:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off "
         "the bus.", 79, None, None, "GPU has fallen off the bus"),
        ("NVRM: Xid (PCI:0000:b3:00): 13, pid=2211, name=train.py, Graphics SM Warp Exception on "
         "(GPC 0, TPC 1, SM 0): Out Of Range Address", 13, 2211, "train.py",
         "Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address"),
        ("NVRM: Xid (PCI:00000000:4E:00.0): 48, pid=77, name=worker, An uncorrectable double bit "
         "error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0.",
         48, 77, "worker", None),
        ("NVRM: Xid (PCI:0000:3b:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 "
         "(GPU Reset Required)", 154, None, None,
         "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)"),
        ("NVRM: Xid (PCI:0000:3b:00): 31", 31, None, None, ""),
    ],
)
def test_xid_variants(line, code, pid, name, message):
    event = parse_line(line)
    assert event is not None
    assert (event.code, event.pid, event.process_name) == (code, pid, name)
    if message is not None:
        assert event.message == message


def test_sxid_lines_become_nvswitch_events():
    fatal = parse_line("[ 55.1] nvidia-nvswitch3: SXid (PCI:0000:c5:00.0): 20034, Fatal, Link 30 "
                       "LTSSM Fault Up")
    nonfatal = parse_line("nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 32 "
                          "egress non-posted PRIV error (First)")
    assert fatal is not None and nonfatal is not None
    assert (fatal.kind, fatal.code, fatal.fatal) == ("sxid", 20034, True)
    assert (nonfatal.code, nonfatal.fatal) == (12028, False)
    event = fatal.to_health_event()
    assert event.event_type is EventType.SXID
    assert event.metrics == {"pci_bus_id": "0000:c5:00.0", "sxid_code": 20034, "fatal": True}


def test_health_event_carries_code_pci_and_process():
    event = parse_line(XID79).to_health_event(gpu_index=2, gpu_uuid="GPU-abc")  # type: ignore[union-attr]
    assert event.event_type is EventType.XID and event.gpu_index == 2
    assert event.metrics == {"pci_bus_id": "0000:3b:00.0", "xid_code": 79, "pid": 1234,
                             "process_name": "python3"}
    assert event.message == XID79


@pytest.mark.parametrize(
    "line",
    [
        "",
        "random kernel line",
        "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.54.15",
        "NVRM: Xid (PCI:zzzz): 79, nope",
        "NVRM: Xid (PCI:0000:3b:00): , missing code",
        "NVRM: Xid (PCI:0000:3b:00): 0, zero is not a code",
        "Xid",
        "\x00\xff NVRM: Xid (",
    ],
)
def test_other_lines_are_ignored(line):
    assert parse_line(line) is None


def test_scan_finds_events_in_a_saved_dmesg():
    text = "\n".join([
        "[    0.000000] Linux version 6.5.0",
        "[  100.1] " + XID79,
        "[  100.2] NVRM: GPU at PCI:0000:3b:00: GPU-1234",
        "[  200.0] nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 12028, Non-fatal, Link 3 error",
    ])
    events = list(scan(text.splitlines()))
    assert [(e.kind, e.code) for e in events] == [("xid", 79), ("sxid", 12028)]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("0000:3b:00", "0000:3b:00.0"), ("00000000:3B:00.0", "0000:3b:00.0"),
     ("3b:00.1", "0000:3b:00.1")],
)
def test_pci_bus_id_normalization(raw, normalized):
    assert normalize_pci_bus_id(raw) == normalized


_fragments = st.sampled_from([
    "NVRM: Xid (PCI:", "0000:3b:00", "): ", "79", ", ", "pid=", "'<unknown>'", "name=",
    "<unknown>", "SXid (PCI:", "Fatal", "Non-fatal", "[ 12.3] ", "4,1,2,-;", "\n", "\x00",
    "kernel: ", "GPU has fallen off the bus.", "-1", "99999999999999999999",
])


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_fuzz_arbitrary_text_never_raises(text):
    event = parse_line(text)
    if event is not None:
        event.to_health_event()
        event.to_dict()


@settings(max_examples=400, deadline=None)
@given(st.lists(_fragments | st.text(max_size=5), max_size=14).map("".join))
def test_fuzz_near_miss_lines_never_raise(text):
    event = parse_line(text)
    if event is not None:
        assert event.code > 0
        event.to_health_event()
        event.to_dict()


def test_non_string_input_is_ignored():
    assert parse_line(b"NVRM: Xid (PCI:0000:3b:00): 79, x")  is None  # type: ignore[arg-type]


CORPUS = yaml.safe_load((Path(__file__).parent / "fixtures" / "kernel-log-corpus.yaml")
                        .read_text())


@pytest.mark.parametrize("entry", CORPUS, ids=lambda e: e["source"].split("github.com/")[-1])
def test_every_line_in_the_field_corpus_reads_right(entry):
    parser = LineParser()
    found = [e for e in (parser.feed(line) for line in entry["lines"]) if e is not None]
    assert len(found) == len(entry["events"]), [e.to_dict() for e in found]
    for event, want in zip(found, entry["events"], strict=True):
        assert (event.kind, event.code, event.normalized_pci_bus_id) == (
            want["kind"], want["code"], want["pci"])
        for key, attr in (("pid", "pid"), ("process", "process_name"), ("subcode", "subcode"),
                          ("error_status", "error_status"), ("fatal", "fatal")):
            if key in want:
                assert getattr(event, attr) == want[key], (key, event)
    assert list(scan(entry["lines"])) == found  # `navarch xid scan` reads them the same


# Forms the drivers print for which no public line was found to quote: written here from
# the forms' descriptions (older drivers' bare bus id, MIG ids in the parentheses, SXid
# without the prefix, the one-line "fallen off the bus" of older drivers).
CONSTRUCTED = [
    ("NVRM: Xid (0000:3b:00): 79, pid=1, name=x, GPU has fallen off the bus.", "xid", 79,
     "0000:3b:00.0", {}),
    ("NVRM: Xid (PCI:0000:c1:00 GPU-I:05 GPU-C:00): 43, pid=9, name=python3, Ch 00000008",
     "xid", 43, "0000:c1:00.0", {"gpu_instance": 5, "compute_instance": 0}),
    ("NVRM: Xid (PCI:0000:c1:00 GPU-I:02): 31, pid=9, name=python3, MMU Fault", "xid", 31,
     "0000:c1:00.0", {"gpu_instance": 2, "compute_instance": None}),
    ("nvidia-nvswitch0: SXid (0000:0a:00.0): 12028, Non-fatal, Link 32 egress non-posted PRIV",
     "sxid", 12028, "0000:0a:00.0", {"fatal": False}),
    ("[  51.2] NVRM: GPU 0000:3b:00.0: GPU has fallen off the bus.", "xid", 79, "0000:3b:00.0",
     {}),
    ("NVRM: GPU at PCI:0000:3b:00: GPU has fallen off the bus.", "xid", 79, "0000:3b:00.0", {}),
]


@pytest.mark.parametrize(("line", "kind", "code", "pci", "more"), CONSTRUCTED)
def test_the_forms_without_a_public_example(line, kind, code, pci, more):
    event = parse_line(line)
    assert event is not None
    assert (event.kind, event.code, event.normalized_pci_bus_id) == (kind, code, pci)
    for attr, value in more.items():
        assert getattr(event, attr) == value
    metrics = event.to_health_event(gpu_index=0).metrics
    if event.gpu_instance is not None:
        assert metrics["gpu_instance"] == event.gpu_instance


def test_the_three_line_report_needs_its_first_line_and_nothing_far_away():
    parser = LineParser()
    assert parser.feed("NVRM: fallen off the bus and is not responding to commands.") is None
    parser.feed("NVRM: The NVIDIA GPU 0000:b3:00.0")
    for _ in range(LineParser.WINDOW):
        parser.feed("unrelated")
    assert parser.feed("NVRM: fallen off the bus and is not responding to commands.") is None
