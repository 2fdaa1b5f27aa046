"""Following the kernel log: a kmsg-style record stream (fifo), log files across rotation,
and an Xid reaching the backend's events well within a second."""

from __future__ import annotations

import os
import time

from navarch.agent.fake_backend import FakeGpuBackend
from navarch.agent.kernel_log_follower import (
    FileSource,
    KernelLogWatcher,
    KmsgSource,
    open_kernel_log,
    open_path,
)
from navarch.agent.nvml_backend import NvmlBackend
from navarch.health.events import EventType
from navarch.health.kernel_log import LineParser
from navarch.sim.fakeworld import FakeWorld

from fake_pynvml import FakeGpu, FakeNvml

XID = "NVRM: Xid (PCI:0000:19:00): 79, pid=1, name=x, GPU has fallen off the bus."


def test_kmsg_records_from_a_fifo(tmp_path):
    path = tmp_path / "kmsg"
    os.mkfifo(path)
    reader = KmsgSource(str(path))
    writer = os.open(path, os.O_WRONLY)
    try:
        assert reader.read_lines() == []
        os.write(writer, f"4,100,5000,-;{XID}\n SUBSYSTEM=pci\n".encode())
        os.write(writer, b"6,101,5001,-;usb 1-1: new device\n6,102,50")
        lines = reader.read_lines()
        assert lines == [f"4,100,5000,-;{XID}", "6,101,5001,-;usb 1-1: new device"]
        os.write(writer, b"02,-;tail of a record\n")
        assert reader.read_lines() == ["6,102,5002,-;tail of a record"]
    finally:
        os.close(writer)
        reader.close()


def test_file_follows_from_the_end_and_across_rotation(tmp_path):
    log = tmp_path / "kern.log"
    log.write_text("old line before we started\n")
    source = FileSource(str(log))
    assert source.read_lines() == []
    with log.open("a") as fh:
        fh.write(f"Jan 1 00:00:01 h kernel: {XID}\npartial")
    assert source.read_lines() == [f"Jan 1 00:00:01 h kernel: {XID}"]
    with log.open("a") as fh:
        fh.write(" line\n")
    assert source.read_lines() == ["partial line"]
    log.rename(tmp_path / "kern.log.1")
    log.write_text("first line of the new file\n")
    assert source.read_lines() == ["first line of the new file"]
    source.close()


def test_open_kernel_log_falls_back_to_files(tmp_path):
    missing = str(tmp_path / "no-kmsg")
    log = tmp_path / "messages"
    log.write_text("")
    source = open_kernel_log(missing, [str(tmp_path / "kern.log"), str(log)])
    assert source is not None and source.name == str(log)
    source.close()
    assert open_kernel_log(missing, [str(tmp_path / "nothing")]) is None


def test_an_xid_line_reaches_the_backend_within_a_second(tmp_path):
    log = tmp_path / "kern.log"
    log.write_text("")
    backend = NvmlBackend(FakeNvml([FakeGpu(), FakeGpu()]), watch_events=False)
    watcher = KernelLogWatcher(FileSource(str(log)), backend.record_kernel_event).start()
    try:
        with log.open("a") as fh:
            fh.write("garbage \x00 line\n" + f"[ 5.0] {XID}\n")
        written = time.monotonic()
        while not [e for e in backend.current_events() if e.event_type is EventType.XID]:
            assert time.monotonic() - written < 1.0, "Xid not seen within a second"
            time.sleep(0.01)
        xid = next(e for e in backend.current_events() if e.event_type is EventType.XID)
        assert xid.gpu_index == 1 and xid.metrics["xid_code"] == 79
        assert watcher.lines_read == 2 and watcher.events_found == 1
    finally:
        watcher.stop()


def test_open_path_reads_a_fifo_as_kmsg_and_a_file_as_a_log(tmp_path):
    fifo, log = tmp_path / "kmsg", tmp_path / "kern.log"
    os.mkfifo(fifo)
    log.write_text("")
    for path, kind in ((fifo, KmsgSource), (log, FileSource)):
        source = open_path(str(path))
        assert isinstance(source, kind)
        source.close()


def test_a_simulated_host_maps_a_kernel_log_xid_to_its_gpu(tmp_path):
    backend = FakeGpuBackend(FakeWorld(tmp_path / "world.db"), "n1", 8, "H100")
    event = LineParser().feed(XID.replace("0000:19:00", "0000:1b:00"))
    assert event is not None
    backend.record_kernel_event(event)
    [xid] = [e for e in backend.current_events() if e.event_type is EventType.XID]
    assert xid.gpu_index == 3 and xid.gpu_uuid == backend.inventory().gpus[3].uuid
    assert xid.metrics["xid_code"] == 79
