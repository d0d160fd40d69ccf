"""Notice edits to the policy files (rules, master data): poll their modification times (robust
on bind mounts).

A background thread compares (name, mtime, size) of the files (of a folder: its rule files)
every interval and calls `on_change`; the caller decides what a change means (the daemon hands
it to its ingest loop, which reloads rules and master data).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from agent.rulebook.loader import rule_files

log = structlog.get_logger(__name__)

Snapshot = frozenset[tuple[str, int, int]]
SETTLE_S = 0.2


def snapshot(paths: Sequence[Path]) -> Snapshot:
    """What the rule files look like now: name, mtime (ns) and size of each."""
    found: set[tuple[str, int, int]] = set()
    for path in rule_files([p for p in paths if p.exists()]):
        try:
            stat = path.stat()
        except OSError:
            continue  # deleted between listing and stat: the next look sees it gone
        found.add((str(path), stat.st_mtime_ns, stat.st_size))
    return frozenset(found)


class RuleWatcher:
    def __init__(
        self, paths: Sequence[Path], interval_s: float, on_change: Callable[[str], None]
    ) -> None:
        self._paths = list(paths)
        self._interval_s = interval_s
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = snapshot(self._paths)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rule-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                now = self._settled()
            except OSError as exc:
                log.warning("rules_watch_failed", error=str(exc))
                continue
            if now is None or now == self._seen:
                continue
            changed = sorted({name for name, _, _ in now ^ self._seen})
            self._seen = now
            log.info("rules_changed", files=changed)
            self._on_change("file change: " + ", ".join(Path(n).name for n in changed))

    def _settled(self) -> Snapshot | None:
        """The files once they stopped changing (None when asked to stop meanwhile).

        An editor may be half-way through writing: wait for the files to settle rather than
        raise an alert about a file that is about to be complete.
        """
        now = snapshot(self._paths)
        if now == self._seen:
            return now
        while True:
            if self._stop.wait(SETTLE_S):
                return None
            later = snapshot(self._paths)
            if later == now:
                return now
            now = later
