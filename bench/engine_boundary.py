"""What the engine's process boundary costs: replay throughput with the engine inline and in its
supervised worker process, on the same recording (median of a few runs each).

    python bench/engine_boundary.py [--messages 50000] [--runs 3]

Runs `agent.app.replay.replay` in this process (decode, world state, rules, an in-memory SQLite
store, batches of 500) so that only the engine's placement differs. Prints one line per mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.app.core import EngineFactory  # noqa: E402
from agent.app.policy import load_policy  # noqa: E402
from agent.app.replay import replay  # noqa: E402
from agent.config import Settings  # noqa: E402
from agent.log import configure_logging  # noqa: E402
from agent.rulebook.engine import DurableEngine  # noqa: E402
from agent.rulebook.worker import ProcessEngine  # noqa: E402
from agent.store.repository import Store  # noqa: E402
from bench.replay import recording  # noqa: E402


def rate(path: Path, factory: EngineFactory) -> tuple[float, int]:
    settings = Settings.model_validate(
        {
            "rules": {"path": str(REPO / "rules")},
            "masterdata": {
                "items": str(REPO / "config/items.yaml"),
                "machines": str(REPO / "config/machines.yaml"),
            },
        }
    )
    policy = load_policy(settings)
    with Store.open("sqlite://") as store:
        result = replay(path, policy, store, "factory", 65536, engine_factory=factory)
    return result.messages / result.seconds, len(result.changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning", "console", stream=sys.stderr)
    modes: dict[str, EngineFactory] = {"inline": DurableEngine, "process": ProcessEngine}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recording.jsonl"
        recording(path, args.messages, 1000, 100, seed=1)
        results: dict[str, list[float]] = {mode: [] for mode in modes}
        changes: dict[str, int] = {}
        for _ in range(args.runs):  # interleaved, so drift in the machine's load hits both
            for mode, factory in modes.items():
                per_s, changes[mode] = rate(path, factory)
                results[mode].append(per_s)
    for mode, rates in results.items():
        print(
            f"{mode:8s} {statistics.median(rates):>9,.0f} messages/s "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}; {changes[mode]} decisions stored)"
        )
    inline, process = (statistics.median(results[m]) for m in modes)
    print(f"process boundary: {100 * (1 - process / inline):.0f}% fewer messages/s than inline")


if __name__ == "__main__":
    main()
