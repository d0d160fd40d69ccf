"""`make demo`: the agent and the simulator at high speed against a local broker; within a minute
the decisions appear (reorders, work orders, idle capacity, alerts), counted every few seconds.

Usage: python scripts/demo.py [SECONDS]   (run by `make demo` with the project's virtualenv)
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
AGENT = (sys.executable, "-m", "agent")  # the checkout's agent (cwd is the repository)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def counts(database: Path) -> Counter[str]:
    """Actions by kind and alerts, read straight from the demo's SQLite file (fast, read-only)."""
    tally: Counter[str] = Counter()
    if not database.exists():
        return tally
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        for kind, number in connection.execute("SELECT kind, count(*) FROM action GROUP BY kind"):
            tally[kind] = number
        tally["alert"] = connection.execute("SELECT count(*) FROM alert").fetchone()[0]
    return tally


def show(tally: Counter[str]) -> str:
    kinds = ("reorder", "work_order", "idle_capacity", "alert")
    return ", ".join(f"{tally[kind]} {kind}" for kind in kinds)


def main(seconds: float) -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir(parents=True)
    port = int(os.environ.get("DEMO_HTTP_PORT", "9464"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update(
        AGENT_DATABASE__URL=f"sqlite:///{DEMO}/agent.db",
        AGENT_MQTT__CLIENT_ID=f"factory-agent-demo-{os.getpid()}",
        # Topics of its own: `make run`'s agent (subscribed under `factory/`) never takes in the
        # simulated plant, and this agent never sees a real one.
        AGENT_MQTT__TOPIC_PREFIX="demo",
        AGENT_MQTT__SESSION_EXPIRY_S="60",  # a demo's session should not outlive it
        AGENT_HTTP__ENABLED="true",
        AGENT_HTTP__PORT=str(port),
        # The console's pages, read-only without users (and only from this machine), with the
        # readings history so the machine and stock pages have charts.
        AGENT_HTTP__PAGES="true",
        AGENT_HISTORY__ENABLED="true",
        AGENT_LOG__FORMAT="json",
    )
    with (DEMO / "agent.log").open("w") as log:
        agent = subprocess.Popen([*AGENT, "run"], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not ready(port):
            if agent.poll() is not None or time.monotonic() > deadline:
                print(f"demo: the agent did not become ready; see {DEMO / 'agent.log'}")
                return 1
            time.sleep(0.2)  # polling the agent's /readyz, with a deadline
        print(f"demo: agent ready (http://127.0.0.1:{port}/readyz, /metrics)")
        print(f"demo: console at http://127.0.0.1:{port}/alerts (and /actions, /machines, /stock)")
        began = time.monotonic()
        options = f"--speed 3600 --rate 40 --duration {seconds} --record {DEMO}/stream.jsonl"
        simulator = subprocess.Popen([*AGENT, "simulate", *options.split()], cwd=REPO, env=env)
        print("demo: simulating one factory hour per second, 40 messages a second")
        while simulator.poll() is None:
            time.sleep(5)  # a progress line every 5 s while the simulator runs
            print(f"demo: {time.monotonic() - began:4.0f} s: {show(counts(DEMO / 'agent.db'))}")
        time.sleep(1)  # let the agent commit the last batch before the final count
        final = counts(DEMO / "agent.db")
        print(f"demo: after {time.monotonic() - began:.0f} s: {show(final)}\n")
        for table in ("actions", "alerts"):
            print(f"$ factory-agent {table}   (first 8)")
            out = subprocess.run([*AGENT, table], cwd=REPO, env=env, capture_output=True)
            print("\n".join(out.stdout.decode().splitlines()[:8]) + "\n")
        print(f"demo: database {DEMO / 'agent.db'}, stream {DEMO / 'stream.jsonl'}")
        hold = float(os.environ.get("DEMO_HOLD_S", "0"))
        if hold > 0:
            print(f"demo: the console stays up {hold:.0f} s: http://127.0.0.1:{port}/alerts")
            time.sleep(hold)  # the user looks at the pages; Ctrl-C ends it sooner
        wanted = ("reorder", "work_order", "idle_capacity", "alert")
        return 0 if all(final[kind] for kind in wanted) else 1
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 40.0))
