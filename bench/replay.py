"""Replay throughput: messages/s through decode, world state, rules and an in-memory store.

    python bench/replay.py [--messages 100000] [--skus 1000] [--machines 100]

Generates a recording (stock counts drifting down and refilled, telemetry with occasional heat,
idling and faults) for the shipped rules and sample master data, then times `factory-agent
replay` on it as a user would run it. Prints one line of figures.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KNOWN_SKUS = ["BRG-6204", "OIL-HLP46", "STL-2MM", "BLT-A42", "FLT-HYD10", "PPE-GLV-M"]
KNOWN_MACHINES = ["press-01", "cnc-02", "weld-03"]


def recording(path: Path, messages: int, skus: int, machines: int, seed: int) -> None:
    rng = random.Random(seed)
    sku_names = KNOWN_SKUS + [f"SKU-{i:05d}" for i in range(max(0, skus - len(KNOWN_SKUS)))]
    machine_names = KNOWN_MACHINES + [f"m-{i:04d}" for i in range(max(0, machines - 3))]
    on_hand = {sku: rng.randint(20, 200) for sku in sku_names}
    start = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as out:
        for n in range(messages):
            ts = (start + timedelta(seconds=n * 0.05)).isoformat()
            if rng.random() < 0.5:
                sku = rng.choice(sku_names)
                on_hand[sku] = on_hand[sku] - rng.randint(0, 3) if on_hand[sku] > 5 else 200
                topic, payload = f"factory/plant1/stock/{sku}", {"on_hand": on_hand[sku]}
            else:
                machine = rng.choice(machine_names)
                state = rng.choices(["running", "idle", "down"], [90, 8, 2])[0]
                topic = f"factory/plant1/machine/{machine}/telemetry"
                payload = {
                    "state": state,
                    "temp_c": round(rng.gauss(60, 8), 1),
                    "vibration_mm_s": round(abs(rng.gauss(2, 1)), 2),
                }
            out.write(json.dumps({"ts": ts, "topic": topic, "payload": payload}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recording.jsonl"
        recording(path, args.messages, args.skus, args.machines, args.seed)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "agent", "replay", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
    decisions = len(result.stdout.splitlines())
    print(
        f"replay: {args.messages} messages, {args.skus} SKUs, {args.machines} machines: "
        f"{args.messages / wall:,.0f} messages/s wall (process start included), "
        f"{decisions} decisions; agent says: {result.stderr.strip().splitlines()[-1]}"
    )


if __name__ == "__main__":
    main()
