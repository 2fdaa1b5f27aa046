"""Follow the kernel log for Xid/SXid lines: /dev/kmsg from its current end, or, where that
cannot be read, the first of kern.log / messages / syslog, across rotation.

A background thread hands each Xid/SXid event to a callback (the backend maps its PCI bus
id to a GPU and wakes the health watch); anything else is ignored. On /dev/kmsg (or a fifo
standing in for it) the thread sleeps in poll(2) until the kernel writes a record, so a
line is read the moment it is written and an idle host costs no wake-ups; a log file is
read every 0.1 s, since a regular file always polls readable.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import stat
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from navarch.health.kernel_log import KernelLogEvent, LineParser

log = logging.getLogger(__name__)

KMSG = "/dev/kmsg"
LOG_FILES = ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")
POLL_SECONDS = 0.1
# A reader blocked on /dev/kmsg also wakes this often (its only idle wake-up).
IDLE_WAKE_SECONDS = 5.0
_READ = 65536


class LineSource(Protocol):
    name: str
    # The fd to wait on with poll(2) for new lines, or None: read every POLL_SECONDS.
    pollable_fd: int | None

    def read_lines(self) -> list[str]: ...

    def close(self) -> None: ...


class KmsgSource:
    """/dev/kmsg, non-blocking, from its current end. Each read returns one record; when the
    ring buffer overwrote records we had not read, the read fails with EPIPE and the next
    read continues with the oldest record still there."""

    def __init__(self, path: str = KMSG) -> None:
        self.name = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.pollable_fd: int | None = self.fd
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
        self.pollable_fd: int | None = None
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
        self._wake_read, self._wake_write = os.pipe()  # stop() wakes a reader in poll(2)
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
        wait = self._poller() if self.source.pollable_fd is not None else None
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a bad read must not end the watch; say so and go on
                log.exception("reading %s failed", self.source.name)
            if wait is None:
                self._stop.wait(self.poll_seconds)
            else:
                wait()

    def _poller(self) -> Callable[[], None]:
        """Sleep until the source has a record (or an overwrite to report), or stop()."""
        fd = self.source.pollable_fd
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        poller.register(self._wake_read, select.POLLIN)

        def wait() -> None:
            ready = dict(poller.poll(IDLE_WAKE_SECONDS * 1000))
            if ready.get(fd, 0) & ~(select.POLLIN | select.POLLPRI):
                # Hung up or in error with nothing to read (a fifo whose writer went):
                # poll would return at once forever, so fall back to reading on a timer.
                self._stop.wait(self.poll_seconds)
        return wait

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.source.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
