"""Follow the kernel log for Xid/SXid lines: /dev/kmsg from its current end, or, where that
cannot be read, the first of kern.log / messages / syslog, across rotation.

A background thread reads new lines every 0.1 s and hands each Xid/SXid event to a
callback (the NVML backend maps its PCI bus id to a GPU); anything else is ignored.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from navarch.health.kernel_log import KernelLogEvent, LineParser

log = logging.getLogger(__name__)

KMSG = "/dev/kmsg"
LOG_FILES = ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")
POLL_SECONDS = 0.1
_READ = 65536


class LineSource(Protocol):
    name: str

    def read_lines(self) -> list[str]: ...

    def close(self) -> None: ...


class KmsgSource:
    """/dev/kmsg, non-blocking, from its current end. Each read returns one record; when the
    ring buffer overwrote records we had not read, the read fails with EPIPE and the next
    read continues with the oldest record still there."""

    def __init__(self, path: str = KMSG) -> None:
        self.name = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.overwritten = 0
        try:
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as exc:
            if exc.errno != errno.ESPIPE:  # a fifo in tests cannot seek; /dev/kmsg can
                raise
        self._partial = ""

    def read_lines(self) -> list[str]:
        lines: list[str] = []
        while True:
            try:
                chunk = os.read(self.fd, _READ)
            except BlockingIOError:
                break
            except BrokenPipeError:
                self.overwritten += 1
                continue
            if not chunk:
                break
            text = self._partial + chunk.decode("utf-8", errors="replace")
            *complete, self._partial = text.split("\n")
            lines += [line for line in complete if line and not line.startswith(" ")]
        return lines

    def close(self) -> None:
        os.close(self.fd)


class FileSource:
    """A log file followed from its end; reopened from the start after rotation."""

    def __init__(self, path: str) -> None:
        self.name = path
        self._fh = open(path, "rb")  # noqa: SIM115 - kept open while following
        self._fh.seek(0, os.SEEK_END)
        self._inode = os.fstat(self._fh.fileno()).st_ino
        self._partial = b""

    def _rotated(self) -> bool:
        try:
            st = os.stat(self.name)
        except FileNotFoundError:
            return False  # rotated away, new file not there yet: keep reading the old one
        return st.st_ino != self._inode or st.st_size < self._fh.tell()

    def read_lines(self) -> list[str]:
        data = self._fh.read()
        if not data and self._rotated():
            self._fh.close()
            self._fh = open(self.name, "rb")  # noqa: SIM115
            self._inode = os.fstat(self._fh.fileno()).st_ino
            self._partial = b""
            data = self._fh.read()
        if not data:
            return []
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in complete if line]

    def close(self) -> None:
        self._fh.close()


def open_kernel_log(kmsg: str = KMSG, files: Sequence[str] = LOG_FILES) -> LineSource | None:
    """The best kernel-log source this host offers, or None."""
    try:
        return KmsgSource(kmsg)
    except OSError as exc:
        log.info("cannot read %s (%s); trying log files", kmsg, exc.strerror)
    for path in files:
        try:
            return FileSource(path)
        except OSError:
            continue
    return None


def open_path(path: str) -> LineSource:
    """Follow this path: a character device or fifo as /dev/kmsg (one record per read), a
    regular file as a log file. Raises OSError."""
    mode = os.stat(path).st_mode
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return KmsgSource(path)
    return FileSource(path)


class KernelLogWatcher:
    def __init__(self, source: LineSource, on_event: Callable[[KernelLogEvent], None], *,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.source = source
        self.on_event = on_event
        self.poll_seconds = poll_seconds
        self.lines_read = 0
        self.events_found = 0
        self._parser = LineParser()  # some reports span lines
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kernel-log", daemon=True)

    def start(self) -> KernelLogWatcher:
        self._thread.start()
        return self

    def poll_once(self) -> None:
        for line in self.source.read_lines():
            self.lines_read += 1
            event = self._parser.feed(line)
            if event is not None:
                self.events_found += 1
                self.on_event(event)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a bad read must not end the watch; say so and go on
                log.exception("reading %s failed", self.source.name)
            self._stop.wait(self.poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.source.close()
