"""Notice edits to the rule files: poll their modification times (robust on bind mounts).

A background thread compares (name, mtime, size) of the rule files every interval and calls
`on_change`; the caller decides what a change means (the daemon hands it to its ingest loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from agent.rulebook.loader import rule_files

log = structlog.get_logger(__name__)

Snapshot = frozenset[tuple[str, int, int]]


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
                now = snapshot(self._paths)
            except OSError as exc:
                log.warning("rules_watch_failed", error=str(exc))
                continue
            if now == self._seen:
                continue
            changed = sorted({name for name, _, _ in now ^ self._seen})
            self._seen = now
            log.info("rules_changed", files=changed)
            self._on_change("file change: " + ", ".join(Path(n).name for n in changed))
