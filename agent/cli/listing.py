"""`factory-agent alerts | actions`: what is open now, as a table a shift lead can read.

Open items by default (alerts firing or acknowledged, actions open or acknowledged), `--all`
for every status; filters by site, machine, SKU, subject and severity; an `age` column; `--json`
for programs (every field, no table); `--watch` redraws until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from agent.decisions.report import open_spend, record, spend_lines
from agent.model import ACTION_STATUSES, ALERT_STATUSES

if TYPE_CHECKING:  # rich is imported by the functions that draw: `agent run` never does
    from rich.console import Console
    from rich.table import Table

# Open items: what a shift lead still has to deal with.
OPEN_STATUSES = {"action": ("open", "acknowledged"), "alert": ("firing", "acknowledged")}
# The table's width when stdout is not a terminal (a pipe, a file, a test).
WIDTH = 100
_PARAM_ORDER = ("quantity", "task", "priority", "supplier", "cost", "note")


def add_arguments(listing: argparse.ArgumentParser, table: str) -> None:
    """The options of `alerts` (table "alert") or `actions` (table "action")."""
    statuses = ACTION_STATUSES if table == "action" else ALERT_STATUSES
    opened = ", ".join(OPEN_STATUSES[table])
    which = listing.add_mutually_exclusive_group()
    which.add_argument(
        "--status",
        choices=statuses,
        help=f"only this status: {', '.join(statuses)} (default: the open ones, {opened})",
    )
    which.add_argument("--all", action="store_true", help="every status, closed ones included")
    listing.add_argument("--site", metavar="SITE", help="only this site")
    listing.add_argument("--machine", metavar="ID", help="only this machine")
    listing.add_argument("--sku", metavar="SKU", help="only this SKU")
    listing.add_argument("--subject", metavar="ID", help="only this subject (machine or SKU)")
    if table == "alert":
        listing.add_argument(
            "--severity", choices=("info", "warning", "critical"), help="only this severity"
        )
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per line, every field, no table"
    )
    listing.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=5.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 5) until Ctrl-C",
    )
    # For tests: stop after N redraws.
    listing.add_argument("--watch-count", type=int, default=None, help=argparse.SUPPRESS)
    if table == "action":
        listing.add_argument(
            "--summary",
            action="store_true",
            help="open reorders' value still to come, by supplier",
        )


def statuses_wanted(table: str, args: argparse.Namespace) -> tuple[str, ...] | None:
    """The statuses to list: one, the open ones (default) or None for every status."""
    if args.status:
        return (args.status,)
    if args.all:
        return None
    return OPEN_STATUSES[table]


def wanted(table: str, row: dict[str, Any], args: argparse.Namespace) -> bool:
    """Does the row pass the filters given on the command line?"""
    statuses = statuses_wanted(table, args)
    if statuses is not None and row.get("status") not in statuses:
        return False
    params = row.get("params") or {}
    if args.site is not None and row.get("site") != args.site:
        return False
    if args.subject is not None and row.get("subject") != args.subject:
        return False
    for field in ("machine", "sku"):
        value = getattr(args, field)
        if value is not None and value not in (params.get(field), row.get("subject")):
            return False
    severity = getattr(args, "severity", None)
    return severity is None or row.get("severity") == severity


def age(since: str | datetime | None, now: datetime) -> str:
    """How long ago, the way people say it: "45s", "3m", "2h", "4d"."""
    if since is None:
        return ""
    at = datetime.fromisoformat(since) if isinstance(since, str) else since
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def full_record(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """The flat record of `replay --json` plus every other column of the row."""
    rec = record(table, row)
    rec.update({name: value for name, value in row.items() if name not in rec})
    return rec


# A column: its header, right-aligned or not, the most characters it takes (None: the flexible
# column, which gets what the others leave of the width).
Column = tuple[str, bool, int | None]
_COLUMNS: dict[str, tuple[Column, ...]] = {
    "alert": (
        ("ID", True, 8),
        ("AGE", True, 5),
        ("SEVERITY", False, 8),
        ("STATUS", False, 12),
        ("SITE", False, 12),
        ("SUBJECT", False, 16),
        ("MESSAGE", False, None),
        ("COUNT", True, 7),
        ("RULE", False, 22),
    ),
    "action": (
        ("ID", True, 8),
        ("AGE", True, 5),
        ("KIND", False, 13),
        ("STATUS", False, 12),
        ("SITE", False, 12),
        ("SUBJECT", False, 16),
        ("DETAILS", False, None),
        ("COUNT", True, 7),
        ("RULE", False, 22),
    ),
}
_GAP = 2  # spaces between columns
_MIN_FLEXIBLE = 12


def cells(table: str, row: dict[str, Any], now: datetime) -> tuple[str, ...]:
    """One row's cells, in the order of its table's columns."""
    if table == "alert":
        at, what = row.get("first_seen"), (row.get("severity"), row.get("status"))
        text = row.get("last_message") or row.get("message") or ""
    else:
        params = row.get("params") or {}
        at, what = row.get("created_at"), (row.get("kind"), row.get("status"))
        text = " ".join(f"{k}={params[k]}" for k in _PARAM_ORDER if k in params)
    return (
        str(row.get("id", "")),
        age(at, now),
        *(str(value or "") for value in what),
        str(row.get("site") or ""),
        str(row.get("subject") or ""),
        str(text).replace("\n", " "),
        str(row.get("count") or ""),
        str(row.get("rule_id") or ""),
    )


def render_table(
    table: str, rows: list[dict[str, Any]], now: datetime, width: int = WIDTH
) -> Table:
    """Alerts or actions as a table: headers, aligned, at most `width` characters a line, long
    text cut with an ellipsis (the flexible column, message or details, takes what is left)."""
    return fitted(_COLUMNS[table], [cells(table, row, now) for row in rows], width)


def fitted(columns: Sequence[Column], body: Sequence[tuple[str, ...]], width: int = WIDTH) -> Table:
    """A table of `body` that fits `width`: each column as wide as its widest cell up to its
    cap, the one flexible column takes what the others leave, cut cells end with an ellipsis."""
    from rich.table import Table
    from rich.text import Text

    widths = [
        min(cap or width, max(len(header), *(len(cell[i]) for cell in body)))
        for i, (header, _right, cap) in enumerate(columns)
    ]
    flexible = next(i for i, (_h, _r, cap) in enumerate(columns) if cap is None)
    others = sum(w for i, w in enumerate(widths) if i != flexible) + _GAP * (len(columns) - 1)
    widths[flexible] = max(_MIN_FLEXIBLE, min(widths[flexible], width - others))
    grid = Table(box=None, header_style="bold", pad_edge=False, padding=(0, _GAP // 2))
    for (header, right, _cap), size in zip(columns, widths, strict=True):
        grid.add_column(
            header,
            justify="right" if right else "left",
            no_wrap=True,
            overflow="ellipsis",
            min_width=size,
            max_width=size,
        )
    for cell in body:
        grid.add_row(*(Text(text) for text in cell))
    return grid


def console(stream: TextIO | None = None) -> Console:
    """A console on stdout: the terminal's width, or 100 columns when not a terminal."""
    from rich.console import Console

    out = stream or sys.stdout
    terminal = out.isatty()
    return Console(
        file=out,
        width=None if terminal else WIDTH,
        force_terminal=None if terminal else False,
        highlight=False,
        soft_wrap=False,
    )


def nothing(command: str, args: argparse.Namespace) -> str:
    if args.status:
        return f"no {command} with status {args.status}"
    return f"no {command}" if args.all else f"no open {command}"


def show(
    table: str,
    command: str,
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    out: Console,
    now: datetime,
) -> None:
    """One drawing of the listing (or its JSON lines, or the open-spend summary)."""
    shown = [row for row in rows if wanted(table, row, args)]
    if getattr(args, "summary", False):
        summary = open_spend(shown)
        if args.json:
            for entry in summary:
                out.file.write(json.dumps(entry) + "\n")
        else:
            out.file.write("\n".join(spend_lines(summary)) + "\n")
        return
    if args.json:
        for row in shown:
            out.file.write(json.dumps(full_record(table, row), default=str) + "\n")
        return
    if not shown:
        out.print(nothing(command, args))
        return
    out.print(render_table(table, shown, now, out.width))


def run_listing(
    table: str,
    command: str,
    read: Callable[[], list[dict[str, Any]]],
    args: argparse.Namespace,
    out: Console | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """List once, or with `--watch` redraw every SECONDS until Ctrl-C (or `--watch-count`)."""
    out = out or console()
    if args.watch is None:
        show(table, command, read(), args, out, now())
        return 0
    drawn = 0
    try:
        while args.watch_count is None or drawn < args.watch_count:
            if drawn:
                sleep(max(args.watch, 0.1))
            rows = read()
            if out.is_terminal:
                out.clear()
            if not args.json:  # JSON lines stay JSON lines
                stamp = now().strftime("%Y-%m-%d %H:%M:%S")
                out.print(f"{command} at {stamp} UTC, every {args.watch:g} s (Ctrl-C to stop)")
            show(table, command, rows, args, out, now())
            out.file.flush()
            drawn += 1
    except KeyboardInterrupt:
        pass
    return 0
