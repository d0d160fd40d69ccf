"""What the world state costs: the memory of its facts (pympler) and the CPU of `WorldState.apply`
per message, for the benchmark's plant (10k SKUs and 1k machines by default).

    python bench/world_memory.py [--skus 10000] [--machines 1000] [--messages 60000]

Messages are decoded before anything is timed or measured; every subject gets a fact first (a
sweep), then the benchmark's stream (half stock counts, half telemetry) runs 20 ms of message
time apart. Printed: the size of the world state beyond the master data the daemon holds
anyway (pympler), split into its facts (with the reorder book's few bytes) and metric windows,
and µs of CPU (process time: the machine is shared) per message of `apply` (the fastest of
five equal chunks: the least disturbed by whatever else shares the cores), of reading fields as
the engine posting does, of copying them (the snapshot does), and of `refresh` per fact.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import workload  # noqa: E402
from pympler import asizeof  # noqa: E402

from agent.ingest.decode import decode  # noqa: E402
from agent.ingest.topics import TopicMap  # noqa: E402
from agent.model import Message  # noqa: E402
from agent.world.masterdata import load_masterdata  # noqa: E402
from agent.world.state import WorldState  # noqa: E402

CHUNKS = 5
# What the engine's plan reads of a fact in the benchmark's rules (bench/workload.py).
READ = (
    "kind",
    "line",
    "temp_c",
    "max_temp_c",
    "state",
    "state_minutes",
    "supplier",
    "on_hand",
    "projected",
    "reorder_point",
    "probe",
    "max_probe",
)


def messages(skus: int, machines: int, count: int, start: datetime) -> list[Message]:
    topics = TopicMap(workload.PREFIX)
    stream = workload.Stream(skus, machines, seed=7, sweep=True)
    out = []
    for i in range(count):
        topic, payload = stream.message(i, i)
        at = start + timedelta(milliseconds=20 * i)
        decoded = decode(topic, payload, at, topics)
        assert isinstance(decoded, Message), decoded
        out.append(decoded)
    return out


def fastest(run: Callable[[int, int], None], total: int) -> float:
    """µs per item of `run(first, last)` over five equal chunks of `total`: the fastest."""
    chunk = max(total // CHUNKS, 1)
    costs = []
    for first in range(0, total - chunk + 1, chunk):
        started = time.process_time()
        run(first, first + chunk)
        costs.append((time.process_time() - started) / chunk * 1e6)
    return min(costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=60_000, help="timed, after the sweep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        items_path, machines_path = workload.write_masterdata(Path(tmp), args.skus, args.machines)
        masterdata = load_masterdata(items_path, machines_path)
    start = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    sweep = args.skus + args.machines
    stream = messages(args.skus, args.machines, sweep + args.messages, start)
    world = WorldState(masterdata)
    for message in stream[:sweep]:
        world.apply(message)
    timed = stream[sweep:]

    def apply(first: int, last: int) -> None:
        for message in timed[first:last]:
            world.apply(message)

    apply_us = fastest(apply, len(timed))
    facts = list(world)

    def read(first: int, last: int) -> None:
        for fact in facts[first:last]:
            fields = fact.fields
            for name in READ:
                fields.get(name)

    def copy(first: int, last: int) -> None:
        for fact in facts[first:last]:
            dict(fact.fields)

    read_us = fastest(read, len(facts))
    copy_us = fastest(copy, len(facts))
    now = timed[-1].ts + timedelta(seconds=30)
    world.refresh(now)  # the first tick after the run: most facts change (seen_h)
    started = time.process_time()
    world.refresh(now + timedelta(seconds=30))  # the next: what a tick costs in a running agent
    refresh_us = (time.process_time() - started) / len(world) * 1e6
    windows = [world.windows_of(f.key) for f in world if f.kind == "machine"]
    facts.clear()  # the copies it made of packed facts are not what the world holds
    gc.collect()
    world_size = asizeof.asizeof(masterdata, world) - asizeof.asizeof(masterdata)
    windows_size = asizeof.asizeof(windows)
    print(f"{args.skus:,} SKUs + {args.machines:,} machines, {len(world):,} facts")
    print(f"facts as the world holds them        {(world_size - windows_size) / 1e6:8.1f} MB")
    print(f"metric windows                       {windows_size / 1e6:8.1f} MB")
    print(f"apply, µs per message                {apply_us:8.1f}")
    print(f"read {len(READ)} fields, µs per fact          {read_us:8.2f}")
    print(f"dict(fields) (snapshot), µs per fact {copy_us:8.2f}")
    print(f"refresh (a tick 30 s on), µs per fact {refresh_us:7.1f}")


if __name__ == "__main__":
    main()
