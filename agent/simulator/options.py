"""The `factory-agent simulate` options, kept apart so the CLI can list them without the model."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="messages per real second (default 20)"
    )
    parser.add_argument("--machines", type=int, default=3, help="machines (default 3)")
    parser.add_argument("--skus", type=int, default=4, help="stocked items (default 4)")
    parser.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated seconds per real second (default 60: an hour a minute)",
    )
    parser.add_argument("--site", default="plant1", help="site topic level (default plant1)")
    parser.add_argument(
        "--duration", type=float, help="stop after this many real seconds (default: run on)"
    )
    parser.add_argument("--messages", type=int, help="stop after this many messages")
    parser.add_argument("--start", help="simulated start time, ISO 8601 (default: now)")
    parser.add_argument(
        "--record", type=Path, metavar="FILE.jsonl", help="also write what is published, for replay"
    )
    parser.add_argument(
        "--shape",
        choices=("builtin", "bare", "nested", "sparkplug"),
        default="builtin",
        help="how the plant publishes (docs/inputs.md; mappings in config/inputs.examples/): "
        "the built-in scheme (default), a bare number per topic, nested JSON with millisecond "
        "times and codes, or Sparkplug B",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="no broker, no waiting: only --record the stream (needs --messages)",
    )
