"""Backtest a policy change: replay one recording through two rule sets, print what differs.

`factory-agent replay FILE --rules NEW --against OLD`: `+` lines only the new rules decide,
`-` lines only the old ones did; decisions both make (same kind, key, time, content) are omitted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.app.policy import Policy
from agent.app.replay import replay_with
from agent.config import Settings
from agent.decisions.report import line, record
from agent.store.repository import Store, StoredChange, json_friendly

# Row fields that say what was decided (ids, rule-set hashes and provenance may differ freely).
_ACTION_FIELDS = ("kind", "key", "at", "params", "status")
_ALERT_FIELDS = ("key", "at", "severity", "message", "status")


@dataclass(frozen=True, slots=True)
class Difference:
    sign: str  # "+" only the new rules, "-" only the old ones
    rec: dict[str, Any]


def decisions(path: Path, policy: Policy, settings: Settings) -> list[dict[str, Any]]:
    """The rows a replay of `path` under `policy` opens, as records."""
    with Store.open("sqlite://") as store:
        result = replay_with(path, policy, store, settings)
        return _final(store, result.changes)


def _final(store: Store, changes: Iterable[StoredChange]) -> list[dict[str, Any]]:
    opened = [(c.table, c.id) for c in changes if c.created]
    rows = {("action", r["id"]): r for r in store.actions()}
    rows.update({("alert", r["id"]): r for r in store.alerts()})
    return [record(table, json_friendly(rows[(table, id)])) for table, id in opened]


def _identity(rec: dict[str, Any]) -> str:
    names = _ACTION_FIELDS if rec["type"] == "action" else _ALERT_FIELDS
    return json.dumps([rec["type"], *(rec.get(n) for n in names)], sort_keys=True, default=str)


def compare(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[Difference]:
    """Decisions in one list and not the other (as multisets), in time order."""
    remaining: dict[str, int] = {}
    for rec in old:
        remaining[_identity(rec)] = remaining.get(_identity(rec), 0) + 1
    only_new: list[dict[str, Any]] = []
    for rec in new:
        key = _identity(rec)
        if remaining.get(key, 0) > 0:
            remaining[key] -= 1
        else:
            only_new.append(rec)
    only_old: list[dict[str, Any]] = []
    for rec in old:
        key = _identity(rec)
        if remaining.get(key, 0) > 0:
            remaining[key] -= 1
            only_old.append(rec)
    diffs = [Difference("+", r) for r in only_new] + [Difference("-", r) for r in only_old]
    return sorted(diffs, key=lambda d: (str(d.rec.get("at")), d.sign))


def backtest(path: Path, new: Policy, old: Policy, settings: Settings, as_json: bool) -> int:
    """Print the differences; exit code 0 (a difference is information, not an error)."""
    new_recs = decisions(path, new, settings)
    old_recs = decisions(path, old, settings)
    diffs = compare(new_recs, old_recs)
    for diff in diffs:
        if as_json:
            print(json.dumps({"change": diff.sign, **diff.rec}, default=str))
        else:
            print(f"{diff.sign} {line(diff.rec)}")
    added = sum(d.sign == "+" for d in diffs)
    print(
        f"backtest: new rules {new.ruleset.hash} made {len(new_recs)} decisions, old rules "
        f"{old.ruleset.hash} made {len(old_recs)}; {added} only new, {len(diffs) - added} only old",
        file=sys.stderr,
    )
    return 0
