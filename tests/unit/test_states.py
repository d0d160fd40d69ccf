"""The one table of alert and action moves: every (row, status, event) allowed or refused, with
the reason a person reads, and the copies elsewhere (SQL, console, CLI listing) agreeing; and
the table of a rule's match before and around its row: every (state, event, guard) pinned."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from agent.cli import listing
from agent.decisions import states
from agent.decisions.commands import command
from agent.errors import TransitionError
from agent.http.web import routes, views
from agent.ingest import schema
from agent.model import ACTION_STATUSES, ALERT_STATUSES
from agent.store import tables

# Written out, not derived: a changed move must change this table too.
EXPECTED: dict[tuple[str, str], dict[str, str | None]] = {
    ("alert", "firing"): {
        "ack": "acknowledged",
        "resolve": "resolved",
        "done": None,
        "cancel": None,
        "rule_resolved": "resolved",
        "rule_closed": None,
        "receipt_closed": None,
    },
    ("alert", "acknowledged"): {
        "ack": None,
        "resolve": "resolved",
        "done": None,
        "cancel": None,
        "rule_resolved": "resolved",
        "rule_closed": None,
        "receipt_closed": None,
    },
    ("alert", "resolved"): dict.fromkeys(
        ("ack", "resolve", "done", "cancel", "rule_resolved", "rule_closed", "receipt_closed")
    ),
    ("action", "open"): {
        "ack": "acknowledged",
        "resolve": None,
        "done": "done",
        "cancel": "cancelled",
        "rule_resolved": None,
        "rule_closed": "done",
        "receipt_closed": "done",
    },
    ("action", "acknowledged"): {
        "ack": None,
        "resolve": None,
        "done": "done",
        "cancel": "cancelled",
        "rule_resolved": None,
        "rule_closed": "done",
        "receipt_closed": "done",
    },
    ("action", "done"): dict.fromkeys(
        ("ack", "resolve", "done", "cancel", "rule_resolved", "rule_closed", "receipt_closed")
    ),
    ("action", "cancelled"): dict.fromkeys(
        ("ack", "resolve", "done", "cancel", "rule_resolved", "rule_closed", "receipt_closed")
    ),
}

PAIRS = [
    (table, status, event, to)
    for (table, status), moves in EXPECTED.items()
    for event, to in moves.items()
]


def test_the_expected_table_covers_every_status_and_event() -> None:
    events = (*states.COMMANDS, "rule_resolved", "rule_closed", "receipt_closed")
    assert set(EXPECTED) == {(t, s) for t in states.TABLES for s in states.STATUSES[t]}
    assert all(tuple(moves) == events for moves in EXPECTED.values())


@pytest.mark.parametrize(("table", "status", "event", "to"), PAIRS)
def test_every_move_is_allowed_or_refused(table: str, status: str, event: str, to: str) -> None:
    assert states.move(table, status, event) == to


def test_the_table_has_no_move_beyond_those() -> None:
    allowed = {(t, s, e): to for t, s, e, to in PAIRS if to is not None}
    assert dict(states.MOVES) == allowed


@pytest.mark.parametrize(("table", "status", "event", "to"), PAIRS)
def test_a_persons_command_starts_from_the_tables_statuses(
    table: str, status: str, event: str, to: str | None
) -> None:
    """What the store's one UPDATE may start from and ends in, and the reason it gives."""
    if event not in states.COMMANDS_OF[table]:
        known = ", ".join(states.COMMANDS_OF[table])
        with pytest.raises(TransitionError) as raised:
            states.step(table, event)
        assert str(raised.value) == f"unknown {table} command {event!r}; use one of {known}"
        return
    step = states.step(table, event)
    assert (status in step.sources) == (to is not None)
    if to is not None:
        assert step.to == to
    else:
        reason = states.refusal(table, 7, status, event)
        assert reason == f"{table} 7 is {status}; cannot {event}"


def test_commands_per_row_and_the_default_target() -> None:
    assert states.COMMANDS_OF == {"alert": ("ack", "resolve"), "action": ("ack", "done", "cancel")}
    assert states.TARGETS == {
        "ack": ("alert", "action"),
        "resolve": ("alert",),
        "done": ("action",),
        "cancel": ("action",),
    }
    assert states.allowed("alert", "firing") == ("ack", "resolve")
    assert states.allowed("alert", "acknowledged") == ("resolve",)
    assert states.allowed("action", "open") == ("ack", "done", "cancel")
    assert states.allowed("action", "acknowledged") == ("done", "cancel")
    assert states.allowed("action", "done") == ()
    assert states.OPEN == {"alert": ("firing", "acknowledged"), "action": ("open", "acknowledged")}


def test_refusal_reasons() -> None:
    assert states.refusal("alert", 99, None, "ack") == "alert 99 does not exist; cannot ack"
    with pytest.raises(TransitionError, match=r"^unknown table 'alerts'; use action or alert$"):
        states.step("alerts", "ack")
    with pytest.raises(
        TransitionError, match=r"^unknown command 'close'; use one of ack, resolve, done, cancel$"
    ):
        command("close", 3, "ann")
    with pytest.raises(TransitionError, match=r"^done applies to action, not to alert 3$"):
        command("done", 3, "ann", target="alert")
    with pytest.raises(TransitionError, match=r"^ack applies to alert or action, not to row 3$"):
        command("ack", 3, "ann", target="row")
    assert command("ack", 3, "ann").target == "alert"
    assert command("done", 3, "ann").target == "action"


def test_the_copies_elsewhere_agree_with_the_table() -> None:
    """The statuses and open rows written out in SQL, the CLI listing, the console and the MQTT
    command schema are the table's (a move added here must reach them)."""
    assert states.STATUSES == {"alert": ALERT_STATUSES, "action": ACTION_STATUSES}
    predicates: dict[states.Table, str] = {"alert": tables.ALERT_OPEN, "action": tables.ACTION_OPEN}
    for table, predicate in predicates.items():
        quoted = ", ".join(f"'{status}'" for status in states.OPEN[table])
        assert predicate == f"status IN ({quoted})"
    assert listing.OPEN_STATUSES == states.OPEN
    assert (states.OPEN["alert"], states.OPEN["action"]) == (views.ALERT_OPEN, views.ACTION_OPEN)
    assert schema.COMMANDS == states.COMMANDS
    for status in states.STATUSES["alert"]:
        offered = views._alert_commands(status)
        assert set(offered) <= set(states.allowed("alert", status))
    for name, word in routes._COMMAND_WORDS.items():
        assert word in {states.step(t, name).to for t in states.TARGETS[name]}


# Written out, not derived: (match state, event) -> the resolve_when guard -> (what the core
# does, the state after; None: the match is forgotten).
EXPECTED_MATCH: dict[tuple[str, str], dict[str, tuple[str, str | None]]] = {
    ("pending", "holds"): dict.fromkeys(("absent", "unmet", "met"), ("nothing", "pending")),
    ("pending", "due"): dict.fromkeys(("absent", "unmet", "met"), ("fire", "firing")),
    ("pending", "stops"): dict.fromkeys(("absent", "unmet", "met"), ("forget", None)),
    ("firing", "holds"): dict.fromkeys(("absent", "unmet", "met"), ("repeat", "firing")),
    ("firing", "due"): dict.fromkeys(("absent", "unmet", "met"), ("repeat", "firing")),
    ("firing", "stops"): {
        "absent": ("forget", None),
        "unmet": ("nothing", "firing"),
        "met": ("resolve", None),
    },
}
# The (state, event) pairs whose move reads the guard; the others must not evaluate it.
GUARDED = {("firing", "stops")}

MATCH_TRIPLES = [
    (state, event, guard, outcome, to)
    for (state, event), by_guard in EXPECTED_MATCH.items()
    for guard, (outcome, to) in by_guard.items()
]


def test_the_expected_match_table_covers_every_state_event_and_guard() -> None:
    assert states.MATCH_STATES == ("pending", "firing")
    assert states.MATCH_EVENTS == ("holds", "due", "stops")
    assert states.GUARDS == ("absent", "unmet", "met")
    assert set(EXPECTED_MATCH) == {(s, e) for s in states.MATCH_STATES for e in states.MATCH_EVENTS}
    assert all(tuple(by_guard) == states.GUARDS for by_guard in EXPECTED_MATCH.values())


@pytest.mark.parametrize(("state", "event", "guard", "outcome", "to"), MATCH_TRIPLES)
def test_every_match_move_is_pinned(
    state: states.MatchState,
    event: states.MatchEvent,
    guard: states.ResolveWhen,
    outcome: str,
    to: str | None,
) -> None:
    read: list[str] = []

    def resolve_when() -> states.ResolveWhen:
        read.append(guard)
        return guard

    assert states.match_move(state, event, resolve_when) == (outcome, to)
    assert read == ([guard] if (state, event) in GUARDED else [])  # read only where it matters


def test_the_match_table_has_no_move_beyond_those() -> None:
    expected: dict[tuple[str, str, str | None], tuple[str, str | None]] = {}
    for (state, event), by_guard in EXPECTED_MATCH.items():
        if (state, event) in GUARDED:
            expected.update({(state, event, g): move for g, move in by_guard.items()})
        else:
            expected[state, event, None] = by_guard["absent"]
    assert {key: tuple(move) for key, move in states.MATCH_MOVES.items()} == expected


def test_a_guarded_move_without_its_guard_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^firing on stops needs the resolve_when guard$"):
        states.match_move("firing", "stops")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (  # a guard left out
            {("firing", "stops", "met"): None},
            r"^firing on stops needs one move, or one per guard$",
        ),
        (  # an unguarded move next to the guarded ones
            {("firing", "stops", None): states.MatchMove("forget", None)},
            r"^firing on stops needs one move, or one per guard$",
        ),
        (  # a fire that stays pending
            {("pending", "due", None): states.MatchMove("fire", "pending")},
            r"^pending on due must not fire into pending$",
        ),
        (  # a repeat that changes the state
            {("firing", "holds", None): states.MatchMove("repeat", "pending")},
            r"^firing on holds must not repeat into pending$",
        ),
    ],
)
def test_a_match_table_with_a_gap_or_a_wrong_end_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    changes: dict[tuple[str, str, str | None], states.MatchMove | None],
    reason: str,
) -> None:
    """The checks made when the module loads (None: the move is taken out)."""
    table: dict[tuple[str, str, str | None], states.MatchMove] = {
        key: move for key, move in states.MATCH_MOVES.items()
    }
    for key, move in changes.items():
        table.pop(key, None)
        if move is not None:
            table[key] = move
    monkeypatch.setattr(states, "MATCH_MOVES", MappingProxyType(table))
    with pytest.raises(AssertionError, match=reason):
        states._unguarded()
