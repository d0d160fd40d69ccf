"""Cost per message of decode, world state and rules (the pipeline, no broker, no database).

Used by bench/run.py for how the cost grows with subjects and with rules.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog
import workload

from agent.app.core import Core
from agent.app.pipeline import Pipeline, Raw
from agent.app.stocksync import stock_policy
from agent.config import InventorySettings
from agent.ingest.topics import TopicMap
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.world.masterdata import load_masterdata

BATCH = 500
CHUNKS = 5


def pipeline_for(directory: Path, subjects: int, rules: int) -> tuple[Pipeline, int, int]:
    skus = subjects // 2
    machines = subjects - skus
    here = directory / f"s{subjects}-r{rules}"
    here.mkdir(parents=True, exist_ok=True)
    items_path, machines_path = workload.write_masterdata(here, skus, machines)
    masterdata = load_masterdata(items_path, machines_path)
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    ruleset = load_rules([workload.write_rules(here / "rules", rules)], schema)
    core = Core(ruleset, masterdata, stock_policy=stock_policy(InventorySettings()))
    return Pipeline(core, TopicMap(workload.PREFIX), 65536), skus, machines


def core_cost(directory: Path, subjects: int, rules: int, messages: int) -> float:
    """Microseconds per message once every subject has a fact (each seen once first): the
    fastest of five equal chunks, as the least disturbed by whatever else shares the cores."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    pipeline, skus, machines = pipeline_for(directory, subjects, rules)
    stream = workload.Stream(skus, machines, seed=7)
    at = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    warm = [Raw(*stream._telemetry(workload.machine_name(i), 0, 0), at) for i in range(machines)]
    stock = f"{workload.PREFIX}/{workload.SITE}/stock/"
    warm += [Raw(stock + workload.sku_name(i), b'{"on_hand":99}', at) for i in range(skus)]
    for start in range(0, len(warm), BATCH):
        pipeline.run(warm[start : start + BATCH])
    raws = [Raw(*stream.message(i, i), at) for i in range(messages)]
    chunk = max(BATCH, messages // CHUNKS)
    costs = []
    for first in range(0, len(raws), chunk):
        part = raws[first : first + chunk]
        started = time.perf_counter()
        for start in range(0, len(part), BATCH):
            pipeline.run(part[start : start + BATCH])
        costs.append((time.perf_counter() - started) / len(part) * 1e6)
    pipeline.core.close()
    return min(costs)
