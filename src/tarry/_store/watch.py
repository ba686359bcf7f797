"""A thread that tells a store when a file was written: inotify on Linux, else a stat every few ms.

The SQLite store watches its write-ahead log so that a worker notices, within
milliseconds, a commit made by another process (see ``SQLiteStore.watch``).
With inotify the thread sleeps in the kernel until the log's folder reports
a write to the log, and costs nothing while nobody writes. Where inotify is
missing (not Linux, or the limit of instances reached) the thread compares
the log's modification time and size every ``STAT_EVERY_S``.

A write to the log comes before its commit is visible: the writer appends its
frames, syncs them, then publishes the commit in the shared index (memory,
which reports nothing). So after a write the thread ``look``s at once and
then again at growing intervals, until the look says the commit was seen or
``SETTLE_S`` passed without another write. Either way this is a hint only:
the worker's poll stays the guarantee.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tarry.store")

#: how often the stat fallback looks at the file
STAT_EVERY_S = 0.01
#: after a write: the first look again, how much longer each next waits, and when to stop looking
FIRST_AGAIN_S = 0.001
AGAIN_GROWTH = 1.5
SETTLE_S = 0.5  # by then the poll (0.5 s) is as quick
#: the shortest time between two looks: a burst of writes (this process's own, under load) costs one
#: look per gap, not one per write
MIN_GAP_S = 0.002
#: whether to use inotify where the C library has it (tests turn it off to run the fallback)
USE_INOTIFY = sys.platform.startswith("linux")

_IN_MODIFY, _IN_MOVED_TO, _IN_CREATE, _IN_Q_OVERFLOW = 0x2, 0x80, 0x100, 0x4000
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, 0o2000000
_EVENT = struct.Struct("iIII")  # struct inotify_event, before its name


class FileWatch:
    """Calls ``look`` (on its own daemon thread) soon after ``path`` was written, and again at growing
    intervals until it returns True (what the write was waiting for was seen), until ``close``."""

    def __init__(self, path: str, look: Callable[[], bool]) -> None:
        self.path = path
        self._look = look
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # written by close: ends the inotify thread's poll
        self._inotify = _inotify(os.path.dirname(path) or ".") if USE_INOTIFY else None
        self._due: float | None = None  # when to look next (monotonic), if a write is being followed
        self._again = FIRST_AGAIN_S
        self._last_write = 0.0
        self._last_look = 0.0
        target = self._notified if self._inotify is not None else self._stat_loop
        self._thread = threading.Thread(target=target, name="tarry-sqlite-watch", daemon=True)
        self._thread.start()

    @property
    def kind(self) -> str:
        """``inotify`` or ``stat``: how the thread learns of writes."""
        return "inotify" if self._inotify is not None else "stat"

    def close(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(5)
        for fd in (self._inotify, self._wake_r, self._wake_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- following a write -------------------------------------------------------

    def _written(self, now: float) -> None:
        self._last_write = now
        self._again = FIRST_AGAIN_S
        self._due = max(now, self._last_look + MIN_GAP_S)

    def _wait(self, now: float, most: float | None) -> float | None:
        """Seconds to wait for the next write before a look is due (None: no look is)."""
        until = None if self._due is None else max(0.0, self._due - now)
        return most if until is None else until if most is None else min(most, until)

    def _follow(self, now: float) -> None:
        """Look if a look is due; plan the next, or stop following once seen or settled."""
        if self._due is None or now < self._due:
            return
        try:
            seen = self._look()
        except Exception:  # a hint only: the poll still finds the work
            log.debug("the watch of %s failed to look", self.path, exc_info=True)
            seen = False
        self._last_look = now = time.monotonic()
        if seen or now - self._last_write > SETTLE_S:
            self._due = None
            return
        self._due = now + max(self._again, MIN_GAP_S)
        self._again *= AGAIN_GROWTH

    # -- the two ways to learn of writes -------------------------------------

    def _notified(self) -> None:
        assert self._inotify is not None
        name = os.fsencode(os.path.basename(self.path))
        poller = select.poll()
        poller.register(self._inotify, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stopping.is_set():
            wait = self._wait(time.monotonic(), None)
            try:
                ready = poller.poll(None if wait is None else wait * 1000)
                if self._stopping.is_set():
                    return
                if ready and _names(os.read(self._inotify, 65536), name):
                    self._written(time.monotonic())
            except BlockingIOError:
                pass
            except OSError:
                log.debug("the inotify watch of %s failed; the worker's poll goes on", self.path, exc_info=True)
                return
            self._follow(time.monotonic())

    def _stat_loop(self) -> None:
        seen = _stat(self.path)
        while not self._stopping.is_set():
            time.sleep(self._wait(time.monotonic(), STAT_EVERY_S) or 0.0)  # cheaper than an Event's wait
            now = _stat(self.path)
            if now != seen:
                seen = now
                self._written(time.monotonic())
            self._follow(time.monotonic())


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _names(data: bytes, name: bytes) -> bool:
    """Whether the inotify events in ``data`` name the file (or overflowed: anything may have changed)."""
    offset = 0
    while offset + _EVENT.size <= len(data):
        _, mask, _, size = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        if mask & _IN_Q_OVERFLOW or data[offset : offset + size].rstrip(b"\0") == name:
            return True
        offset += size
    return False


def _inotify(folder: str) -> int | None:
    """An inotify descriptor watching ``folder`` for writes to its files; None where that cannot be had."""
    libc = _libc()
    if libc is None:
        return None
    fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    if fd < 0:
        log.debug("inotify_init1 failed (%s); watching %s by stat", os.strerror(ctypes.get_errno()), folder)
        return None
    if libc.inotify_add_watch(fd, os.fsencode(folder), _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO) < 0:
        log.debug("inotify_add_watch failed (%s); watching %s by stat", os.strerror(ctypes.get_errno()), folder)
        os.close(fd)
        return None
    return fd


_LIBC: list[ctypes.CDLL | None] = []


def _libc() -> ctypes.CDLL | None:
    if not _LIBC:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            _LIBC.append(libc)
        except (OSError, AttributeError):
            _LIBC.append(None)
    return _LIBC[0]
