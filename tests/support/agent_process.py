"""Run `factory-agent` as a real subprocess for integration tests and benchmarks.

Writes a settings file pointing at a given broker and database, starts the daemon, and reads its
JSON log lines so a test can wait for an event (with a deadline) instead of sleeping.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


# Fault tests and benchmarks send tens of thousands of SKUs the master data does not name.
UNCAPPED = "[ingest]\nunknown_subjects_max = 1000000\n"


def write_config(
    directory: Path,
    *,
    port: int,
    database_url: str,
    client_id: str,
    rules: Path | None = None,
    extra: str = "",
    masterdata: Path | None = None,
) -> Path:
    """`masterdata`: a folder with items.yaml and machines.yaml (default: the repository's)."""
    config = masterdata or REPO / "config"
    path = directory / "agent.toml"
    path.write_text(
        f"""\
[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "{client_id}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0

[database]
url = "{database_url}"
sqlite_synchronous = "NORMAL"

[rules]
path = "{rules or REPO / "rules"}"

[masterdata]
items = "{config / "items.yaml"}"
machines = "{config / "machines.yaml"}"

[log]
level = "debug"
format = "json"
{extra}
{"" if "[ingest]" in extra else UNCAPPED}
""",
        encoding="utf-8",
    )
    return path


class AgentProcess:
    def __init__(self, config: Path, cwd: Path, prefix: Sequence[str] = ()) -> None:
        """`prefix` runs the daemon under another command, e.g. `unshare --pid --fork`."""
        self.config = config
        self.cwd = cwd
        self.prefix = list(prefix)
        self.process: subprocess.Popen[str] | None = None
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
        env["PYTHONPATH"] = str(REPO)  # the checkout under test, whatever is installed
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "agent", "run", "--config", str(self.config)],
            cwd=self.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        # A test that fails before its clean-up must not leave an agent running for ever.
        atexit.register(self.kill)

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for text in self.process.stdout:
            with self._changed:
                self.lines.append(text.rstrip("\n"))
                try:
                    event = json.loads(text)
                except json.JSONDecodeError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, event: str, timeout: float = 10.0, count: int = 1) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.events if e.get("event") == event]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (
                    self.process is not None
                    and self.process.poll() is not None
                    and not self._pending_output()
                ):
                    raise AssertionError(
                        f"no {event!r} (x{count}) within {timeout} s; output:\n" + self.tail()
                    )
                self._changed.wait(min(left, 0.1))

    def _pending_output(self) -> bool:
        return False

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.lines[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
