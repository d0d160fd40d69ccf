"""The listing's pure parts: age, filters, the fitted table and the rule as written."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from agent.cli.explain import as_written
from agent.cli.listing import add_arguments, age, fitted, run_listing, wanted

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(seconds=0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(minutes=3, seconds=59), "3m"),
        (timedelta(hours=2, minutes=59), "2h"),
        (timedelta(days=4, hours=23), "4d"),
        (timedelta(seconds=-30), "0s"),  # a clock a little ahead: never negative
    ],
)
def test_age(ago: timedelta, shown: str) -> None:
    assert age((NOW - ago).isoformat(), NOW) == shown
    assert age(None, NOW) == ""


def parse(table: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, table)
    return parser.parse_args(list(argv))


def test_open_statuses_by_default_all_and_one_status() -> None:
    rows = [{"status": s} for s in ("open", "acknowledged", "done", "cancelled")]
    assert [r["status"] for r in rows if wanted("action", r, parse("action"))] == [
        "open",
        "acknowledged",
    ]
    assert len([r for r in rows if wanted("action", r, parse("action", "--all"))]) == 4
    only = parse("action", "--status", "done")
    assert [r["status"] for r in rows if wanted("action", r, only)] == ["done"]


def test_machine_and_sku_match_the_params_or_the_subject() -> None:
    args = parse("action", "--machine", "CNC-07")
    by_param = {"status": "open", "subject": "BRG-6204", "params": {"machine": "CNC-07"}}
    by_subject = {"status": "open", "subject": "CNC-07", "params": {}}
    other = {"status": "open", "subject": "PRS-01", "params": {"machine": "PRS-01"}}
    assert [wanted("action", r, args) for r in (by_param, by_subject, other)] == [
        True,
        True,
        False,
    ]


def test_a_fitted_table_keeps_to_the_width_and_cuts_the_flexible_column() -> None:
    columns = (("ID", True, 8), ("TEXT", False, None), ("RULE", False, 10))
    body = [("1", "x" * 300, "overheating-long-name")]
    out = io.StringIO()
    Console(file=out, width=60, force_terminal=False).print(fitted(columns, body, 60))
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["ID", "TEXT", "RULE"]
    assert all(len(text) <= 60 for text in lines)
    assert lines[1].split()[1].endswith("…") and lines[1].rstrip().endswith("overheati…")


def test_watch_redraws_and_sleeps_between_not_after() -> None:
    args = parse("alert", "--watch", "2", "--watch-count", "3")
    slept: list[float] = []
    reads: list[int] = []

    def read() -> list[dict[str, object]]:
        reads.append(1)
        return []

    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False)
    assert run_listing("alert", "alerts", read, args, console, lambda: NOW, slept.append) == 0
    assert len(reads) == 3 and slept == [2.0, 2.0]
    assert out.getvalue().count("no open alerts") == 3


def test_the_rule_as_written_by_text(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "rules:\n"
        "  - id: first\n"
        "    when:\n"
        "      s: on_hand < 1\n"
        "\n"
        "  - description: id not first\n"
        "    id: 'second'  # a comment\n"
        "    when:\n"
        "      s: on_hand < 2\n"
    )
    assert as_written([tmp_path], "first") == (
        f"{tmp_path / 'a.yaml'}:2",
        ["- id: first", "  when:", "    s: on_hand < 1"],
    )
    where, lines = as_written([tmp_path], "second")
    assert where.endswith("a.yaml:6") and lines[0] == "- description: id not first"
    assert lines[-1] == "    s: on_hand < 2"
    assert as_written([tmp_path], "third") == ("", [])
