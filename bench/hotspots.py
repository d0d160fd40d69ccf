"""Where the time of one message goes: the pipeline (decode, world state, rules) under cProfile.

    python bench/hotspots.py [--subjects 11000] [--rules 100] [--messages 30000] [--sort tottime]

Master data and rules are built and loaded before profiling starts; warm-up is excluded too.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import workload  # noqa: E402
from corecost import BATCH, core_cost, pipeline_for  # noqa: E402

from agent.app.pipeline import Raw  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=11_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        core_cost(Path(tmp), 10, args.rules, 100)  # quiet logging, as the benchmark has it
        pipeline, skus, machines = pipeline_for(Path(tmp), args.subjects, args.rules)
        stream = workload.Stream(skus, machines, seed=7)
        at = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
        raws = [Raw(*stream.message(i, i), at) for i in range(args.messages)]
        pipeline.run(raws[: args.messages // 3])  # warm-up: most subjects have a fact
        profile = cProfile.Profile()
        profile.enable()
        for start in range(0, len(raws), BATCH):
            pipeline.run(raws[start : start + BATCH])
        profile.disable()
    pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
