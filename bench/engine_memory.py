"""What the rule engine holds in memory for the benchmark's world: RSS of one process before and
after posting 10k stock facts and 1k machine facts to `DurableEngine`, then after rounds of
updates that put some facts into the joins' store (empty stock, down machines).

    python bench/engine_memory.py [--rules 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import workload  # noqa: E402

from agent.rulebook.compiler import compile_rules  # noqa: E402
from agent.rulebook.engine import DurableEngine  # noqa: E402
from agent.rulebook.fields import build_schema  # noqa: E402
from agent.rulebook.loader import load_rules  # noqa: E402
from agent.world.masterdata import load_masterdata  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def post(engine: DurableEngine, round_: int) -> None:
    for i in range(10_000):
        engine.update(
            f"stock/p/{workload.sku_name(i)}",
            {
                "kind": "stock",
                "sku": workload.sku_name(i),
                "supplier": f"SUP-{i % 7}",
                "on_hand": (i + round_) % 40 if round_ else 50,
            },
        )
    for i in range(1_000):
        state = "down" if round_ and (i + round_) % 10 == 0 else "running"
        engine.update(
            f"machine/p/{workload.machine_name(i)}",
            {"kind": "machine", "line": f"L{i % 10}", "state": state},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        items, machines = workload.write_masterdata(Path(tmp), 100, 10)
        masterdata = load_masterdata(items, machines)
        schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
        rules = load_rules([workload.write_rules(Path(tmp) / "rules", args.rules)], schema)
        engine = DurableEngine(compile_rules(rules))
        before = rss_mb()
        post(engine, 0)
        print(f"11,000 facts posted: +{rss_mb() - before:.0f} MB, {engine.held()} held for joins")
        for round_ in range(1, args.rounds + 1):
            post(engine, round_)
            print(
                f"round {round_}: +{rss_mb() - before:.0f} MB, {engine.held()} held for joins",
                flush=True,
            )


if __name__ == "__main__":
    main()
