"""RSS growth when stock counts arrive for SKUs the master data does not know (issue 16, hole 3).

Runs the shipped rules and master data through the pipeline (no broker, no database) and prints
the growth in MiB after 20,000 unknown SKUs, and after 3,000 SKUs named with 4,000 characters.
Run from the repository root: `PYTHONPATH=$PWD python bench/unknown_subjects.py`.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from agent.adapters.memory import release_free_memory
from agent.app.core import Core
from agent.app.pipeline import Pipeline, Raw
from agent.app.stocksync import stock_policy
from agent.config import IngestSettings, InventorySettings
from agent.ingest.subjects import SubjectLimits
from agent.ingest.topics import TopicMap
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.world.masterdata import load_masterdata

BATCH = 500
ROOT = Path(__file__).resolve().parent.parent


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def pipeline(ingest: IngestSettings) -> Pipeline:
    masterdata = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    ruleset = load_rules([ROOT / "rules"], schema)
    core = Core(ruleset, masterdata, stock_policy=stock_policy(InventorySettings()))
    return Pipeline(
        core,
        TopicMap("factory"),
        ingest.max_payload_bytes,
        SubjectLimits.of(ingest),
        ingest.max_topic_level_chars,
    )


def growth(ingest: IngestSettings, count: int, name_length: int) -> tuple[float, int, int]:
    """RSS growth in MiB after `count` stock counts for distinct unknown SKUs; accepted, refused."""
    p = pipeline(ingest)
    at = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    p.run([Raw("factory/plant1/stock/BRG-6204", b'{"on_hand": 5}', at)])
    release_free_memory()
    before = rss_mib()
    refused = 0
    for start in range(0, count, BATCH):
        batch = [
            Raw(f"factory/plant1/stock/{f'x{i}'.ljust(name_length, 'x')}", b'{"on_hand": 5}', at)
            for i in range(start, min(start + BATCH, count))
        ]
        refused += len(p.run(batch).rejected)
        at += timedelta(seconds=1)
    release_free_memory()
    after = rss_mib()
    p.core.close()
    return after - before, count - refused, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument(
        "--unbounded",
        action="store_true",
        help="no cap and no level limit: the agent before issue 16's fix",
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    ingest = IngestSettings()  # the defaults
    if args.unbounded:
        ingest = IngestSettings(unknown_subjects_max=10**9, max_topic_level_chars=10**6)
    for count, length in ((args.skus, 8), (3_000, 4_000)):
        mib, accepted, refused = growth(ingest, count, length)
        print(
            f"{count} unknown SKUs of {length} chars: +{mib:.1f} MiB RSS "
            f"({accepted} accepted, {refused} dead-lettered)"
        )


if __name__ == "__main__":
    main()
