"""The states of alerts and actions, and the one table of the moves between them.

An alert row is `firing`, `acknowledged` or `resolved`; an action row `open`, `acknowledged`,
`done` or `cancelled`. A row moves on an event: a person's command (`ack`, `resolve`, `done`,
`cancel`, from MQTT, the CLI or the console) or the agent's own (its rule resolves or closes
it, a receipt closes a reorder). `MOVES` lists every allowed move; any other (row, status,
event) is refused, and the reason a person reads comes from here too. The store applies the
moves (`Store.transition`), command parsing checks a command's target with it;
`docs/design.md` shows the same table, and `tests/unit/test_states.py` holds the copies in SQL
(the open-row predicate), the CLI listing and the console to it.

A rule's match on a tuple of facts is not a row: it is `pending` (its condition holds, its `for`
not yet elapsed) or `firing`, and `MATCH_MOVES` lists its moves on what the core sees (its
condition holds, holds with the `for` elapsed, stops holding; the rule's `resolve_when` guards
the last). Each move names what the core must do: nothing, fire (open or repeat an alert row:
`MOVES` from there), repeat, forget the match, or resolve its rows (`rule_resolved`). The
lifecycle (`agent.decisions.lifecycle`) keeps the matches and applies these moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, NamedTuple, get_args

from agent.errors import TransitionError

Table = Literal["alert", "action"]
AlertStatus = Literal["firing", "acknowledged", "resolved"]
ActionStatus = Literal["open", "acknowledged", "done", "cancelled"]
Status = AlertStatus | ActionStatus
Command = Literal["ack", "resolve", "done", "cancel"]  # a person's
Automatic = Literal["rule_resolved", "rule_closed", "receipt_closed"]  # the agent's own
Event = Command | Automatic

TABLES: Final[tuple[Table, ...]] = get_args(Table)
COMMANDS: Final[tuple[Command, ...]] = get_args(Command)
STATUSES: Final[Mapping[Table, tuple[Status, ...]]] = MappingProxyType(
    {"alert": get_args(AlertStatus), "action": get_args(ActionStatus)}
)

# (row, its status, the event) -> its new status. Nothing else is allowed.
MOVES: Final[Mapping[tuple[Table, Status, Event], Status]] = MappingProxyType(
    {
        ("alert", "firing", "ack"): "acknowledged",
        ("alert", "firing", "resolve"): "resolved",
        ("alert", "acknowledged", "resolve"): "resolved",
        ("alert", "firing", "rule_resolved"): "resolved",
        ("alert", "acknowledged", "rule_resolved"): "resolved",
        ("action", "open", "ack"): "acknowledged",
        ("action", "open", "done"): "done",
        ("action", "acknowledged", "done"): "done",
        ("action", "open", "cancel"): "cancelled",
        ("action", "acknowledged", "cancel"): "cancelled",
        ("action", "open", "rule_closed"): "done",
        ("action", "acknowledged", "rule_closed"): "done",
        ("action", "open", "receipt_closed"): "done",
        ("action", "acknowledged", "receipt_closed"): "done",
    }
)


@dataclass(frozen=True, slots=True)
class Step:
    """One event on one kind of row: the statuses it may start from, and the one it ends in."""

    table: Table
    event: Event
    sources: tuple[Status, ...]
    to: Status


def _steps() -> dict[tuple[str, str], Step]:
    sources: dict[tuple[Table, Event], list[Status]] = {}
    ends: dict[tuple[Table, Event], Status] = {}
    for (table, status, event), to in MOVES.items():
        if status not in STATUSES[table] or to not in STATUSES[table]:
            raise AssertionError(f"{table} has no status {status!r} or {to!r}")
        if ends.setdefault((table, event), to) != to:
            raise AssertionError(f"{event} on an {table} must end in one status")
        sources.setdefault((table, event), []).append(status)
    return {key: Step(*key, tuple(sources[key]), ends[key]) for key in sources}


# Looked up by the words that came in (a command from MQTT is any string until checked).
_STEPS: Final[Mapping[tuple[str, str], Step]] = MappingProxyType(_steps())
_MOVES: Final[Mapping[tuple[str, str, str], Status]] = MappingProxyType(dict(MOVES.items()))

# The statuses of an open row: the agent's own events close it from these (the database's
# one-open-row-per-key index says the same in SQL).
OPEN: Final[Mapping[Table, tuple[Status, ...]]] = MappingProxyType(
    {
        "alert": _STEPS["alert", "rule_resolved"].sources,
        "action": _STEPS["action", "rule_closed"].sources,
    }
)

# The commands a person may give on each kind of row, and the rows each command applies to
# (the first is the default: `ack 12` means alert 12).
COMMANDS_OF: Final[Mapping[str, tuple[Command, ...]]] = MappingProxyType(
    {table: tuple(c for c in COMMANDS if (table, c) in _STEPS) for table in TABLES}
)
TARGETS: Final[Mapping[str, tuple[Table, ...]]] = MappingProxyType(
    {c: tuple(t for t in TABLES if c in COMMANDS_OF[t]) for c in COMMANDS}
)


def move(table: str, status: str, event: str) -> Status | None:
    """The status a row in `status` gets on `event`; None when the move is not allowed."""
    return _MOVES.get((table, status, event))


def allowed(table: str, status: str) -> tuple[Command, ...]:
    """The commands a person may give on a row in `status`, in `COMMANDS` order."""
    return tuple(c for c in COMMANDS_OF.get(table, ()) if move(table, status, c) is not None)


def step(table: str, command: str) -> Step:
    """The move a command makes on a kind of row; TransitionError for an unknown one."""
    known = COMMANDS_OF.get(table)
    if known is None:
        raise TransitionError(f"unknown table {table!r}; use action or alert")
    if command not in known:
        raise TransitionError(f"unknown {table} command {command!r}; use one of {', '.join(known)}")
    return _STEPS[table, command]


def refusal(table: str, id: int, status: str | None, command: str) -> str:
    """Why a command on row `id` (in `status`; None: there is no such row) is refused."""
    if status is None:
        return f"{table} {id} does not exist; cannot {command}"
    return f"{table} {id} is {status}; cannot {command}"


def target(command: str, id: int, chosen: str | None) -> Table:
    """The kind of row a command applies to: `chosen`, else the command's default (its first).
    TransitionError for an unknown command or one that does not apply to `chosen`."""
    tables = TARGETS.get(command)
    if tables is None:
        raise TransitionError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    picked = chosen or tables[0]
    for table in tables:
        if table == picked:
            return table
    raise TransitionError(f"{command} applies to {' or '.join(tables)}, not to {picked} {id}")


# A rule's match (the lifecycle's track), before and around its alert row.
MatchState = Literal["pending", "firing"]
# What the core sees: the condition holds (`for` not yet elapsed), holds and is due (`for`
# elapsed), or stops holding.
MatchEvent = Literal["holds", "due", "stops"]
# The guard on `stops`: the rule has no `resolve_when`, it does not hold (or a fact is gone), or
# it holds.
ResolveWhen = Literal["absent", "unmet", "met"]
# What the core must do.
Outcome = Literal["nothing", "fire", "repeat", "forget", "resolve"]

MATCH_STATES: Final[tuple[MatchState, ...]] = get_args(MatchState)
MATCH_EVENTS: Final[tuple[MatchEvent, ...]] = get_args(MatchEvent)
GUARDS: Final[tuple[ResolveWhen, ...]] = get_args(ResolveWhen)


class MatchMove(NamedTuple):
    outcome: Outcome
    to: MatchState | None  # None: the match is forgotten (its track dropped)


# (match state, event, guard; None: not read) -> the move. A match not tracked yet is pending
# from the time it was first seen to hold (a rule without `for` is due at once).
MATCH_MOVES: Final[Mapping[tuple[MatchState, MatchEvent, ResolveWhen | None], MatchMove]] = (
    MappingProxyType(
        {
            ("pending", "holds", None): MatchMove("nothing", "pending"),  # waits for its `for`
            ("pending", "due", None): MatchMove("fire", "firing"),
            ("pending", "stops", None): MatchMove("forget", None),  # it never fires
            ("firing", "holds", None): MatchMove("repeat", "firing"),  # a new message: counted
            ("firing", "due", None): MatchMove("repeat", "firing"),
            ("firing", "stops", "absent"): MatchMove("forget", None),  # the row waits for a person
            ("firing", "stops", "unmet"): MatchMove("nothing", "firing"),  # hysteresis
            ("firing", "stops", "met"): MatchMove("resolve", None),  # its rows: `rule_resolved`
        }
    )
)


def _unguarded() -> dict[tuple[str, str], MatchMove]:
    """The moves that read no guard, by (state, event); checks that every (state, event) has
    either one such move or one for every guard, and that each move ends where its outcome says."""
    unguarded: dict[tuple[str, str], MatchMove] = {}
    guarded: dict[tuple[str, str], set[str]] = {}
    ends: dict[str, tuple[str | None, ...]] = {
        "fire": ("firing",),
        "forget": (None,),
        "resolve": (None,),
    }  # nothing and repeat stay
    for (state, event, guard), move in MATCH_MOVES.items():
        if move.to not in ends.get(move.outcome, (state,)):
            raise AssertionError(f"{state} on {event} must not {move.outcome} into {move.to}")
        if guard is None:
            unguarded[state, event] = move
        else:
            guarded.setdefault((state, event), set()).add(guard)
    for state in MATCH_STATES:
        for event in MATCH_EVENTS:
            pair = (state, event)
            one = pair in unguarded and pair not in guarded
            every = pair not in unguarded and guarded.get(pair) == set(GUARDS)
            if not (one or every):
                raise AssertionError(f"{state} on {event} needs one move, or one per guard")
    return unguarded


_UNGUARDED: Final[Mapping[tuple[str, str], MatchMove]] = MappingProxyType(_unguarded())


def match_move(
    state: MatchState, event: MatchEvent, guard: Callable[[], ResolveWhen] | None = None
) -> MatchMove:
    """The move of a match in `state` on `event`. `guard` (the rule's `resolve_when` on the
    match's facts) is called only when the table reads it: a dict lookup otherwise."""
    move = _UNGUARDED.get((state, event))
    if move is not None:
        return move
    if guard is None:
        raise ValueError(f"{state} on {event} needs the resolve_when guard")
    return MATCH_MOVES[state, event, guard()]
