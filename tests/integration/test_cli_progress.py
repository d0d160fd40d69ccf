"""Progress bars on `replay` of a large file and on `simulate`: on a terminal only."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from tests.support.agent_process import REPO


def big_recording(path: Path) -> Path:
    """60 lines of 20 kB (1.2 MB), on a topic the agent does not know: fast dead letters."""
    with path.open("w") as handle:
        for i in range(60):
            entry = {
                "ts": 1772431200 + i,
                "topic": "factory/plant1/x/y",
                "payload": {"p": "x" * 20_000},
            }
            handle.write(json.dumps(entry) + "\n")
    assert path.stat().st_size > 1_000_000
    return path


def on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `python -m agent ARGS` with stderr on a pseudo-terminal; what it wrote there."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO), "COLUMNS": "100"},
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    return process.wait(30), seen.decode(errors="replace")


def piped(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_replay_of_a_large_file_shows_a_bar_on_a_terminal(tmp_path: Path) -> None:
    path = big_recording(tmp_path / "big.jsonl")
    code, seen = on_a_terminal("replay", str(path))
    assert code == 0, seen
    assert "replay big.jsonl" in seen and "100%" in seen
    assert "replayed 60 messages" in seen


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    path = big_recording(tmp_path / "big.jsonl")
    done = piped("replay", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # the summary line alone
    assert "%" not in done.stderr and "\x1b[" not in done.stderr


def test_no_bar_for_a_small_file_even_on_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    path.write_text(json.dumps({"ts": 1772431200, "topic": "factory/plant1/x/y", "payload": {}}))
    code, seen = on_a_terminal("replay", str(path))
    assert code == 0, seen
    assert "replayed 1 messages" in seen and "%" not in seen


def test_simulate_shows_messages_sent_of_the_total(tmp_path: Path) -> None:
    record = tmp_path / "stream.jsonl"
    code, seen = on_a_terminal(
        "simulate", "--offline", "--record", str(record), "--messages", "300", "--seed", "3"
    )
    assert code == 0, seen
    assert "simulate" in seen and "300/300" in seen
    assert "simulated 300 messages" in seen
    quiet = piped("simulate", "--offline", "--record", str(record), "--messages", "300")
    assert quiet.returncode == 0 and "300/300" not in quiet.stderr
