"""`factory-agent inputs check [FILE]` and `inputs try TOPIC PAYLOAD`: see how messages map.

`check` validates the inputs file (exit 1 with `file:line: mapping: reason` lines); `try` decodes
one message as the agent would and prints the input it becomes, or why it is refused (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.ingest.decode import decode
from agent.ingest.mapping_load import InputsError, load_inputs
from agent.ingest.topics import TopicMap
from agent.model import Rejected

EXIT_OK, EXIT_INVALID = 0, 1


def add_inputs_parser(commands: Any) -> None:
    """`inputs check|try` under the CLI's subcommands."""
    inputs = commands.add_parser("inputs", help="check input mappings, try a message on them")
    inputs_commands = inputs.add_subparsers(dest="inputs_command", required=True, metavar="COMMAND")
    check = inputs_commands.add_parser(
        "check", help="validate the inputs file; exit 1 with file:line problems"
    )
    check.add_argument(
        "file", nargs="?", type=Path, metavar="FILE", help="default: ingest.inputs_file"
    )
    check.add_argument("--config", type=Path, metavar="FILE")
    attempt = inputs_commands.add_parser(
        "try", help="decode one message: print the input it becomes, or why it is refused"
    )
    attempt.add_argument("topic", metavar="TOPIC")
    attempt.add_argument("payload", metavar="PAYLOAD", help="the payload text; '-' reads stdin")
    attempt.add_argument(
        "--file", type=Path, metavar="FILE", help="inputs file (default: ingest.inputs_file)"
    )
    attempt.add_argument("--json", action="store_true", help="the decoded input as JSON")
    attempt.add_argument("--config", type=Path, metavar="FILE")


def inputs_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.inputs_command == "check":
        return _check(args.file, settings)
    return _try(args, settings)


def _check(file: Path | None, settings: Settings) -> int:
    path = file or settings.ingest.inputs_file
    if path is None or not path.exists():
        if file is not None:
            print(f"{file}: no such file")
            return EXIT_INVALID
        print(f"ok: no inputs file ({path}): the built-in topic scheme alone")
        return EXIT_OK
    try:
        mappings = load_inputs(path)
    except InputsError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) found")
        return EXIT_INVALID
    count = len(mappings) if mappings is not None else 0
    print(f"ok: {count} input mapping(s) in {path}, then the built-in topic scheme")
    return EXIT_OK


def _try(args: argparse.Namespace, settings: Settings) -> int:
    path = args.file or settings.ingest.inputs_file
    try:
        mappings = load_inputs(path)
    except InputsError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    topics = TopicMap(settings.mqtt.topic_prefix, mappings)
    payload = sys.stdin.buffer.read() if args.payload == "-" else args.payload.encode("utf-8")
    ingest = settings.ingest
    now = datetime.now(UTC)
    decoded = decode(
        args.topic,
        payload,
        now,
        topics,
        ingest.max_payload_bytes,
        ingest.max_topic_level_chars,
    )
    if isinstance(decoded, Rejected):
        print(f"refused: {decoded.reason}")
        return EXIT_INVALID
    match = topics.match(args.topic)
    shown = {
        "mapping": match.mapping if match is not None and match.mapping else "built-in",
        "kind": decoded.kind,
        "site": decoded.site,
        "subject": decoded.subject,
        "fields": dict(decoded.fields),
        "ts": decoded.ts.isoformat() + (" (arrival time)" if decoded.ts == now else ""),
    }
    if args.json:
        print(json.dumps(shown))
        return EXIT_OK
    for key, value in shown.items():
        text = json.dumps(value) if key == "fields" else value
        print(f"{key + ':':9} {text}")
    return EXIT_OK
