"""SIGTERM, SIGINT and SIGHUP handled on a thread of their own, not on the ingest thread.

Python runs a signal handler on the main thread between two bytecodes, and the main thread is the
ingest loop: while it sits in a C call (SQLite waiting out its busy timeout on a locked file, a
long commit) the handler waits too, and `daemon.stop_timeout_s` was not even armed. The C-level
handler writes each signal's number to a wakeup socket (`signal.set_wakeup_fd`) at once, whatever
the main thread is doing; a thread reads it and asks the daemon to stop (or reload).
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import structlog

log = structlog.get_logger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalThread:
    """Install the handlers (from the main thread) and call `on_stop` / `on_hangup` from a
    thread of its own when the signals arrive."""

    def __init__(self, on_stop: Callable[[], None], on_hangup: Callable[[], None]) -> None:
        self._on_stop = on_stop
        self._on_hangup = on_hangup
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)  # the C handler must never block on a full socket
        self._thread = threading.Thread(target=self._run, name="signals", daemon=True)
        self._previous_fd = -1

    def start(self) -> None:
        """Must run on the main thread (Python's rule for `signal.signal`)."""
        for signum in (*STOP_SIGNALS, signal.SIGHUP):
            # The Python-level handler has nothing left to do (it would run late, on the main
            # thread); installing it keeps the default action (terminate at once) away.
            signal.signal(signum, _ignore)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._thread.start()

    def stop(self) -> None:
        """Put the wakeup fd back and let the thread end (main thread, after the daemon ran)."""
        signal.set_wakeup_fd(self._previous_fd)
        self._writer.close()
        self._thread.join(timeout=1.0)
        self._reader.close()

    def _run(self) -> None:
        while True:
            try:
                received = self._reader.recv(64)
            except OSError:
                return
            if not received:
                return  # the writer was closed: `stop()`
            for signum in received:
                if signum in STOP_SIGNALS:
                    log.info("agent_stopping", signal=signal.Signals(signum).name)
                    self._on_stop()
                elif signum == signal.SIGHUP:
                    self._on_hangup()


def _ignore(signum: int, frame: FrameType | None) -> None:
    return None
