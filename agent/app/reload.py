"""Reload the policy between two batches: the rule files and the master data, each validated
whole before anything is swapped.

A change that does not load is refused: the running rules or master data stay, and an alert names
the file, line and reason; the next change that loads resolves it. Master data is read again
only when its files' text changed, and checked with the same loader and limits as at start. The
rules are checked against the master data they will run with: a master-data change the running
rules no longer check against (a field they read is gone) is refused, naming the rule.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import structlog

from agent.app.core import Core
from agent.app.policy import Policy
from agent.errors import EngineError, MasterDataError, RuleError
from agent.model import AlertDecision, AlertResolved, Decision
from agent.rulebook.fields import FactSchema, build_schema
from agent.rulebook.loader import load_rules
from agent.rulebook.rules import RuleSet
from agent.world.masterdata import (
    MasterData,
    first_problem,
    load_masterdata,
    masterdata_changes,
    masterdata_digest,
)

log = structlog.get_logger(__name__)

RULES_ALERT_KEY: Final = "agent/rules/reload-refused"
RULES_RULE: Final = "rules-reload"
MASTERDATA_ALERT_KEY: Final = "agent/masterdata/reload-refused"
MASTERDATA_RULE: Final = "masterdata-reload"
_SHOWN_PROBLEMS: Final = 20


@dataclass(frozen=True, slots=True)
class PolicyFiles:
    """Where the policy is read from: `[rules] path`, `[masterdata] items` and `machines`."""

    rules: Path
    items: Path
    machines: Path

    def all(self) -> list[Path]:
        return [self.rules, self.items, self.machines]


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a change was refused, located: `file:line: reason` (line 0: the file as a whole)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.reason}"
            if self.line
            else f"{self.file}: {self.reason}"
        )


@dataclass(slots=True)
class Reloaded:
    """What a reload did: the policy running now, and the decisions to commit (the rules'
    answers to the change, and the reload alerts raised or resolved)."""

    policy: Policy
    decisions: list[Decision] = field(default_factory=list)
    rules_changed: bool = False
    masterdata_changed: bool = False
    rules_refused: bool = False
    masterdata_refused: str = ""  # the first problem of a refused master-data change


def reload_policy(
    core: Core, policy: Policy, files: PolicyFiles, now: datetime, why: str
) -> Reloaded:
    """Validate the rule files and master data as they are now and swap to what changed: the
    rules first (a new engine seeded from the facts), then the master data (the facts it
    changes derived again and the rules re-evaluated on them)."""
    started = time.perf_counter()
    running = core.ruleset.hash
    decisions: list[Decision] = []
    masterdata, refused = _changed_masterdata(policy.masterdata, files)
    schema = policy.schema if masterdata is None else _schema(masterdata)
    ruleset: RuleSet | None = None
    try:
        ruleset = load_rules([files.rules], schema)
    except RuleError as exc:
        if masterdata is not None and (kept := _rules_or_none(files.rules, policy.schema)):
            ruleset, masterdata, schema = kept, None, policy.schema
            first = exc.problems[0]
            reason = f"the rules no longer check against it: {first.rule_id or '-'}: {first.reason}"
            refused = [Problem(first.file, first.line, reason)]
            refused += [Problem(p.file, p.line, p.reason) for p in exc.problems[1:]]
        else:
            decisions.append(_rules_refused([str(p) for p in exc.problems], why, running, now))
            if masterdata is not None:
                refused = [_unchecked(files)]
                masterdata, schema = None, policy.schema
    rules_changed = False
    if ruleset is not None and ruleset.hash != running:
        try:
            decisions.extend(core.reload(ruleset, now))
            rules_changed = True
        except EngineError as exc:
            decisions.append(_rules_refused([str(exc)], why, running, now))
            ruleset = None
            if masterdata is not None:
                refused = [_unchecked(files)]
                masterdata, schema = None, policy.schema
    if ruleset is not None:
        decisions.append(_resolved(RULES_ALERT_KEY, RULES_RULE, core.ruleset.hash, now))
    if refused:
        decisions.append(_masterdata_refused(refused, why, core.ruleset.hash, now))
    else:
        if masterdata is not None:
            decisions.extend(_swap(core, policy.masterdata, masterdata, why, now, started))
        decisions.append(_resolved(MASTERDATA_ALERT_KEY, MASTERDATA_RULE, core.ruleset.hash, now))
    running_policy = Policy(masterdata or policy.masterdata, schema, core.ruleset)
    return Reloaded(
        running_policy,
        decisions,
        rules_changed=rules_changed,
        masterdata_changed=masterdata is not None,
        rules_refused=ruleset is None,
        masterdata_refused=str(refused[0]) if refused else "",
    )


def _changed_masterdata(
    running: MasterData, files: PolicyFiles
) -> tuple[MasterData | None, list[Problem]]:
    """(the new master data, []) if the files changed and load; (None, problems) if they do not
    load; (None, []) if their text is what runs."""
    if running.digest and masterdata_digest(files.items, files.machines) == running.digest:
        return None, []
    try:
        masterdata = load_masterdata(files.items, files.machines)
    except MasterDataError as exc:
        lines = str(exc).split("\n")
        problems = [Problem(*first_problem(MasterDataError(line))) for line in lines if line]
        return None, problems
    return masterdata, []


def _swap(
    core: Core, old: MasterData, new: MasterData, why: str, now: datetime, started: float
) -> list[Decision]:
    decisions = core.swap_masterdata(new, now)
    log.info(
        "masterdata_reloaded",
        why=why,
        took_ms=round((time.perf_counter() - started) * 1000, 1),
        items=len(new.items),
        machines=len(new.machines),
        decisions=len(decisions),
        **masterdata_changes(old, new),
    )
    return decisions


def _schema(masterdata: MasterData) -> FactSchema:
    return build_schema(masterdata.item_fields(), masterdata.machine_fields())


def _rules_or_none(path: Path, schema: FactSchema) -> RuleSet | None:
    try:
        return load_rules([path], schema)
    except RuleError:
        return None


def _unchecked(files: PolicyFiles) -> Problem:
    reason = "not checked: the rule files do not load (see the rule reload alert)"
    return Problem(str(files.items), 0, reason)


def _resolved(key: str, rule: str, rule_set: str, now: datetime) -> AlertResolved:
    """Resolves the alert of an earlier refused change, if one is open: the files load now."""
    what = "the rule files load" if rule == RULES_RULE else "the master data files load"
    return AlertResolved(key, now, rule, rule_set, what)


def _rules_refused(problems: Sequence[str], why: str, running: str, now: datetime) -> AlertDecision:
    log.error("rules_reload_refused", why=why, running=running, problems=list(problems))
    message = f"rule change refused, rule set {running} keeps running: {_summary(problems)}"
    return _alert(RULES_ALERT_KEY, RULES_RULE, "rules", message, problems, running, now)


def _masterdata_refused(
    problems: Sequence[Problem], why: str, running: str, now: datetime
) -> AlertDecision:
    first = problems[0]
    log.error(
        "masterdata_reload_refused",
        file=first.file,
        line=first.line,
        reason=first.reason,
        why=why,
        problems=len(problems),
    )
    shown = [str(p) for p in problems]
    message = f"master data change refused, the running master data stays: {_summary(shown)}"
    return _alert(MASTERDATA_ALERT_KEY, MASTERDATA_RULE, "masterdata", message, shown, running, now)


def _summary(problems: Sequence[str]) -> str:
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def _alert(
    key: str,
    rule: str,
    subject: str,
    message: str,
    problems: Sequence[str],
    running: str,
    now: datetime,
) -> AlertDecision:
    return AlertDecision(
        dedup_key=key,
        severity="critical",
        message=message,
        site="agent",
        subject=subject,
        rule_id=rule,
        rule_set_hash=running,
        matched={"problems": {str(i): p for i, p in enumerate(problems[:_SHOWN_PROBLEMS])}},
        at=now,
    )
