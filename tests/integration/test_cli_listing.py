"""`alerts` and `actions` as a shift lead reads them: a table, open items, filters, age, watch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.model import ActionDecision, AlertDecision, Outcome
from agent.store.repository import Store
from tests.support.agent_process import REPO

LONG = "Spindle temperature 97.5 °C above 90 °C for five minutes on the main line " * 3


def action(key: str, kind: str, subject: str, ago: timedelta, **params: object) -> ActionDecision:
    return ActionDecision(
        kind=kind,  # type: ignore[arg-type]
        dedup_key=key,
        site=str(params.pop("site", "plant1")),
        subject=subject,
        params={("sku" if kind == "reorder" else "machine"): subject, **params},  # type: ignore[dict-item]
        rule_id="reorder-point" if kind == "reorder" else "overheating",
        rule_set_hash="abc123",
        matched={"s": {"on_hand": 3}},
        at=datetime.now(UTC) - ago,  # ages are measured from the test's own time
    )


def alert(key: str, severity: str, subject: str, ago: timedelta, message: str) -> AlertDecision:
    return AlertDecision(
        dedup_key=key,
        severity=severity,  # type: ignore[arg-type]
        message=message,
        site="plant1",
        subject=subject,
        rule_id="overheating",
        rule_set_hash="abc123",
        matched={"m": {"temperature": 97.5}},
        at=datetime.now(UTC) - ago,  # ages are measured from the test's own time
    )


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real SQLite file: two open actions and a done one, two firing alerts and a resolved one."""
    url = f"sqlite:///{tmp_path}/agent.db"
    with Store.open(url) as store:
        for decision in (  # one by one: ids 1, 2, 3 in this order
            action("r/BRG", "reorder", "BRG-6204", timedelta(minutes=3), quantity=140),
            action("w/CNC", "work_order", "CNC-07", timedelta(hours=2), task="bearing"),
            action("r/OIL", "reorder", "OIL-HLP46", timedelta(days=4), site="plant2"),
            alert("a/CNC", "critical", "CNC-07", timedelta(minutes=5), LONG),
            alert("a/BRG", "info", "BRG-6204", timedelta(hours=30), "BRG-6204 low"),
            alert("a/PRS", "warning", "PRS-01", timedelta(days=2), "press idle"),
        ):
            store.apply(Outcome([decision]))
        store.transition("action", 3, "done", "test", at=datetime.now(UTC))
        store.transition("alert", 3, "resolve", "test", at=datetime.now(UTC))
    for name in list(os.environ):
        if name.startswith("AGENT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AGENT_DATABASE__URL", url)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, out.splitlines()


def ids(lines: list[str]) -> list[int]:
    return [int(text.split()[0]) for text in lines[1:] if text.split()[0].isdigit()]


def test_actions_table_has_headers_open_items_and_age(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(capsys, "actions")
    assert code == 0
    assert lines[0].split() == [
        "ID", "AGE", "KIND", "STATUS", "SITE", "SUBJECT", "DETAILS", "COUNT", "RULE"
    ]  # fmt: skip
    assert ids(lines) == [2, 1]  # the done reorder (3) is not open
    by_id = {text.split()[0]: text.split() for text in lines[1:]}
    assert by_id["1"][1:3] == ["3m", "reorder"] and "quantity=140" in by_id["1"]
    assert by_id["2"][1:3] == ["2h", "work_order"] and "task=bearing" in by_id["2"]


def test_all_shows_every_status_and_status_still_filters(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ids(run(capsys, "actions", "--all")[1]) == [3, 2, 1]
    code, lines = run(capsys, "actions", "--status", "done")
    assert code == 0 and ids(lines) == [3]
    assert "4d" in lines[1].split()
    assert run(capsys, "alerts", "--status", "acknowledged")[1] == [
        "no alerts with status acknowledged"
    ]


def test_alerts_fit_100_columns_and_cut_long_messages(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(capsys, "alerts")
    assert code == 0
    assert lines[0].split() == [
        "ID", "AGE", "SEVERITY", "STATUS", "SITE", "SUBJECT", "MESSAGE", "COUNT", "RULE"
    ]  # fmt: skip
    assert ids(lines) == [2, 1]
    assert all(len(text) <= 100 for text in lines), max(len(text) for text in lines)
    critical = next(text for text in lines if text.split()[0] == "1")
    assert "Spindle temperature" in critical and "…" in critical
    assert "overheating" in critical  # the columns after the message are still there
    assert next(text for text in lines if text.split()[0] == "2").split()[1] == "1d"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("actions", "--sku", "BRG-6204"), [1]),
        (("actions", "--machine", "CNC-07"), [2]),
        (("actions", "--site", "plant2", "--all"), [3]),
        (("actions", "--subject", "CNC-07"), [2]),
        (("alerts", "--severity", "critical"), [1]),
        (("alerts", "--machine", "CNC-07"), [1]),
        (("alerts", "--sku", "BRG-6204"), [2]),
        (("alerts", "--site", "plant1", "--all"), [3, 2, 1]),
    ],
)
def test_filters(
    database: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expected: list[int]
) -> None:
    code, lines = run(capsys, *argv)
    assert code == 0
    assert ids(lines) == expected


def test_a_filter_that_matches_nothing_says_so(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "actions", "--machine", "NOPE") == (0, ["no open actions"])
    assert run(capsys, "alerts", "--all", "--sku", "NOPE") == (0, ["no alerts"])


def test_json_keeps_every_field_and_no_table(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(capsys, "actions", "--json", "--all")
    assert code == 0
    records = [json.loads(text) for text in lines]
    assert [r["id"] for r in records] == [3, 2, 1]
    done = records[0]
    assert done["status"] == "done" and done["closed_by"] == "test"
    assert done["matched"] == {"s": {"on_hand": 3}} and done["kind"] == "reorder"
    assert {"created_at", "updated_at", "dedup_key", "rule_id", "note"} <= set(done)
    alerts = [json.loads(text) for text in run(capsys, "alerts", "--json")[1]]
    assert [a["id"] for a in alerts] == [2, 1] and alerts[1]["message"] == LONG


def test_watch_redraws_until_the_count(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, "alerts", "--watch", "0.01", "--watch-count", "3")
    assert code == 0
    assert sum(1 for text in lines if text.startswith("alerts at ")) == 3
    assert sum(1 for text in lines if text.split()[:2] == ["ID", "AGE"]) == 3


def test_status_and_all_are_exclusive(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["alerts", "--all", "--status", "firing"])
    assert exit.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_pipe_gets_100_columns(database: str) -> None:
    """As a subprocess, stdout a pipe: the table is cut to 100 columns, no colour codes."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "agent", "alerts", "--all"],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ID") and "\x1b[" not in done.stdout
    assert max(len(text) for text in lines) <= 100
    assert ids(lines) == [3, 2, 1]
