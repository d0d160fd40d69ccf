"""What the commit of a batch costs in the store: ms per commit and rows/s.

A batch stands for 500 messages: 500 changed facts for the snapshot, 500 message digests, and a
share of the messages (`--decisions`, default 4% and 100%) making a decision: alerts fired,
repeated and resolved, reorders opened, repeated and closed, over 2,000 subjects, each with its
rule track, through the outbox's hook (MQTT publications and one route with one channel), all in
the one transaction `Store.apply` makes, as the daemon commits it.

With `--compare REF` the same batches are committed, alternately, by the code of REF (a git
revision, exported to a temporary directory and run in a child process) and by this checkout,
so the two figures come from the same minutes of a noisy machine.

    PYTHONPATH=. python bench/store.py [--batches 40] [--compare main]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BATCH = 500
SUBJECTS = 2_000
T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def batches(count: int, share: float, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """(outcome, facts, tracks, digests) per batch, the same for every run with one seed."""
    from agent.model import (
        ActionClosed,
        ActionDecision,
        AlertDecision,
        AlertResolved,
        Decision,
        Fact,
        Outcome,
        SavedTrack,
        TrackChanges,
    )

    rng = random.Random(seed)
    open_keys: set[str] = set()
    for number in range(count):
        at = T0 + timedelta(seconds=number)
        facts = [
            Fact(
                "machine",
                "plant1",
                f"m-{(number * BATCH + i) % SUBJECTS:05d}",
                {"state": "running", "temp_c": 40 + rng.random() * 50, "seen_s": 0.0},
                at,
            )
            for i in range(BATCH)
        ]
        decisions: list[Decision] = []
        saved = []
        for _ in range(round(BATCH * share)):
            subject = f"m-{rng.randrange(SUBJECTS):05d}"
            action = rng.random() < 0.25
            key = f"{'reorder' if action else 'overheat'}/plant1/{subject}"
            still_open = key in open_keys
            if still_open and rng.random() < 0.2:
                open_keys.discard(key)
                ends = ActionClosed if action else AlertResolved
                decisions.append(ends(key, at, "r", "hash", "over"))
                continue
            open_keys.add(key)
            matched = {"m": {"temp_c": 91.5, "state": "running"}}
            if action:
                decisions.append(
                    ActionDecision(
                        "reorder",
                        key,
                        "plant1",
                        subject,
                        {"quantity": 300},
                        "r",
                        "hash",
                        matched,
                        at,
                    )
                )
            else:
                decisions.append(
                    AlertDecision(
                        key,
                        "warning",
                        f"{subject} is hot",
                        "plant1",
                        subject,
                        "r",
                        "hash",
                        matched,
                        at,
                    )
                )
            saved.append(
                SavedTrack("r", "fp", {"m": f"machine/plant1/{subject}"}, at, True, (key,))
            )
        digests = [f"{rng.getrandbits(128):032x}" for _ in range(BATCH)]
        yield Outcome(decisions), facts, TrackChanges(tuple(saved)), digests


def child(url: str, share: float, count: int) -> None:
    """Commit the batches to `url` with the `agent` on sys.path; print ms per commit as JSON."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from agent.app.clock import SimulatedClock
    from agent.config import NotifySettings, RouteSettings
    from agent.notify.outbox import Outbox
    from agent.store.repository import Store

    settings = NotifySettings(
        channels={"ops": "json://127.0.0.1:9/hook"},
        routes=[RouteSettings(name="ops", channels=["ops"])],
    )
    clock = SimulatedClock(T0)
    outbox = Outbox(settings, "factory", clock)
    timings: list[float] = []
    rows = 0
    with Store.open(url, "FULL") as store:
        for outcome, facts, tracks, digests in batches(count, share):
            clock.set(facts[0].updated_at)
            started = time.perf_counter()
            changes = store.apply(
                outcome, outbox.on_changes, facts=facts, tracks=tracks, processed=digests
            )
            timings.append(time.perf_counter() - started)
            rows += len(changes) + len(facts) + len(digests) + len(tracks.saved)
        with store.engine.connect() as connection:
            from sqlalchemy import text

            outboxed = connection.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    print(json.dumps({"timings": timings, "rows": rows + int(outboxed), "outbox": outboxed}))


@contextmanager
def exported(ref: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="store-bench-") as directory:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "agent"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
        yield Path(directory)


@contextmanager
def database(kind: str, postgres: str | None) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="store-bench-db-") as directory:
            yield f"sqlite:///{directory}/agent.db"
        return
    assert postgres is not None
    sys.path.insert(0, str(ROOT))
    from tests.support.databases import postgres_schema

    with postgres_schema(postgres) as url:
        yield url


def run_child(code: Path, url: str, share: float, count: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    script = [sys.executable, str(Path(__file__).resolve()), "--child", url]
    script += ["--share", str(share), "--batches", str(count)]
    done = subprocess.run(script, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--decisions", type=float, nargs="+", default=[0.04, 1.0])
    parser.add_argument("--compare", metavar="REF", help="also time the code of this git ref")
    parser.add_argument("--postgres", help="also on this PostgreSQL (a schema of its own)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations per figure")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--share", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.share, args.batches)
        return
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    with exported(args.compare) if args.compare else _nothing() as old:
        codes = [("this checkout", ROOT)] + ([(args.compare, old)] if old else [])
        print(f"store commit cost: batches of {BATCH} messages, {args.batches} batches per run")
        print(
            f"{'database':<11}{'decisions':>10}  {'code':<16}{'ms/commit p50':>14}"
            f"{'p90':>8}{'rows/s':>10}{'outbox':>8}"
        )
        for kind in kinds:
            for share in args.decisions:
                results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in codes}
                for _ in range(args.rounds):
                    for name, code in codes:
                        with database(kind, args.postgres) as url:
                            results[name].append(run_child(code, url, share, args.batches))
                for name, _ in codes:
                    timings = [t for r in results[name] for t in r["timings"][1:]]
                    rows = sum(r["rows"] for r in results[name])
                    total = sum(t for r in results[name] for t in r["timings"])
                    p50 = statistics.median(timings) * 1000
                    p90 = statistics.quantiles(timings, n=10)[-1] * 1000
                    label = "SQLite FULL" if kind == "sqlite" else "PostgreSQL"
                    print(
                        f"{label:<11}{share:>10.0%}  {name:<16}{p50:>14.1f}{p90:>8.1f}"
                        f"{rows / total:>10,.0f}{results[name][0]['outbox']:>8}"
                    )


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
