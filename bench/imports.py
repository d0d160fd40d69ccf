"""What `factory-agent run` imports: time, RSS and modules, in fresh interpreters (issue 15).

    python bench/imports.py [--runs 7] [--tree DIR ...] [--started]

For each checkout (`--tree`, default this one) it starts `--runs` fresh interpreters that import
what `agent run` imports (`agent.cli.main` and the modules its `run` command loads: the daemon,
the signal thread, the HTTP edge) and prints the import time (wall: median and fastest run; CPU:
median), the RSS the imports add to a bare interpreter, the number of modules and which of the
optional libraries (console, Sparkplug, mappings, notifications, CLI tables) were loaded.
Several trees in one run (e.g. an old checkout from `git archive`) take turns on the same
machine: on a shared box compare those ratios, not the absolute figures of two runs.

`--started` also starts each tree's daemon for real (`python -m agent run` with the shipped
config/agent.toml, a private Mosquitto, SQLite in a temporary folder), waits until it has
subscribed, and prints the RSS of the idle daemon and of its engine worker, read from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.mosquitto import Mosquitto  # noqa: E402

# Loaded only when configured (or by other commands): none of them is in a plain `agent run`.
OPTIONAL = (
    "rich",
    "pygments",
    "argcomplete",
    "jinja2",
    "argon2",
    "itsdangerous",
    "google.protobuf",
    "jmespath",
    "apprise",
)
# After the subscription: the sender has polled and the first tick has run by then.
SETTLE_S = 3.0
# The heaviest libraries the daemon still imports, to see where the rest goes.
HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "mako", "pydantic", "structlog", "asyncio", "paho")

CHILD = f"""
import json, sys, time

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

base, began, cpu = rss_kb(), time.perf_counter(), time.process_time()
import agent.cli.main
from agent.adapters.signals import SignalThread
from agent.app.daemon import Daemon
from agent.http.observability import start_http
took, cpu = time.perf_counter() - began, time.process_time() - cpu
names = {OPTIONAL + HEAVY!r}
print(json.dumps({{
    "ms": took * 1000, "cpu_ms": cpu * 1000,
    "base_kb": base, "rss_kb": rss_kb(), "modules": len(sys.modules),
    "loaded": [name for name in names if name in sys.modules],
}}))
"""


def imports_once(tree: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=tree, env=env, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line) / 1024


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found]


def started(
    tree: Path, broker: Mosquitto, name: str, timeout_s: float = 60.0
) -> tuple[float, float]:
    """(daemon MB, engine worker MB) of the idle daemon once it has subscribed."""
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as folder:
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "AGENT_MQTT__PORT": str(broker.port),
            "AGENT_MQTT__CLIENT_ID": f"bench-imports-{name}",
            "AGENT_DATABASE__URL": f"sqlite:///{folder}/agent.db",
            "AGENT_LOG__FORMAT": "json",
        }
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "run"],
            cwd=tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert agent.stdout is not None
            deadline = time.monotonic() + timeout_s
            for line in agent.stdout:
                if '"mqtt_subscribed"' in line:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{tree}: the daemon did not subscribe in {timeout_s} s")
            else:
                raise RuntimeError(f"{tree}: the daemon exited before it subscribed")
            time.sleep(SETTLE_S)  # not a synchronisation: the idle daemon is what is measured
            workers = children(agent.pid)
            return rss_mb(agent.pid), sum(rss_mb(pid) for pid in workers)
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()


def report(tree: Path, runs: list[dict[str, Any]]) -> None:
    times = [run["ms"] for run in runs]
    cpu = [run["cpu_ms"] for run in runs]
    added = statistics.median((run["rss_kb"] - run["base_kb"]) / 1024 for run in runs)
    last = runs[-1]
    loaded = set(last["loaded"])
    print(f"{tree}")
    print(
        f"  imports of `agent run`: {statistics.median(times):.0f} ms median, "
        f"{min(times):.0f} ms fastest of {len(times)}; CPU {statistics.median(cpu):.0f} ms median "
        "(less moved by other load than the wall time)"
    )
    print(
        f"  RSS: {last['rss_kb'] / 1024:.1f} MB after the imports, "
        f"{added:.1f} MB of them (median), {last['modules']} modules"
    )
    optional = ", ".join(name for name in OPTIONAL if name in loaded)
    print(f"  optional libraries loaded: {optional or 'none'}")
    print(f"  heavy libraries loaded: {', '.join(n for n in HEAVY if n in loaded)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per tree")
    parser.add_argument(
        "--tree", type=Path, action="append", help="a checkout to measure (default: this one)"
    )
    parser.add_argument("--started", action="store_true", help="also an idle started daemon")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.tree or [REPO]]
    broker = Mosquitto() if args.started else None
    if broker is not None:
        broker.start()
    try:
        for tree in trees:
            imports_once(tree)  # a warm-up: compiles what has no .pyc yet
        # The trees take turns, so that a burst of load on a shared machine hits each alike.
        runs: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
        for _ in range(args.runs):
            for tree in trees:
                runs[tree].append(imports_once(tree))
        for number, tree in enumerate(trees):
            report(tree, runs[tree])
            if broker is not None:
                daemon, worker = started(tree, broker, str(number))
                print(
                    f"  idle started daemon (shipped config): daemon {daemon:.1f} MB, "
                    f"engine worker {worker:.1f} MB, together {daemon + worker:.1f} MB"
                )
    finally:
        if broker is not None:
            broker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
