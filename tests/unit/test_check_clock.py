"""scripts/check_clock.py, run by `make lint`: no core module reads the clock."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_clock.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_clock", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building the class
    spec.loader.exec_module(module)
    return module


check_clock = _load()


def run(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(repo)], capture_output=True, text=True, timeout=60
    )


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def found(source: str) -> list[tuple[int, str]]:
    return [(v.line, v.name) for v in check_clock.violations(source, Path("m.py"))]


def test_the_real_tree_reads_no_clock_in_its_core() -> None:
    result = run(REPO)
    assert (result.returncode, result.stdout) == (0, "")


def test_a_clock_read_in_the_core_is_named_by_file_and_line_and_fails(tmp_path: Path) -> None:
    write(tmp_path, "agent/world/ok.py", "from datetime import date\nX = date(2026, 1, 1)\n")
    write(
        tmp_path,
        "agent/world/stock.py",
        "from datetime import UTC, datetime\n\n\ndef age(t):\n    return datetime.now(UTC) - t\n",
    )
    write(tmp_path, "agent/app/core.py", "import time as t\n\nSTART = t.monotonic()\n")

    result = run(tmp_path)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "agent/app/core.py:3:9: time.monotonic() reads the clock; "
        "pass the time in (a Clock, or the message's time)",
        "agent/world/stock.py:5:12: datetime.datetime.now() reads the clock; "
        "pass the time in (a Clock, or the message's time)",
    ]


def test_the_engine_worker_and_modules_outside_the_core_may_read_the_clock(
    tmp_path: Path,
) -> None:
    clocky = "import time\n\nSTART = time.monotonic()\n"
    for module in ("agent/rulebook/worker.py", "agent/rulebook/child.py", "agent/app/daemon.py"):
        write(tmp_path, module, clocky)
    write(tmp_path, "agent/rulebook/engine.py", clocky)

    result = run(tmp_path)

    assert result.returncode == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [
        "agent/rulebook/engine.py"
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import datetime\nx = datetime.datetime.now()\n", [(2, "datetime.datetime.now()")]),
        ("import datetime as dt\nx = dt.date.today()\n", [(2, "datetime.date.today()")]),
        ("from datetime import datetime as D\nD.utcnow()\n", [(2, "datetime.datetime.utcnow()")]),
        ("from datetime import date\nx = date.today()\n", [(2, "datetime.date.today()")]),
        ("from time import monotonic as mono\nx = mono()\n", [(2, "time.monotonic()")]),
        ("from time import perf_counter_ns as pc\nx = pc()\n", [(2, "time.perf_counter_ns()")]),
        ("import time\nx = time.time()\n", [(2, "time.time()")]),
        # A reference reads the clock later: a default factory, a callback.
        ("from datetime import datetime\nf = datetime.now\n", [(2, "datetime.datetime.now()")]),
        ("def f():\n    import time\n    return time.time_ns()\n", [(3, "time.time_ns()")]),
    ],
)
def test_aliases_are_resolved(source: str, expected: list[tuple[int, str]]) -> None:
    assert found(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        # `time` from datetime is a time of day, not the module (agent/world/shifts.py).
        "from datetime import time\nSTART = time(6, 0)\n",
        "from datetime import datetime\nx = datetime.fromisoformat('2026-01-01')\n",
        # A local variable (or attribute) that happens to be called `time` or `now`.
        "def f(time, clock):\n    return time.time(), clock.now()\n",
        "x = now()\n",
    ],
)
def test_what_does_not_read_the_clock_passes(source: str) -> None:
    assert found(source) == []
