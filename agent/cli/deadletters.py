"""`factory-agent dead-letters list | show ID | reprocess ID... | --all`.

A dead letter is a message the agent could not decode or validate, kept byte for byte with the
reason. Once the sender (or the master data, or a limit) is fixed, `reprocess` publishes the raw
payload again to its original topic at QoS 1 and deletes the row only after the broker's PUBACK,
so a letter is never lost between the database and the broker.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agent.app.deadletters import BrokerUnavailable, resend
from agent.cli.database import open_for_reading
from agent.cli.listing import Column, age, console, fitted
from agent.config import Settings
from agent.store.repository import Store, json_friendly
from agent.store.tables import dead_letter_table

__all__ = ["BrokerUnavailable", "add_arguments", "as_json", "find", "reprocess", "run"]

_COLUMNS: tuple[Column, ...] = (
    ("ID", True, 8),
    ("RECEIVED", False, 19),
    ("AGE", True, 5),
    ("TOPIC", False, 40),
    ("REASON", False, None),
)


def add_arguments(commands: Any) -> None:
    """`dead-letters` and its three subcommands, under the top-level `commands`."""
    does = "messages the agent could not take in: list, show, reprocess"
    group = commands.add_parser("dead-letters", help=does, description=does)
    sub = group.add_subparsers(dest="dead_letters_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="id, received, topic and reason, newest first")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = sub.add_parser("show", help="one dead letter: its full payload and reason")
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="the dead letter as JSON")
    again = sub.add_parser(
        "reprocess",
        help="publish the raw payloads again to their topics (QoS 1); each row is deleted "
        "once the broker acknowledged it",
    )
    again.add_argument("ids", type=int, nargs="*", metavar="ID")
    again.add_argument("--all", action="store_true", help="every dead letter")
    for parser in (listing, show, again):
        parser.add_argument("--config", type=Path, metavar="FILE", help="settings file")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.dead_letters_command == "list":
        return list_letters(settings, args.json)
    if args.dead_letters_command == "show":
        return show_letter(settings, args.id, args.json)
    if bool(args.ids) == bool(args.all):
        print("factory-agent: dead-letters reprocess: give IDs or --all (one of the two)")
        return 1
    return reprocess(settings, args.ids or None)


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A dead letter for programs: the payload as text when it is UTF-8, always as base64."""
    payload = bytes(row["payload"])
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    out = json_friendly({k: v for k, v in row.items() if k != "payload"})
    out.update(payload=text, payload_base64=base64.b64encode(payload).decode(), size=len(payload))
    return out


def list_letters(settings: Settings, as_lines: bool) -> int:
    with open_for_reading(settings) as store:
        rows = store.dead_letters()
    if as_lines:
        for row in rows:
            print(json.dumps(as_json(row), default=str))
        return 0
    out = console()
    if not rows:
        out.print("no dead letters")
        return 0
    now = datetime.now(UTC)
    body = [
        (
            str(row["id"]),
            row["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
            age(row["received_at"], now),
            str(row["topic"]),
            str(row["reason"]).replace("\n", " "),
        )
        for row in rows
    ]
    out.print(fitted(_COLUMNS, body, out.width))
    return 0


def find(store: Store, id: int) -> dict[str, Any] | None:
    statement = select(dead_letter_table).where(dead_letter_table.c.id == id)
    with store.engine.connect() as connection:
        found = connection.execute(statement).mappings().first()
    return dict(found) if found is not None else None


def show_letter(settings: Settings, id: int, as_lines: bool) -> int:
    with open_for_reading(settings) as store:
        row = find(store, id)
    if row is None:
        print(f"factory-agent: no dead letter with id {id}", file=sys.stderr)
        return 1
    if as_lines:
        print(json.dumps(as_json(row), default=str))
        return 0
    payload = bytes(row["payload"])
    print(f"dead letter #{row['id']}")
    print(f"received  {row['received_at'].isoformat()}")
    print(f"topic     {row['topic']}")
    print(f"reason    {row['reason']}")
    print(f"payload   {len(payload)} bytes" + ("" if _text(payload) else ", not UTF-8 (hex)"))
    text = _text(payload)
    print(text if text is not None else payload.hex(" ", 1))
    return 0


def _text(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def reprocess(settings: Settings, ids: Sequence[int] | None) -> int:
    """Re-publish the chosen dead letters (None: all), oldest first; delete each after PUBACK."""
    with open_for_reading(settings) as store:
        rows = sorted(store.dead_letters(), key=lambda row: row["id"])
        if ids is not None:
            wanted = set(ids)
            missing = sorted(wanted - {row["id"] for row in rows})
            if missing:
                listed = ", ".join(str(id) for id in missing)
                print(f"factory-agent: no dead letter with id {listed}", file=sys.stderr)
                return 1
            rows = [row for row in rows if row["id"] in wanted]
        if not rows:
            print("no dead letters")
            return 0
        failed = 0
        for outcome in resend(store, settings.mqtt, rows):
            if outcome.sent:
                print(f"re-sent #{outcome.id} to {outcome.topic} ({outcome.size} bytes)")
            else:
                failed += 1
                print(f"not re-sent #{outcome.id}: {outcome.problem}; kept", file=sys.stderr)
    where = f"{settings.mqtt.host}:{settings.mqtt.port}"
    print(f"re-sent {len(rows) - failed} of {len(rows)} dead letters to {where}")
    return 1 if failed else 0
