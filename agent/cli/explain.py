"""`factory-agent explain ID`: why a decision was made, in words a planner can check.

The stored row carries the rule id, the rule set's hash and the facts that matched; the rule's
conditions come from the rule files (flagged when they changed since).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from agent.cli.database import open_for_reading
from agent.config import Settings
from agent.decisions.report import line, record
from agent.errors import AgentError, MasterDataError, RuleError
from agent.rulebook import expr
from agent.rulebook.fields import ITEM_FIELDS, MACHINE_FIELDS, FactSchema, build_schema
from agent.rulebook.loader import load_rules, parse_rule_sources, rule_files
from agent.rulebook.rules import Rule, fields_used
from agent.store.repository import json_friendly
from agent.world.masterdata import load_masterdata


def parse_id(text: str) -> tuple[Literal["action", "alert"], int]:
    table, _, number = text.rpartition(":")
    if table not in ("", "action", "alert") or not number.isdigit():
        raise AgentError(f"expected an id such as 12, action:12 or alert:7; got {text!r}")
    return ("alert" if table == "alert" else "action"), int(number)


@dataclass(frozen=True, slots=True)
class RuleNow:
    """What the rule files say about a decision's rule today.

    `rule` is the rule as loaded (None when it cannot be loaded now); `problems` why it does not
    load or would not match now (master data missing, a field unknown without it); `written` the
    rule's lines as written in its file (`where` names file and line), when it cannot be loaded.
    """

    rule: Rule | None
    current_hash: str = ""
    problems: tuple[str, ...] = ()
    where: str = ""
    written: tuple[str, ...] = ()


def explain(text: str, settings: Settings, as_json: bool = False) -> int:
    table, id = parse_id(text)
    store = open_for_reading(settings)
    try:
        row = store.find(table, id)
        loads = [r for r in store.rule_sets() if row and r["hash"] == row["rule_set_hash"]]
    finally:
        store.close()
    if row is None:
        print(f"no {table} with id {id}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(json_friendly(row), default=str))
        return 0
    for text_line in describe(table, row, rule_now(settings, row["rule_id"]), loads):
        print(text_line)
    return 0


def rule_now(settings: Settings, rule_id: str) -> RuleNow:
    """The decision's rule in today's rule files; when they do not load (master data missing,
    another rule broken), the rule on its own as written, and why it does not load or match."""
    paths = [Path(settings.rules.path)]
    problems: list[str] = []
    try:
        masterdata = load_masterdata(
            Path(settings.masterdata.items), Path(settings.masterdata.machines)
        )
        schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    except MasterDataError as exc:
        # Without the plant's master data, the rule is checked against the built-in fields only.
        problems.append(f"master data cannot be read: {exc}")
        schema = build_schema()
    found = _find(paths, rule_id, schema, problems)
    if found.rule is not None and problems and problems[0].startswith("master data"):
        missing = _masterdata_fields(found.rule)
        if missing:
            why = (
                f"without master data the facts have no {', '.join(missing)}: "
                "its conditions on them cannot match"
            )
            return replace(found, problems=(*found.problems, why))
    return found


def _masterdata_fields(rule: Rule) -> list[str]:
    """The master-data fields (reorder_point, cost_per_hour, ...) the rule's conditions read."""
    names = [
        str(field).split(".")[-1]
        for variant in rule.variants
        for condition in variant
        for field in expr.fields(condition.expr)
    ]
    return [n for n in dict.fromkeys(names) if n in ITEM_FIELDS or n in MACHINE_FIELDS]


def _find(paths: list[Path], rule_id: str, schema: FactSchema, problems: list[str]) -> RuleNow:
    """The rule from the files as they load, else alone from its entry as written."""
    located: list[str] = []  # this rule's own problems, with their real lines
    try:
        ruleset = load_rules(paths, schema)
    except RuleError as error:
        located = _problems_of(error, rule_id)
        problems.extend(located)
        others = len(error.problems) - len(located)
        if others:
            problems.append(
                f"the rule files do not load now: {others} problem(s) in other rules "
                "(see factory-agent rules check)"
            )
    else:
        rule = ruleset.by_id().get(rule_id)
        if not problems:
            return RuleNow(rule, ruleset.hash)
        if rule is not None:
            return RuleNow(rule, ruleset.hash, tuple(problems))
    where, written = as_written(paths, rule_id)
    if not written:
        return RuleNow(None, "", tuple(problems))
    try:  # the rule alone: other rules' problems do not hide it
        alone = parse_rule_sources([(where.rsplit(":", 1)[0], _alone(written))], schema)
    except RuleError as error:
        own = [] if located else [f"{where}: {p.rule_id}: {p.reason}" for p in error.problems]
        return RuleNow(None, "", tuple([*problems, *own]), where, tuple(written))
    rule = alone.by_id().get(rule_id)
    return RuleNow(rule, alone.hash, tuple(problems), where, tuple(written))


def _alone(written: list[str]) -> str:
    return "rules:\n" + "".join(f"  {text}\n" for text in written)


def _problems_of(error: RuleError, rule_id: str) -> list[str]:
    """The problems of this rule, or of its file as a whole; not the other rules' problems."""
    return [str(p) for p in error.problems if p.rule_id in (rule_id, "")]


# `- id: reorder-point` or `  id: "reorder-point"  # comment` (an entry whose first key is not id).
_ID_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<dash>-\s+)?id:\s*['\"]?(?P<id>[^'\"#\s]+)['\"]?\s*(#.*)?$"
)


def as_written(paths: list[Path], rule_id: str) -> tuple[str, list[str]]:
    """The rule's entry in its YAML file, line for line: ("file:line", lines); ("", []) if no
    rule file has it. Found by text, so it works when the files do not load."""
    for path in rule_files(paths):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for number, text in enumerate(lines):
            found = _ID_LINE.match(text)
            if found is None or found["id"] != rule_id:
                continue
            start = number
            if found["dash"] is None:  # `id` is not the entry's first key: go up to its `-`
                while start > 0 and not lines[start].lstrip().startswith("- "):
                    start -= 1
            indent = len(lines[start]) - len(lines[start].lstrip())
            end = start + 1
            while end < len(lines):
                later = lines[end]
                if later.strip() and len(later) - len(later.lstrip()) <= indent:
                    break
                end += 1
            while end > start + 1 and not lines[end - 1].strip():
                end -= 1
            return f"{path}:{start + 1}", [line[indent:] for line in lines[start:end]]
    return "", []


def describe(
    table: str,
    row: dict[str, Any],
    now: RuleNow,
    loads: list[dict[str, Any]],
) -> list[str]:
    """The explanation as lines: the decision, the rule and its conditions, the matched facts."""
    rec = record(table, json_friendly(row))
    out = [line(rec)]
    rule_set = row["rule_set_hash"]
    loaded = f", loaded {json_friendly(loads[-1])['loaded_at']}" if loads else ""
    out.append(f"decided by rule {row['rule_id']!r} of rule set {rule_set}{loaded}")
    used: list[str] = []
    rule = now.rule
    if now.problems:
        out.append("  the rule does not load or match as it stands now:")
        out.extend(f"    {problem}" for problem in now.problems)
    if now.written:
        out.append(f"  the rule as written, {now.where}:")
        out.extend(f"    {text}" for text in now.written)
    if rule is None and not now.written:
        out.append("  (the rule is no longer in the rule files)")
    elif rule is not None:
        if rule_set != now.current_hash and not now.written:
            changed = f"rule set now {now.current_hash}: the rule below may have changed since"
            out.append(f"  ({changed})")
        if not now.written:
            where = f"{rule.file}:{rule.line}"
            out.append(f"  {where}" + (f" — {rule.description}" if rule.description else ""))
        for number, variant in enumerate(rule.variants):
            head = "when" if number == 0 else "or when"
            for condition in variant:
                if not now.written:
                    out.append(f"  {head} {condition.alias}: {condition.text}")
                head = "and"
        used = fields_used(rule)
        if rule.for_s and not now.written:
            out.append(f"  for {rule.for_s:g} s")
        if rule.resolve_text and not now.written:
            out.append(f"  resolve_when {rule.resolve_text}")
    out.append("matched facts:")
    for alias, fields in (row.get("matched") or {}).items():
        names = [n.split(".")[-1] for n in used if n.split(".")[0] in (alias, n)]
        first = [n for n in dict.fromkeys(names) if n in fields]
        rest = [n for n in sorted(fields) if n not in first]
        if not first:  # no rule to tell which fields it used
            out.append(f"  {alias}: " + ", ".join(f"{n}={fields[n]!r}" for n in rest))
            continue
        shown = " ".join(f"{n}={fields[n]!r}" for n in first)
        out.append(f"  {alias}: {shown}")
        out.append("    also: " + ", ".join(f"{n}={fields[n]!r}" for n in rest))
    return out
