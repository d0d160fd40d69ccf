"""The store against real databases: SQLite files always, PostgreSQL when configured.

One open row per dedup key, repeats counted, transitions, dead letters and all-or-nothing batches.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import Engine, event, insert, text

from agent.errors import ConfigError, StoreError, TransitionError
from agent.model import (
    ActionDecision,
    AlertDecision,
    AlertResolved,
    Decision,
    Outcome,
    Rejected,
    SavedTrack,
    Severity,
    TrackChanges,
)
from agent.store.db import create_schema, open_engine
from agent.store.repository import Store
from agent.store.tables import action_table
from tests.support.databases import DATABASES, database_url

T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
BEARINGS = "reorder/plant1/BRG-6204"
OVERHEAT = "overheat/plant1/press-3"


def reorder(
    key: str = BEARINGS, at: datetime = T0, quantity: int = 300, site: Any = "plant1"
) -> ActionDecision:
    return ActionDecision(
        kind="reorder",
        dedup_key=key,
        site=site,
        subject="BRG-6204",
        params={"sku": "BRG-6204", "quantity": quantity},
        rule_id="reorder-point",
        rule_set_hash="abc123",
        matched={"stock": {"on_hand": 12, "reorder_point": 40, "spare_parts": ["a", "b"]}},
        at=at,
    )


def overheat(
    key: str = OVERHEAT, at: datetime = T0, severity: Severity = "warning", message: str = "hot"
) -> AlertDecision:
    return AlertDecision(
        dedup_key=key,
        severity=severity,
        message=message,
        site="plant1",
        subject="press-3",
        rule_id="overheat",
        rule_set_hash="abc123",
        matched={"m": {"temp_c": 92.5}},
        at=at,
    )


def dead_letter(raw: bytes, at: datetime = T0) -> Rejected:
    return Rejected(topic="factory/plant1/stock/X", raw=raw, reason="not JSON", received_at=at)


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as database:
        yield database


@pytest.fixture(params=DATABASES[1:])
def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """PostgreSQL only: for behaviour SQLite cannot show (its writers never interleave)."""
    with database_url(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open(url) as opened:
        yield opened


# --- one open row per key -------------------------------------------------------------------


def test_reorder_opens_once_until_closed_across_many_applies(store: Store) -> None:
    changes = [store.apply(Outcome([reorder(at=T0 + timedelta(minutes=i))]))[0] for i in range(5)]

    assert [change.created for change in changes] == [True, False, False, False, False]
    assert len({change.id for change in changes}) == 1
    [action] = store.actions()
    assert action["status"] == "open"
    assert action["count"] == 5


def test_repeat_counts_and_moves_last_seen_but_keeps_the_first_params(store: Store) -> None:
    store.apply(Outcome([reorder(quantity=300)]))
    later = T0 + timedelta(minutes=7)

    [change] = store.apply(Outcome([reorder(at=later, quantity=999)]))

    assert not change.created
    assert change.row["count"] == 2
    assert change.row["params"] == {"sku": "BRG-6204", "quantity": 300}
    assert change.row["last_seen"] == later.isoformat()
    assert change.row["updated_at"] == later.isoformat()
    assert change.row["created_at"] == T0.isoformat()


def test_redelivered_old_decision_never_moves_last_seen_back(store: Store) -> None:
    later = T0 + timedelta(minutes=10)
    store.apply(Outcome([reorder(at=later)]))

    store.apply(Outcome([reorder(at=T0)]))

    [action] = store.actions()
    assert action["count"] == 2
    assert action["last_seen"] == later


def test_alert_repeat_keeps_the_first_message_and_records_the_latest_beside_it(
    store: Store,
) -> None:
    store.apply(Outcome([overheat(severity="warning", message="press-3 at 92 °C")]))
    later = T0 + timedelta(minutes=1)
    hotter = replace(
        overheat(at=later, severity="critical", message="press-3 at 97 °C"),
        matched={"m": {"temp_c": 97.0}},
    )

    [change] = store.apply(Outcome([hotter]))

    assert not change.created
    [alert] = store.alerts()
    # the first firing's text goes with its matched facts; the latest goes with the latest
    assert (alert["message"], alert["matched"]) == ("press-3 at 92 °C", {"m": {"temp_c": 92.5}})
    assert (alert["last_message"], alert["last_matched"]) == (
        "press-3 at 97 °C",
        {"m": {"temp_c": 97.0}},
    )
    assert alert["severity"] == "critical"
    assert (alert["first_seen"], alert["last_seen"], alert["count"]) == (T0, later, 2)
    # a late repeat (older than last_seen) is counted but changes neither text nor severity
    store.apply(Outcome([overheat(at=T0 + timedelta(seconds=30), message="late")]))
    [alert] = store.alerts()
    assert (alert["last_message"], alert["severity"], alert["count"]) == (
        "press-3 at 97 °C",
        "critical",
        3,
    )


def test_rule_tracks_are_saved_replaced_and_deleted_with_the_batch(store: Store) -> None:
    pending = SavedTrack("hot", "fp1", {"m": "machine/plant1/press-3"}, T0, False)
    other = SavedTrack("cold", "fp2", {"m": "machine/plant1/press-4"}, T0, False)
    store.apply(Outcome([]), tracks=TrackChanges((pending, other)))
    assert store.tracks() == [other, pending] or store.tracks() == [pending, other]

    firing = replace(pending, firing=True, alert_keys=("hot/plant1/press-3",))
    removed = (("cold", other.fact_keys),)
    store.apply(Outcome([]), tracks=TrackChanges((firing,), removed))
    assert store.tracks() == [firing]
    store.apply(Outcome([overheat()]))
    assert OVERHEAT in store.firing_alert_keys()


def test_done_action_lets_the_next_decision_open_a_new_row(store: Store) -> None:
    [first] = store.apply(Outcome([reorder()]))
    store.transition("action", first.id, "done", "receipt", at=T0 + timedelta(hours=1))

    [second] = store.apply(Outcome([reorder(at=T0 + timedelta(hours=2))]))

    assert second.created
    assert second.id != first.id
    assert [(a["id"], a["status"]) for a in store.actions()] == [
        (second.id, "open"),
        (first.id, "done"),
    ]


def test_resolved_alert_lets_the_next_decision_fire_a_new_row(store: Store) -> None:
    [first] = store.apply(Outcome([overheat()]))
    store.transition("alert", first.id, "resolve", "rule:overheat", at=T0 + timedelta(hours=1))

    [second] = store.apply(Outcome([overheat(at=T0 + timedelta(hours=2))]))

    assert second.created
    assert second.id != first.id
    assert [a["status"] for a in store.alerts()] == ["firing", "resolved"]


def test_same_key_twice_in_one_outcome_is_created_then_updated_in_order(store: Store) -> None:
    decisions: list[Decision] = [
        reorder(key="reorder/plant1/Z"),
        overheat(),
        reorder(key="reorder/plant1/A"),
        reorder(key="reorder/plant1/Z", at=T0 + timedelta(seconds=1)),
        overheat(at=T0 + timedelta(seconds=1)),
    ]

    changes = store.apply(Outcome(decisions))

    assert [(c.table, c.row["dedup_key"], c.created) for c in changes] == [
        ("action", "reorder/plant1/Z", True),
        ("alert", OVERHEAT, True),
        ("action", "reorder/plant1/A", True),
        ("action", "reorder/plant1/Z", False),
        ("alert", OVERHEAT, False),
    ]
    assert changes[0].id == changes[3].id
    assert changes[3].row["count"] == 2
    assert len(store.actions()) == 2
    assert len(store.alerts()) == 1


def test_concurrent_writers_open_exactly_one_row_per_key(url: str) -> None:
    threads, applies, keys = 8, 200, 100
    stores = [Store(open_engine(url)) for _ in range(threads)]
    create_schema(open_engine(url))
    start = threading.Barrier(threads)
    created: list[int] = []
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        store = stores[number]
        try:
            start.wait()
            for i in range(applies):
                key = f"reorder/plant1/SKU-{i % keys:03d}"  # all threads race for each key
                [change] = store.apply(Outcome([reorder(key=key)]))
                if change.created:
                    created.append(change.id)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for store in stores:
        store.close()

    assert failures == []
    with Store.open(url) as store:
        rows = store.actions(status="open")
    assert len(rows) == keys
    assert len({row["dedup_key"] for row in rows}) == keys
    assert sorted(created) == sorted(row["id"] for row in rows)
    assert sum(row["count"] for row in rows) == threads * applies


def test_writer_that_loses_the_race_to_open_a_key_updates_the_winners_row(
    postgres_url: str,
) -> None:
    url = postgres_url
    with Store.open(url) as store, open_engine(url).connect() as winner:
        winner_pid = int(winner.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        winner.execute(insert(action_table), _open_row(BEARINGS))  # not committed yet
        loser: list[Any] = []
        apply = threading.Thread(target=lambda: loser.extend(store.apply(Outcome([reorder()]))))
        apply.start()
        _wait_until_blocked_by(url, winner_pid)
        winner.commit()
        apply.join()

        [change] = loser
        assert not change.created
        assert change.row["count"] == 2
        assert len(store.actions(status="open")) == 1


def _open_row(key: str) -> dict[str, Any]:
    return {
        "kind": "reorder",
        "dedup_key": key,
        "status": "open",
        "site": "plant1",
        "subject": "BRG-6204",
        "params": {},
        "rule_id": "reorder-point",
        "rule_set_hash": "abc123",
        "matched": {},
        "created_at": T0,
        "updated_at": T0,
        "last_seen": T0,
        "count": 1,
    }


def _wait_until_blocked_by(url: str, pid: int, within_s: float = 10.0) -> None:
    """Poll (with a deadline) until some session waits for a lock held by session `pid`."""
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    deadline = time.monotonic() + within_s
    probe = open_engine(url)
    try:
        with probe.connect() as connection:
            while connection.execute(waiting, {"pid": pid}).scalar() == 0:
                assert time.monotonic() < deadline, "the second writer never waited for the first"
                connection.rollback()
    finally:
        probe.dispose()


# --- dead letters, timestamps, atomicity ----------------------------------------------------


def test_dead_letters_keep_the_raw_bytes_intact(store: Store) -> None:
    payloads = [b"\xff\xfe\x00{not json", b"", "ok °C".encode("utf-16")]

    store.apply(Outcome(rejected=[dead_letter(raw) for raw in payloads]))

    letters = store.dead_letters()
    assert [bytes(letter["payload"]) for letter in reversed(letters)] == payloads
    assert all(isinstance(letter["payload"], bytes) for letter in letters)
    assert letters[0]["topic"] == "factory/plant1/stock/X"
    assert letters[0]["reason"] == "not JSON"


def test_datetimes_come_back_aware_in_utc(store: Store) -> None:
    berlin = timezone(timedelta(hours=1))
    at = datetime(2026, 1, 5, 7, 30, 15, 123456, tzinfo=berlin)

    [change] = store.apply(Outcome([reorder(at=at)], [dead_letter(b"x", at=at)]))

    assert change.row["created_at"] == "2026-01-05T06:30:15.123456+00:00"
    [action] = store.actions()
    for value in (
        action["created_at"],
        action["last_seen"],
        store.dead_letters()[0]["received_at"],
    ):
        assert value == at
        assert value.utcoffset() == timedelta(0)
    done = store.transition("action", change.id, "done", "anna", at=at + timedelta(hours=1))
    assert done["closed_at"].tzinfo is not None


def test_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="naive datetime"):
        store.apply(Outcome([reorder(at=datetime(2026, 1, 5, 6, 0))]))
    assert store.actions() == []


def test_store_error_leaves_nothing_half_written(store: Store) -> None:
    store.apply(Outcome([reorder()]))
    broken = reorder(key="reorder/plant1/BROKEN", site=None)  # NOT NULL refuses it
    batch = Outcome(
        [reorder(at=T0 + timedelta(minutes=1)), overheat(), broken],
        [dead_letter(b"\xff")],
    )

    with pytest.raises(StoreError, match="could not store the batch"):
        store.apply(batch)

    [action] = store.actions()
    assert action["count"] == 1
    assert action["last_seen"] == T0
    assert store.alerts() == []
    assert store.dead_letters() == []
    # The store is still usable after the rollback.
    assert store.apply(Outcome([overheat()]))[0].created


def test_non_finite_numbers_are_kept_as_strings(store: Store) -> None:
    decision = reorder()
    odd = ActionDecision(**{**_fields(decision), "params": {"days_of_cover": float("inf")}})

    [change] = store.apply(Outcome([odd]))

    assert change.row["params"] == {"days_of_cover": "inf"}


def _fields(decision: ActionDecision) -> dict[str, Any]:
    return {name: getattr(decision, name) for name in ActionDecision.__slots__}


# --- listing and transitions ----------------------------------------------------------------


def test_lists_are_newest_first_and_filter_by_status(store: Store) -> None:
    changes = store.apply(Outcome([reorder(key=f"reorder/plant1/{n}") for n in range(3)]))
    store.transition("action", changes[1].id, "cancel", "anna", at=T0)

    assert [a["id"] for a in store.actions()] == [c.id for c in reversed(changes)]
    assert [a["id"] for a in store.actions(status="cancelled")] == [changes[1].id]
    assert store.alerts(status="firing") == []
    with pytest.raises(ValueError, match="unknown action status 'closed'"):
        store.actions(status="closed")


@pytest.mark.parametrize(
    ("table", "commands", "status"),
    [
        ("action", ["ack"], "acknowledged"),
        ("action", ["ack", "done"], "done"),
        ("action", ["done"], "done"),
        ("action", ["ack", "cancel"], "cancelled"),
        ("action", ["cancel"], "cancelled"),
        ("alert", ["ack"], "acknowledged"),
        ("alert", ["ack", "resolve"], "resolved"),
        ("alert", ["resolve"], "resolved"),
    ],
)
def test_legal_transitions_record_who_when_and_why(
    store: Store, table: Literal["action", "alert"], commands: list[str], status: str
) -> None:
    [change] = store.apply(Outcome([reorder() if table == "action" else overheat()]))
    at = T0 + timedelta(hours=3)

    for command in commands:
        row = store.transition(table, change.id, command, "anna", note=command, at=at)

    assert row["status"] == status
    assert row["note"] == commands[-1]
    if table == "action":
        assert row["updated_at"] == at
        assert row["acknowledged_by"] == ("anna" if "ack" in commands else None)
        closed = status in ("done", "cancelled")
        assert (row["closed_at"], row["closed_by"]) == ((at, "anna") if closed else (None, None))
    else:
        assert row["acknowledged_by"] == ("anna" if "ack" in commands else None)
        resolved = status == "resolved"
        assert (row["resolved_at"], row["resolved_by"]) == (
            (at, "anna") if resolved else (None, None)
        )
    reread = (store.actions() if table == "action" else store.alerts())[0]
    assert reread == row


@pytest.mark.parametrize(
    ("table", "before", "command", "message"),
    [
        ("alert", ["resolve"], "ack", "alert {id} is resolved; cannot ack"),
        ("alert", ["ack"], "ack", "alert {id} is acknowledged; cannot ack"),
        ("alert", ["resolve"], "resolve", "alert {id} is resolved; cannot resolve"),
        ("action", ["done"], "ack", "action {id} is done; cannot ack"),
        ("action", ["cancel"], "done", "action {id} is cancelled; cannot done"),
        ("action", ["done"], "cancel", "action {id} is done; cannot cancel"),
        ("action", [], "resolve", "unknown action command 'resolve'"),
        ("alert", [], "done", "unknown alert command 'done'"),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(
    store: Store, table: Literal["action", "alert"], before: list[str], command: str, message: str
) -> None:
    [change] = store.apply(Outcome([reorder() if table == "action" else overheat()]))
    for step in before:
        store.transition(table, change.id, step, "anna", at=T0)
    rows_before = store.actions() + store.alerts()

    with pytest.raises(TransitionError) as refused:
        store.transition(table, change.id, command, "bob", note="x", at=T0)

    assert str(refused.value).startswith(message.format(id=change.id))
    assert store.actions() + store.alerts() == rows_before


def test_transition_of_an_unknown_id_is_refused(store: Store) -> None:
    with pytest.raises(TransitionError, match=r"^alert 12 does not exist; cannot ack$"):
        store.transition("alert", 12, "ack", "anna", at=T0)


# --- batching -------------------------------------------------------------------------------


def test_apply_of_500_decisions_is_one_transaction_with_few_statements(url: str) -> None:
    engine = open_engine(url)
    create_schema(engine)
    store = Store(engine)
    counts = _count_statements(engine)
    batch: list[Decision] = [reorder(key=f"reorder/plant1/SKU-{n:03d}") for n in range(500)]

    store.apply(Outcome(batch, [dead_letter(b"x")] * 20))
    new = dict(counts)
    counts.update(begin=0, commit=0, statements=0)
    store.apply(Outcome(batch))
    store.close()

    assert (new["begin"], new["commit"]) == (1, 1)
    # One query for the open keys, one INSERT for the 500 new rows, one for all dead letters
    # (row by row it was 1 + 500 + 1).
    assert new["statements"] == 1 + 1 + 1
    assert (counts["begin"], counts["commit"]) == (1, 1)
    # The open keys, one UPDATE (executemany) for the 500 repeats, one read of their rows.
    assert counts["statements"] == 1 + 1 + 1


def test_an_alert_storm_is_written_with_a_statement_per_shape(url: str) -> None:
    """10,000 alerts raised at once (every sensor stale): a few statements, not 20,000; each
    key's row is the one its change names, and a key that fired before links its episode."""
    engine = open_engine(url)
    create_schema(engine)
    store = Store(engine)
    keys = [f"stale/plant1/m-{n:05d}" for n in range(10_000)]
    first = store.apply(Outcome([overheat(key=keys[0])]))
    store.apply(Outcome([AlertResolved(keys[0], T0, "overheat", "abc123", "back")]))
    counts = _count_statements(engine)

    later = T0 + timedelta(minutes=1)
    changes = store.apply(Outcome([overheat(key=key, at=later) for key in keys]))
    store.close()

    assert [change.row["dedup_key"] for change in changes] == keys
    assert all(change.created and change.row["status"] == "firing" for change in changes)
    assert len({change.id for change in changes}) == 10_000
    assert changes[0].row["previous_id"] == first[0].id
    assert {change.row["previous_id"] for change in changes[1:]} == {None}
    # Per 500 keys: which are open, the latest earlier row of each; one INSERT for them all
    # (SQLAlchemy pages it by the driver's parameter limit).
    assert counts["statements"] <= 20 + 20 + 20
    with Store.open(url) as reopened:
        assert len(reopened.alerts(status="firing")) == 10_000


def test_repeats_and_resolutions_of_many_keys_in_one_batch_keep_each_keys_order(
    store: Store,
) -> None:
    """Each key's decisions in their order, whatever the others do: fire, repeat, resolve,
    fire again over 300 keys in one batch."""
    keys = [f"overheat/plant1/m-{n:03d}" for n in range(300)]
    at = [T0 + timedelta(seconds=s) for s in range(4)]
    decisions: list[Decision] = []
    for step in range(4):
        for number, key in enumerate(keys):
            if step == 2 and number % 2:
                decisions.append(AlertResolved(key, at[2], "overheat", "abc123", "cooled"))
            elif step < 3 or number % 2:
                decisions.append(overheat(key=key, at=at[step], message=f"step {step}"))

    changes = store.apply(Outcome(decisions))

    by_key: dict[str, list[tuple[bool, str, int]]] = {}
    for change in changes:
        row = change.row
        by_key.setdefault(row["dedup_key"], []).append(
            (change.created, row["status"], row["count"])
        )
    for number, key in enumerate(keys):
        if number % 2:  # fired, repeated, resolved, fired again: a new episode
            assert by_key[key] == [
                (True, "firing", 1),
                (False, "firing", 2),
                (False, "resolved", 2),
                (True, "firing", 1),
            ]
        else:
            assert by_key[key] == [(True, "firing", 1), (False, "firing", 2), (False, "firing", 3)]
    alerts = store.alerts()
    assert len(alerts) == 300 + 150
    assert sum(alert["status"] == "firing" for alert in alerts) == 300
    resolved = {
        alert["dedup_key"]: alert["id"] for alert in alerts if alert["status"] == "resolved"
    }
    for alert in alerts:
        if alert["status"] == "firing" and alert["dedup_key"] in resolved:
            assert alert["previous_id"] == resolved[alert["dedup_key"]]


def _count_statements(engine: Engine) -> dict[str, int]:
    counts = {"begin": 0, "commit": 0, "statements": 0}

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "SELECT", "DELETE")):
            counts["statements"] += 1

    def on(name: str) -> Any:
        def count(*_args: Any) -> None:
            counts[name] += 1

        return count

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "begin", on("begin"))
    event.listen(engine, "commit", on("commit"))
    return counts


# --- opening the database -------------------------------------------------------------------


@pytest.mark.parametrize("synchronous", ["FULL", "normal"])
def test_sqlite_file_opens_with_wal_busy_timeout_and_chosen_synchronous(
    tmp_path: Path, synchronous: str
) -> None:
    path = tmp_path / "missing" / "dir" / "agent.db"
    engine = open_engine(f"sqlite:///{path}", sqlite_synchronous=synchronous)

    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    engine.dispose()

    assert path.exists()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "foreign_keys": 1,
        "synchronous": {"FULL": 2, "NORMAL": 1}[synchronous.upper()],
    }


def test_sqlite_write_transaction_takes_the_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    engine = open_engine(f"sqlite:///{path}")
    create_schema(engine)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)

    with engine.begin() as connection:
        connection.execute(text("SELECT 1"))
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
    engine.dispose()


def test_sqlite_reads_do_not_wait_for_the_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    with Store.open(url) as store:
        store.apply(Outcome([reorder()]))
        writer = sqlite3.connect(tmp_path / "agent.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            assert len(store.actions()) == 1
        finally:
            writer.execute("ROLLBACK")
            writer.close()


def test_in_memory_sqlite_is_one_shared_database(tmp_path: Path) -> None:
    with Store.open("sqlite://") as store:
        store.apply(Outcome([reorder()], [dead_letter(b"\x00")]))
        store.apply(Outcome([reorder()]))

        assert store.actions()[0]["count"] == 2
        assert len(store.dead_letters()) == 1


def test_postgresql_url_is_mapped_to_psycopg() -> None:
    engine = open_engine("postgresql://agent:secret@db.example:5432/agent")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


@pytest.mark.parametrize(
    "url", ["mysql://agent@db/agent", "postgresql+asyncpg://agent@db/agent", "not a url"]
)
def test_unsupported_urls_are_refused_with_a_hint(url: str) -> None:
    with pytest.raises(StoreError, match=re.escape("sqlite:///path/to/agent.db")):
        open_engine(url)


def test_unknown_sqlite_synchronous_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sqlite_synchronous 'SOMETIMES'"):
        open_engine("sqlite://", sqlite_synchronous="SOMETIMES")


def test_unreachable_postgresql_is_a_store_error_without_the_password() -> None:
    url = "postgresql://agent:s3cret@127.0.0.1:1/agent?connect_timeout=2"
    with pytest.raises(StoreError, match="could not create the schema") as refused:
        Store.open(url)
    assert "s3cret" not in str(refused.value)


def test_unwritable_sqlite_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the database directory"):
        open_engine(f"sqlite:///{blocker / 'sub' / 'agent.db'}")


def test_fire_resolve_fire_in_one_batch_leaves_a_resolved_episode_and_a_firing_one(
    store: Store,
) -> None:
    """A machine down, running, down again inside one batch: two episodes, the last firing.
    Applying every firing before every resolution counted the second as a repeat of the first
    and ended resolved (replay decided differently by batch size: 304 / 298 / 296 rows)."""
    later = T0 + timedelta(seconds=10)
    resolved = AlertResolved(OVERHEAT, T0 + timedelta(seconds=5), "overheat", "abc123", "cooled")
    store.apply(Outcome([overheat(at=T0), resolved, overheat(at=later)]))
    second, first = store.alerts()  # newest first
    assert (first["status"], first["count"], first["resolved_at"]) == ("resolved", 1, resolved.at)
    assert (second["status"], second["first_seen"], second["previous_id"]) == (
        "firing",
        later,
        first["id"],
    )
