"""Rule files in, a validated `RuleSet` out, or every problem found as `file:line: rule-id: reason`.

Validation happens here, before anything runs: YAML, keys, expressions, field names and types,
actions and their parameters, duplicate ids, the engine's limits.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from agent.errors import ExpressionError, RuleError, RuleProblem
from agent.model import SEVERITIES, FactKind
from agent.rulebook import expr
from agent.rulebook.fields import FactSchema
from agent.rulebook.rules import ActionSpec, Condition, Param, Rule, RuleSet
from agent.rulebook.template import Template, parse_template
from agent.rulebook.timing import parse_cron, parse_duration, zone_named
from agent.rulebook.yamlsrc import (
    MAX_RULE_FILE_BYTES,
    LineList,
    LineMap,
    YamlProblem,
    load_yaml,
)

RULE_KEYS: Final = frozenset(
    {
        "id",
        "description",
        "when",
        "then",
        "enabled",
        "severity",
        "key",
        "for",
        "resolve_when",
        "repeat",
        "schedule",
        "timezone",
    }
)
RULE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
ALIAS: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
FACT_KINDS: Final[tuple[FactKind, ...]] = ("stock", "machine")
MAX_RULES: Final = 2000
# durable-rules breaks at 512 rules testing different values of one property (notes).
MAX_SIBLING_TESTS: Final = 500
# ... and refuses a fact of 253+ properties: the engine is given only the fields rules test.
MAX_ENGINE_FIELDS: Final = 240


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """How an action parameter is written: an expression, a {} template, or one of fixed words."""

    form: str  # "expr" | "text" | "choice" | "name" | "exprs" (a mapping of expressions)
    required: bool = False
    choices: tuple[str, ...] = ()
    type: str = expr.ANY  # for "expr": the type it must have
    default_from: str = ""  # fact field to take from the only alias of `default_kind`
    default_kind: str = ""


ACTIONS: Final[Mapping[str, Mapping[str, ParamSpec]]] = {
    "reorder": {
        "sku": ParamSpec("expr", True, type=expr.STRING, default_from="sku", default_kind="stock"),
        "quantity": ParamSpec("expr", True, type=expr.NUMBER),
        "priority": ParamSpec("choice", choices=("normal", "high", "expedite")),
        "note": ParamSpec("text"),
    },
    "work_order": {
        "machine": ParamSpec(
            "expr", True, type=expr.STRING, default_from="machine", default_kind="machine"
        ),
        "task": ParamSpec("text", True),
        "priority": ParamSpec("choice", choices=("low", "normal", "high", "urgent")),
        "note": ParamSpec("text"),
        # true: a service (preventive maintenance); done restarts `hours_since_service`
        "service": ParamSpec("choice", choices=(True, False)),  # type: ignore[arg-type]
    },
    "idle_capacity": {
        "machine": ParamSpec(
            "expr", True, type=expr.STRING, default_from="machine", default_kind="machine"
        ),
        "note": ParamSpec("text"),
    },
    "alert": {
        "message": ParamSpec("text", True),
        "severity": ParamSpec("choice", choices=SEVERITIES),
    },
    "publish": {
        "topic": ParamSpec("text", True),
        "message": ParamSpec("text"),
        "payload": ParamSpec("exprs"),
        "retain": ParamSpec("choice", choices=(True, False)),  # type: ignore[arg-type]
    },
    "notify": {
        "route": ParamSpec("name", True),
        "message": ParamSpec("text"),
        "severity": ParamSpec("choice", choices=SEVERITIES),
    },
}
ROUTE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MQTT_WILDCARDS: Final = ("+", "#")
PARAM_DEFAULTS: Final[Mapping[str, Mapping[str, str]]] = {
    "reorder": {"priority": "normal"},
    "work_order": {"priority": "normal"},
}


# Rule keys that, indented under `when`, read as an alias (`key` could be a real alias).
_MISPLACED_KEYS: Final = RULE_KEYS - {"id", "description", "key"}
_UNKNOWN_FIELD: Final = re.compile(r"unknown field '(?:(\w+)\.)?(\w+)'")


@dataclass
class _FileContext:
    file: str
    rule_id: str = ""
    problems: list[RuleProblem] = field(default_factory=list)
    # What went wrong earlier in the current rule, so that its consequences are not reported as
    # problems of their own (one problem per root cause):
    misspelt: set[str] = field(default_factory=set)  # rule keys reported misspelt or misplaced
    when_failed: bool = False  # `when` as a whole is missing or malformed: no alias is known
    broken_aliases: set[str] = field(default_factory=set)  # aliases whose condition is wrong
    unknown_aliases: set[str] = field(default_factory=set)  # undeclared aliases reported
    entry_keys: frozenset[str] = frozenset()  # the keys the current rule has

    def problem(self, line: int, reason: str, hint: str = "") -> None:
        self.problems.append(RuleProblem(self.file, line, self.rule_id, reason, hint))

    def start_rule(self, rule_id: str) -> None:
        self.rule_id = rule_id
        self.misspelt, self.when_failed, self.broken_aliases = set(), False, set()
        self.unknown_aliases = set()

    def follows_from_when(self, alias: str | None) -> bool:
        """Whether an unknown alias is a consequence of a `when` problem reported already: any
        broken condition may be the one meant to declare it."""
        return self.when_failed or bool(self.broken_aliases)

    def reported_alias(self, alias: str | None, kinds: Mapping[str, str]) -> bool:
        """For an undeclared alias: whether it was reported already in this rule (each use of a
        misspelt alias is one mistake, reported at its first use). Records it otherwise."""
        if alias is None or alias in kinds:
            return False
        if alias in self.unknown_aliases:
            return True
        self.unknown_aliases.add(alias)
        return False

    def expression_problem(
        self,
        line: int,
        what: str,
        exc: ExpressionError,
        schema: FactSchema,
        kinds: Mapping[str, str],
        own: str | None,
    ) -> None:
        """Report an expression's problem with a hint, unless it is an unknown field of an alias
        whose condition failed (the condition's problem is the one to fix)."""
        m = _UNKNOWN_FIELD.match(exc.message)
        if m:
            alias = m.group(1) or own
            if alias not in kinds and self.follows_from_when(alias):
                return
            if self.reported_alias(alias, kinds):
                return
        self.problem(line, f"{what}: {exc}", _field_hint(exc, schema, kinds, own))


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """The rule files under the given files and folders (not their `tests/` folders), sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            found.append(path)
    return sorted(set(found))


def load_rules(paths: Sequence[Path], schema: FactSchema) -> RuleSet:
    """Read, validate and hash rule files. Raise `RuleError` listing every problem found."""
    files = rule_files(paths)
    problems: list[RuleProblem] = []
    if not files:
        names = ", ".join(str(p) for p in paths) or "(none)"
        raise RuleError([RuleProblem(names, 0, "", "no rule files (*.yaml) found")])
    sources: list[tuple[str, str]] = []
    for path in files:
        try:
            if path.stat().st_size > MAX_RULE_FILE_BYTES:  # not read at all: it could be huge
                reason = f"the file is over the limit of {MAX_RULE_FILE_BYTES} bytes"
                problems.append(RuleProblem(str(path), 1, "", reason))
                continue
            sources.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(RuleProblem(str(path), 0, "", f"cannot read the file: {exc}"))
    if problems:
        raise RuleError(problems)
    return parse_rule_sources(sources, schema)


def parse_rule_sources(sources: Sequence[tuple[str, str]], schema: FactSchema) -> RuleSet:
    """Validate rule files given as (name, text) pairs: the pure heart of `load_rules`."""
    rules: list[Rule] = []
    problems: list[RuleProblem] = []
    seen: dict[str, str] = {}
    disabled = 0
    for name, text in sources:
        ctx = _FileContext(name)
        for rule, enabled in _parse_file(text, ctx, schema):
            if rule.id in seen:
                ctx.rule_id = rule.id
                ctx.problem(
                    rule.line,
                    f"duplicate rule id (first defined at {seen[rule.id]})",
                    "give every rule a unique id",
                )
                continue
            seen[rule.id] = f"{name}:{rule.line}"
            if enabled:
                rules.append(rule)
            else:
                disabled += 1
        problems.extend(ctx.problems)
    problems.extend(_check_engine_limits(rules))
    if len(rules) > MAX_RULES:
        problems.append(RuleProblem(sources[-1][0], 0, "", f"more than {MAX_RULES} rules"))
    if problems:
        raise RuleError(problems)
    digest = hashlib.sha256()
    for name, text in sorted(sources):
        digest.update(Path(name).name.encode() + b"\0" + text.encode() + b"\0")
    return RuleSet(tuple(rules), digest.hexdigest()[:12], tuple(n for n, _ in sources), disabled)


def _parse_file(text: str, ctx: _FileContext, schema: FactSchema) -> list[tuple[Rule, bool]]:
    try:
        document = load_yaml(text)
    except YamlProblem as exc:
        ctx.rule_id = _rule_id_before(text, exc.line)
        hint = exc.hint or ("check indentation and quoting around this line" if exc.syntax else "")
        ctx.problem(exc.line, exc.reason, hint)
        return []
    if document is None:
        ctx.problem(1, "the file is empty", "a rule file starts with `rules:`")
        return []
    if not isinstance(document, LineMap) or "rules" not in document:
        ctx.problem(1, "a rule file must be a mapping with a `rules:` list")
        return []
    for key in document:
        if key != "rules":
            ctx.problem(document.lines[key], f"unknown top-level key {key!r}", "only `rules:`")
    entries = document["rules"]
    if not isinstance(entries, LineList):
        ctx.problem(document.lines["rules"], "`rules:` must be a list of rules")
        return []
    parsed: list[tuple[Rule, bool]] = []
    for line, entry in zip(entries.lines, entries, strict=True):
        ctx.rule_id = ""
        before = len(ctx.problems)
        result = _parse_rule(entry, line, ctx, schema)
        if result is not None and len(ctx.problems) == before:
            parsed.append(result)
    return parsed


_ID_LINE = re.compile(r"^\s*(?:-\s*)?id:\s*[\"']?([A-Za-z0-9][A-Za-z0-9_.-]*)")


def _rule_id_before(text: str, line: int) -> str:
    """The id of the rule a line belongs to, read from the text when the YAML does not parse."""
    for candidate in reversed(text.splitlines()[:line]):
        m = _ID_LINE.match(candidate)
        if m:
            return m.group(1)
    return ""


def _parse_rule(
    entry: Any, line: int, ctx: _FileContext, schema: FactSchema
) -> tuple[Rule, bool] | None:
    if not isinstance(entry, LineMap):
        ctx.problem(line, "a rule must be a mapping with `id`, `when` and `then`")
        return None
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id):
        reason = "a rule needs an `id`" if rule_id is None else f"invalid rule id {rule_id!r}"
        ctx.problem(
            entry.lines.get("id", line),
            reason,
            "ids are letters, digits, '-', '_' and '.', e.g. `reorder-point`",
        )
        return None
    ctx.start_rule(rule_id)
    ctx.entry_keys = frozenset(str(k) for k in entry)
    for key in entry:
        if key not in RULE_KEYS:
            close = difflib.get_close_matches(str(key), RULE_KEYS, n=1)
            if close and close[0] not in entry:
                ctx.misspelt.add(close[0])
            ctx.problem(
                entry.lines[key],
                f"unknown key {key!r}",
                _suggest(str(key), RULE_KEYS, "known keys"),
            )
    description = entry.get("description", "")
    if not isinstance(description, str):
        ctx.problem(
            entry.lines["description"],
            f"description: expected text, got {_described(description)}",
            "quote it if it holds ': ' or starts with [ or {",
        )
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        ctx.problem(
            entry.lines["enabled"],
            f"enabled: expected true or false, got {_described(enabled)}",
            "`enabled: false` keeps the rule in the file without running it",
        )
    severity = entry.get("severity", "warning")
    if not isinstance(severity, str) or severity not in SEVERITIES:
        ctx.problem(
            entry.lines.get("severity", line),
            f"severity must be one of {', '.join(SEVERITIES)}; got {_described(severity)}",
            choice_hint(severity, SEVERITIES),
        )
    key_template = _parse_key(entry, ctx)
    alternatives, kinds = _parse_when(entry, line, ctx, schema)
    conditions = alternatives[0] if alternatives else None
    # `then` is checked even when `when` has problems, so a file's problems all show at once.
    actions = _parse_then(entry, line, ctx, schema, kinds, conditions)
    if key_template is not None:
        _check_fields(key_template.fields, entry.lines["key"], ctx, schema, kinds)
    timing = _parse_timing(entry, ctx)
    resolve = _parse_resolve_when(entry, ctx, schema, kinds)
    if alternatives is None or conditions is None or actions is None or timing is None:
        return None
    if resolve is False or resolve is True:
        return None
    for_s, repeat_s, schedule, timezone = timing
    rule = Rule(
        rule_id,
        str(description),
        tuple(conditions),
        tuple(actions),
        str(severity),
        key_template,
        ctx.file,
        line,
        alternatives=tuple(tuple(a) for a in alternatives) if len(alternatives) > 1 else (),
        for_s=for_s,
        resolve_when=resolve[0] if resolve else None,
        resolve_text=resolve[1] if resolve else "",
        repeat_s=repeat_s,
        schedule=schedule,
        timezone=timezone,
        fingerprint=_fingerprint(entry),
    )
    return rule, enabled is True


def _fingerprint(entry: LineMap) -> str:
    """A hash of what the rule says (not where it stands): survives edits to other rules."""
    body = {k: v for k, v in entry.items() if k != "description"}
    text = json.dumps(body, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _parse_timing(entry: LineMap, ctx: _FileContext) -> tuple[float, float | None, str, str] | None:
    """`for`, `repeat`, `schedule` and its `timezone`: (for seconds, repeat seconds or None, cron
    text, IANA zone name or "")."""
    ok = True
    values: dict[str, float | None] = {"for": 0.0, "repeat": None}
    for name in ("for", "repeat"):
        if name not in entry:
            continue
        try:
            values[name] = parse_duration(entry[name])
        except ValueError as exc:
            ctx.problem(entry.lines[name], f"{name}: {exc}", "e.g. `for: 10m`, `repeat: 4h`")
            ok = False
    if values["repeat"] == 0:
        ctx.problem(entry.lines["repeat"], "repeat: must be longer than 0s")
        ok = False
    schedule, timezone = "", ""
    if "timezone" in entry:
        if "schedule" not in entry:
            ctx.problem(
                entry.lines["timezone"],
                "`timezone` applies to a `schedule` only",
                "add a schedule, or drop the timezone (shift times take the calendar's timezone)",
            )
            ok = False
        else:
            try:
                timezone = zone_named(entry["timezone"]).key
            except ValueError as exc:
                ctx.problem(entry.lines["timezone"], str(exc), "an IANA name, e.g. Europe/Berlin")
                ok = False
    if "schedule" in entry:
        try:
            schedule = parse_cron(entry["schedule"]).text
        except ValueError as exc:
            ctx.problem(entry.lines["schedule"], str(exc), "crontab fields, e.g. '0 6 * * mon-fri'")
            ok = False
        if "for" in entry:
            ctx.problem(
                entry.lines["for"],
                "a scheduled rule cannot also have `for`",
                "it is evaluated at the scheduled times only: drop one of the two",
            )
            ok = False
    if not ok:
        return None
    return values["for"] or 0.0, values["repeat"], schedule, timezone


def _parse_resolve_when(
    entry: LineMap, ctx: _FileContext, schema: FactSchema, kinds: Mapping[str, FactKind]
) -> tuple[expr.Node, str] | bool | None:
    """The parsed `resolve_when`, None when absent, False when wrong (reported)."""
    if "resolve_when" not in entry:
        return None
    text = entry["resolve_when"]
    at = entry.lines["resolve_when"]
    if not isinstance(text, str):
        ctx.problem(at, "resolve_when must be an expression", "e.g. `m.temp_c < m.max_temp_c - 5`")
        return False
    if not kinds:
        return False  # `when` is wrong: reported already
    only = next(iter(kinds)) if len(kinds) == 1 else None
    try:
        node = expr.parse(text)
        found = expr.check(node, _resolver(schema, kinds, only))
    except ExpressionError as exc:
        ctx.expression_problem(at, "resolve_when", exc, schema, kinds, only)
        return False
    if found not in (expr.BOOL, expr.ANY):
        ctx.problem(at, f"resolve_when is a {found}, not true/false")
        return False
    return node, text


def _parse_key(entry: LineMap, ctx: _FileContext) -> Template | None:
    if "key" not in entry:
        return None
    try:
        return parse_template(entry["key"])
    except ExpressionError as exc:
        ctx.problem(entry.lines["key"], f"key: {exc.message}")
        return None


def _parse_when(
    entry: LineMap, line: int, ctx: _FileContext, schema: FactSchema
) -> tuple[list[list[Condition]] | None, dict[str, FactKind]]:
    """The rule's alternatives (one unless `any:`), None if any is wrong, and the alias kinds."""
    when = entry.get("when")
    when_line = entry.lines.get("when", line)
    if not isinstance(when, LineMap) or not when:
        ctx.when_failed = True
        if not ("when" not in entry and "when" in ctx.misspelt):  # else reported as misspelt
            hint = 'e.g. `when: {stock: kind == "stock" and projected <= reorder_point}`'
            if isinstance(when, LineList):
                hint = "write the conditions as `alias: expression` lines, without '-'"
            ctx.problem(
                when_line, "`when` must name at least one condition: `alias: expression`", hint
            )
        return None, {}
    if "any" not in when:
        conditions, kinds = _parse_conditions(when, ctx, schema)
        return (None if conditions is None else [conditions]), kinds
    options = when["any"]
    any_line = when.lines["any"]
    if len(when) != 1 or not isinstance(options, LineList) or not options:
        ctx.when_failed = True
        ctx.problem(
            any_line,
            "`when: any:` must be the only entry of `when`, with a list of alternatives",
            "each alternative is a mapping `alias: expression`",
        )
        return None, {}
    alternatives: list[list[Condition]] = []
    first_kinds: dict[str, FactKind] = {}
    ok = True
    for index, (option_line, option) in enumerate(zip(options.lines, options, strict=True)):
        if not isinstance(option, LineMap) or not option:
            ctx.when_failed = True
            ctx.problem(option_line, "each `any:` alternative is a mapping `alias: expression`")
            ok = False
            continue
        conditions, kinds = _parse_conditions(option, ctx, schema)
        if index == 0:
            first_kinds = kinds
        elif kinds and first_kinds and kinds != first_kinds:
            ctx.problem(
                option_line,
                "every `any:` alternative must use the same aliases of the same kinds",
                f"the first uses {', '.join(f'{a} ({k})' for a, k in first_kinds.items())}",
            )
            ok = False
        if conditions is None:
            ok = False
        else:
            alternatives.append(conditions)
    return (alternatives if ok else None), first_kinds


def _parse_conditions(
    when: LineMap, ctx: _FileContext, schema: FactSchema
) -> tuple[list[Condition] | None, dict[str, FactKind]]:
    """One set of named conditions (None if any is wrong) and the kind of every alias."""
    parsed: list[tuple[str, expr.Node, str, int]] = []
    kinds: dict[str, FactKind] = {}
    for alias, text in when.items():
        cond_line = when.lines[alias]
        if not isinstance(alias, str) or not ALIAS.fullmatch(alias) or alias in expr.KEYWORDS:
            ctx.problem(cond_line, f"invalid alias {alias!r}", "an alias is a short name: m, stock")
            ctx.broken_aliases.add(str(alias))
            continue
        if alias in _MISPLACED_KEYS and alias not in ctx.entry_keys:
            ctx.problem(
                cond_line,
                f"`{alias}` is indented as a part of `when`",
                f"`{alias}` is a key of the rule: line it up with `when`",
            )
            ctx.misspelt.add(alias)  # not "missing" as well
            ctx.broken_aliases.add(alias)
            continue
        if not isinstance(text, str):
            ctx.problem(
                cond_line,
                f"condition {alias!r}: expected an expression, got {_described(text)}",
                _condition_hint(alias, text),
            )
            ctx.broken_aliases.add(alias)
            continue
        try:
            node = expr.parse(text)
        except ExpressionError as exc:
            ctx.problem(cond_line, f"condition {alias!r}: {exc}", expression_hint(exc.message))
            ctx.broken_aliases.add(alias)
            continue
        kind = _declared_kind(node)
        if kind is None:
            ctx.broken_aliases.add(alias)
            ctx.problem(
                cond_line,
                f"condition {alias!r} does not say which facts it is about",
                _kind_hint(node),
            )
            continue
        kinds[alias] = kind
        parsed.append((alias, node, text, cond_line))
    if len(parsed) != len(when):
        return None, kinds
    conditions = []
    for alias, node, text, cond_line in parsed:
        resolver = _resolver(schema, kinds, alias)
        try:
            result = expr.check(node, resolver)
        except ExpressionError as exc:
            ctx.problem(
                cond_line, f"condition {alias!r}: {exc}", _field_hint(exc, schema, kinds, alias)
            )
            continue
        if result not in (expr.BOOL, expr.ANY):
            ctx.problem(cond_line, f"condition {alias!r} is a {result}, not true/false")
            continue
        conditions.append(Condition(alias, kinds[alias], node, text, cond_line))
    return (conditions if len(conditions) == len(parsed) else None), kinds


def _condition_hint(alias: str, value: Any) -> str:
    if isinstance(value, LineList) and difflib.get_close_matches(alias, ["any"], n=1):
        return "did you mean `any:`? (a list of alternatives)"
    return 'a condition is `alias: expression`, e.g. `m: kind == "machine" and temp_c > 80`'


def _kind_hint(node: expr.Node) -> str:
    """For a condition without `kind == ...`: the near miss it holds (`kind == "machin"`,
    `knd == "machine"`), if any."""
    for term in expr.conjuncts(node):
        if not (isinstance(term, expr.Binary) and term.op == "=="):
            continue
        for a, b in ((term.left, term.right), (term.right, term.left)):
            if not (isinstance(a, expr.Field) and isinstance(b, expr.Literal)):
                continue
            if a.alias is None and a.name == "kind":
                return f"unknown kind {b.value!r}: {choice_hint(b.value, FACT_KINDS)}"
            if b.value in FACT_KINDS and difflib.get_close_matches(a.name, ["kind"], n=1):
                return f"did you mean `kind == {json.dumps(b.value)}`?"
    return 'start it with `kind == "stock"` or `kind == "machine"`'


def _described(value: Any) -> str:
    """A YAML value as a person wrote it: 'abc', 3, a list, a mapping, true, nothing."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return _yaml(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _declared_kind(node: expr.Node) -> FactKind | None:
    for term in expr.conjuncts(node):
        if not (isinstance(term, expr.Binary) and term.op == "=="):
            continue
        pair = (term.left, term.right)
        for a, b in (pair, pair[::-1]):
            if (
                isinstance(a, expr.Field)
                and a.alias is None
                and a.name == "kind"
                and isinstance(b, expr.Literal)
                and b.value in FACT_KINDS
            ):
                return b.value
    return None


def _resolver(schema: FactSchema, kinds: Mapping[str, str], own: str | None) -> expr.FieldTypes:
    def field_type(ref: expr.Field) -> str | None:
        alias = ref.alias if ref.alias is not None else own
        if alias is None or alias not in kinds:
            return None
        return schema.type_of(kinds[alias], ref.name)

    return field_type


def _field_hint(
    exc: ExpressionError, schema: FactSchema, kinds: Mapping[str, str], own: str | None
) -> str:
    m = _UNKNOWN_FIELD.match(exc.message)
    if not m:
        return expression_hint(exc.message)
    alias = m.group(1) or own
    if alias not in kinds:
        close = difflib.get_close_matches(str(alias), list(kinds), n=1, cutoff=0.5)
        if not close and len(kinds) == 1:  # `m.machine` in a rule whose only alias is `machine`
            close = list(kinds)
        known = ", ".join(kinds) or "none"
        if close:
            return f"{alias!r} is not an alias of this rule: did you mean {close[0]!r}?"
        return f"{alias!r} is not an alias of this rule; aliases: {known}"
    kind = kinds[alias or ""]
    if m.group(1) is None and not difflib.get_close_matches(m.group(2), schema.names(kind), n=1):
        word = m.group(2)  # `state == down`: text without quotes, most likely
        return f'{word!r} is no {kind} field: if it is text, write it in quotes: "{word}"'
    return _suggest(m.group(2), schema.names(kind), f"{kind} fields")


def choice_hint(value: Any, choices: Iterable[Any]) -> str:
    """`did you mean 'warning'?` for a near miss, else `expected one of: a, b, c`."""
    shown = [_yaml(c) for c in choices]
    close = difflib.get_close_matches(str(value), shown, n=1, cutoff=0.5)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"expected one of: {', '.join(shown)}"


# What to do about a mistake in how an expression is written (its message starts with the key).
_SYNTAX_HINTS: Final = (
    ("this '(' is never closed", "add the ')' that ends the group or the call"),
    ("this '[' is never closed", "end the list with ']'"),
    ("this ')' closes nothing", "remove it, or add the '(' it was meant to close"),
    ("this ']' closes nothing", "remove it, or add the '[' it was meant to close"),
    ('this quote " is never closed', 'end the text with "'),
    ("this quote ' is never closed", "end the text with '"),
    ("'&&' is not an operator", "write `and`"),
    ("'||' is not an operator", "write `or`"),
    ("'&' is not an operator", "write `and`"),
    ("'|' is not an operator", "write `or`"),
    ("'!' is not an operator", "write `not`, or `!=` for 'not equal'"),
    ("'=' is not an operator", "compare with `==`"),
    ("expected a value, found the end", "the expression stops after an operator: complete it"),
    (
        "unexpected character",
        "expressions use letters, digits, quotes and the operators == != < <= > >= + - * /",
    ),
    (
        "unexpected '",
        "an operator (and, or, ==, +, ...) is missing before it; numbers are written without "
        "units or separators: 1000, not 1,000 pcs",
    ),
)
_UNKNOWN_FUNCTION: Final = re.compile(r"unknown function '(\w+)'")


def expression_hint(message: str) -> str:
    """What to do about a problem the expression parser or checker reports ("" if nothing)."""
    for start, hint in _SYNTAX_HINTS:
        if message.startswith(start):
            return hint
    m = _UNKNOWN_FUNCTION.match(message)
    if m:
        if m.group(1) in ("avg", "mean", "average"):
            return "averages are fields, e.g. `temp_c_avg` over the machine's avg_window_min"
        close = difflib.get_close_matches(m.group(1), sorted(expr.FUNCTIONS), n=1)
        return f"did you mean {close[0]!r}?" if close else ""
    return type_hint(message)


def type_hint(message: str) -> str:
    """What to do about a type clash the expression checker reports."""
    if message.startswith("cannot compare"):
        return (
            "both sides must be of one type: numbers are written bare (10), text in quotes "
            '("running"); compare a field with a value of its own type'
        )
    if "needs numbers" in message or message.startswith("'-' needs a number"):
        return "arithmetic and min()/max() take number fields and numbers, not text or yes/no"
    if message.startswith("cannot order"):
        return "<, <=, > and >= compare two numbers or two texts"
    if message.startswith("'in' needs"):
        return 'write `field in ["a", "b"]` or `"text" in field`'
    if message.startswith("matches() needs a string"):
        return "matches() tests a text field against a pattern"
    return ""


def _wanted_hint(wanted: str, found: str) -> str:
    if wanted == expr.NUMBER:
        return "write a number or a sum of number fields, e.g. `stock.reorder_qty * 2`"
    if wanted == expr.BOOL:
        return "write a comparison, e.g. `m.temp_c > 80`"
    return f"this parameter takes a {wanted}"


def _yaml(value: Any) -> str:
    """A choice as it is written in YAML: true/false for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _suggest(word: str, known: Iterable[str], what: str) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    shown = ", ".join(known[:30]) + (", ..." if len(known) > 30 else "")
    return f"{what}: {shown}"


def _parse_then(
    entry: LineMap,
    line: int,
    ctx: _FileContext,
    schema: FactSchema,
    kinds: Mapping[str, FactKind],
    conditions: list[Condition] | None,
) -> list[ActionSpec] | None:
    then = entry.get("then")
    then_line = entry.lines.get("then", line)
    if not isinstance(then, LineList) or not then:
        if not ("then" not in entry and "then" in ctx.misspelt):  # else reported as misspelt
            hint = f"actions: {', '.join(ACTIONS)}"
            if isinstance(then, LineMap):
                hint = "write each action as a list item: `- alert: {message: ...}`"
            ctx.problem(then_line, "`then` must be a list of actions", hint)
        return None
    actions: list[ActionSpec] = []
    for item_line, item in zip(then.lines, then, strict=True):
        if not isinstance(item, LineMap) or len(item) != 1:
            reason, hint = "each action is one `kind: {parameters}` entry", ""
            first = next(iter(item), None) if isinstance(item, LineMap) else None
            if first in ACTIONS and item[first] is None:
                reason = f"{first}: its parameters are not indented under it"
                hint = f"indent them further than `{first}:`"
            ctx.problem(item_line, reason, hint or f"actions: {', '.join(ACTIONS)}")
            continue
        ((kind, params),) = item.items()
        if kind not in ACTIONS:
            ctx.problem(
                item_line, f"unknown action {kind!r}", _suggest(str(kind), ACTIONS, "actions")
            )
            continue
        if params is None:
            params = LineMap()
            params.line, params.lines = item_line, {}
        if not isinstance(params, LineMap):
            ctx.problem(item_line, f"{kind}: parameters must be a mapping")
            continue
        spec = _parse_action(str(kind), params, item_line, ctx, schema, kinds)
        if spec is not None:
            actions.append(spec)
    return actions if len(actions) == len(then) else None


def _parse_action(
    kind: str,
    params: LineMap,
    line: int,
    ctx: _FileContext,
    schema: FactSchema,
    kinds: Mapping[str, FactKind],
) -> ActionSpec | None:
    specs = ACTIONS[kind]
    parsed: dict[str, Param] = {}
    misspelt: set[str] = set()  # parameters reported as misspelt: not "missing" as well
    ok = True
    only = next(iter(kinds)) if len(kinds) == 1 else None
    for name, value in params.items():
        at = params.lines.get(name, line)
        spec = specs.get(name)
        if spec is None:
            misspelt.update(difflib.get_close_matches(str(name), specs, n=1))
            ctx.problem(
                at,
                f"{kind}: unknown parameter {name!r}",
                _suggest(str(name), specs, f"{kind} parameters"),
            )
            ok = False
            continue
        param = _parse_param(kind, str(name), value, spec, at, ctx, schema, kinds, only)
        if param is None:
            ok = False
            parsed[str(name)] = Param(str(name))  # reported already: not "missing" as well
        else:
            parsed[str(name)] = param
    for name, spec in specs.items():
        if name in parsed:
            continue
        default = _default_param(name, spec, kinds)
        if default is not None:
            parsed[name] = default
        elif name in PARAM_DEFAULTS.get(kind, {}):
            parsed[name] = Param(name, choice=PARAM_DEFAULTS[kind][name])
        elif spec.required:
            # A parameter taken from the condition's facts by default is missing because the
            # condition is wrong: that is the problem reported. So is a misspelt one.
            if not (spec.default_from and ctx.follows_from_when(None)) and name not in misspelt:
                ctx.problem(line, f"{kind}: missing parameter {name!r}", _missing_hint(kind, name))
            ok = False
    return ActionSpec(kind, parsed, line) if ok else None


def _parse_param(
    kind: str,
    name: str,
    value: Any,
    spec: ParamSpec,
    line: int,
    ctx: _FileContext,
    schema: FactSchema,
    kinds: Mapping[str, str],
    only: str | None,
) -> Param | None:
    if spec.form == "name":
        if not isinstance(value, str) or not ROUTE.fullmatch(value):
            ctx.problem(
                line,
                f"{kind}: {name} must be a name such as `maintenance-team`; got {value!r}",
                "routes are defined in the notification settings",
            )
            return None
        return Param(name, choice=value)
    if spec.form == "exprs":
        return _parse_exprs(kind, name, value, line, ctx, schema, kinds, only)
    if spec.form == "choice":
        if not isinstance(value, (str, bool)) or value not in spec.choices:
            shown = ", ".join(_yaml(c) for c in spec.choices)
            ctx.problem(
                line,
                f"{kind}: {name} must be one of {shown}; got {_described(value)}",
                _action_choice_hint(kind, name, value, spec.choices),
            )
            return None
        return Param(name, choice=value)
    if spec.form == "text":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            ctx.problem(
                line,
                f"{kind}: {name}: expected text, got {_described(value)}",
                'write it in quotes, e.g. "{m.machine} is down"',
            )
            return None
        try:
            template = parse_template(str(value))
        except ExpressionError as exc:
            ctx.problem(line, f"{kind}: {name}: {exc}", expression_hint(exc.message))
            return None
        if not _check_fields(template.fields, line, ctx, schema, kinds, only, f"{kind}: {name}"):
            return None
        if kind == "publish" and name == "topic" and any(w in str(value) for w in MQTT_WILDCARDS):
            ctx.problem(line, "publish: topic must not contain the wildcards + or #")
            return None
        return Param(name, template=template)
    text = value if isinstance(value, str) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = repr(value)
    wanted = "an expression" if spec.type == expr.ANY else f"a {spec.type}"
    if text is None:
        ctx.problem(
            line,
            f"{kind}: {name}: expected {wanted}, got {_described(value)}",
            _wanted_hint(spec.type, ""),
        )
        return None
    try:
        node = expr.parse(text)
        found = expr.check(node, _resolver(schema, kinds, only))
    except ExpressionError as exc:
        if _is_stray_word(text, exc, schema, kinds, only) and spec.type != expr.ANY:
            ctx.problem(
                line,
                f"{kind}: {name}: expected {wanted}, got {text!r}",
                _stray_word_hint(text, spec.type, kinds, only),
            )
            return None
        ctx.expression_problem(line, f"{kind}: {name}", exc, schema, kinds, only)
        return None
    if found not in (spec.type, expr.ANY):
        ctx.problem(
            line,
            f"{kind}: {name} must be a {spec.type}, but {text!r} is a {found}",
            _wanted_hint(spec.type, found),
        )
        return None
    return Param(name, expr=node)


def _is_stray_word(
    text: str, exc: ExpressionError, schema: FactSchema, kinds: Mapping[str, str], own: str | None
) -> bool:
    """Whether `text` is one bare word that is no field and resembles none (`quantity: abc`):
    a value of the wrong type, not a misspelt field."""
    m = _UNKNOWN_FIELD.match(exc.message)
    if not m or m.group(1) is not None or own is None or own not in kinds:
        return False
    if text.strip() != m.group(2):
        return False
    return not difflib.get_close_matches(m.group(2), schema.names(kinds[own]), n=1)


def _stray_word_hint(text: str, wanted: str, kinds: Mapping[str, str], own: str | None) -> str:
    kind = kinds.get(own or "", "")
    if wanted == expr.STRING:
        return f"{text!r} is no {kind} field: text is written in quotes, e.g. '\"{text}\"'"
    return f"{text!r} is no {kind} field: {_wanted_hint(wanted, '')}"


def _missing_hint(kind: str, name: str) -> str:
    spec = ACTIONS[kind][name]
    if spec.default_from:
        return (
            f"it defaults to the {spec.default_from} of the rule's only {spec.default_kind} "
            f"alias; this rule has none or several: write `{name}: alias.{spec.default_from}`"
        )
    return f"{kind} needs {', '.join(n for n, s in ACTIONS[kind].items() if s.required)}"


def _action_choice_hint(kind: str, name: str, value: Any, choices: Sequence[Any]) -> str:
    """The near miss among this action's choices, else among another action's (a work order's
    `urgent` written in a reorder), else the list."""
    hint = choice_hint(value, choices)
    if hint.startswith("did you mean") or not isinstance(value, str):
        return hint
    for other, specs in ACTIONS.items():
        spec = specs.get(name)
        if other == kind or spec is None or spec.form != "choice":
            continue
        close = difflib.get_close_matches(value, [_yaml(c) for c in spec.choices], n=1)
        if close and close[0] not in [_yaml(c) for c in choices]:
            return (
                f"{close[0]!r} is a {other} {name}; {kind} takes {', '.join(map(_yaml, choices))}"
            )
    return hint


def _parse_exprs(
    kind: str,
    name: str,
    value: Any,
    line: int,
    ctx: _FileContext,
    schema: FactSchema,
    kinds: Mapping[str, str],
    only: str | None,
) -> Param | None:
    """A mapping of field name -> expression, e.g. a published payload."""
    if not isinstance(value, LineMap):
        ctx.problem(line, f"{kind}: {name} must be a mapping of `field: expression`")
        return None
    items: dict[str, expr.Node] = {}
    for field_name, text in value.items():
        at = value.lines.get(field_name, line)
        if not isinstance(field_name, str) or not ALIAS.fullmatch(field_name):
            ctx.problem(
                at,
                f"{kind}: {name}: invalid field name {field_name!r}",
                "YAML reads on/off/yes/no as true/false: quote such names",
            )
            return None
        source = (
            repr(text) if isinstance(text, (int, float)) and not isinstance(text, bool) else text
        )
        if isinstance(text, bool):
            source = "true" if text else "false"
        if not isinstance(source, str):
            ctx.problem(at, f"{kind}: {name}.{field_name} must be an expression")
            return None
        try:
            node = expr.parse(source)
            expr.check(node, _resolver(schema, kinds, only))
        except ExpressionError as exc:
            ctx.expression_problem(at, f"{kind}: {name}.{field_name}", exc, schema, kinds, only)
            return None
        items[field_name] = node
    return Param(name, items=items)


def _default_param(name: str, spec: ParamSpec, kinds: Mapping[str, FactKind]) -> Param | None:
    if not spec.default_from:
        return None
    candidates = [alias for alias, kind in kinds.items() if kind == spec.default_kind]
    if len(candidates) != 1:
        return None
    return Param(name, expr=expr.Field(candidates[0], spec.default_from, 0))


def _check_fields(
    refs: list[expr.Field],
    line: int,
    ctx: _FileContext,
    schema: FactSchema,
    kinds: Mapping[str, str],
    only: str | None = None,
    what: str = "key",
) -> bool:
    if only is None and len(kinds) == 1:
        only = next(iter(kinds))
    resolver = _resolver(schema, kinds, only)
    ok = True
    for ref in refs:
        if resolver(ref) is None:
            alias = ref.alias if ref.alias is not None else only
            if alias not in kinds and ctx.follows_from_when(alias):
                ok = False  # the condition that should define the alias is reported
                continue
            if ctx.reported_alias(alias, kinds):
                ok = False  # this misspelt alias is reported at its first use
                continue
            # named with its alias: in a template, a bare name is a field, never quoted text
            named = f"{alias}.{ref.name}" if alias is not None else ref.name
            hint = _field_hint(ExpressionError(f"unknown field {named!r}"), schema, kinds, only)
            if ref.alias is None and only is None:
                hint = f"this rule has several aliases: write alias.field ({', '.join(kinds)})"
            ctx.problem(line, f"{what}: unknown field {str(ref)!r}", hint)
            ok = False
    return ok


def _check_engine_limits(rules: Sequence[Rule]) -> list[RuleProblem]:
    """Refuse rule sets that would hit durable-rules' sibling-test limit on one property."""
    tests: dict[str, set[tuple[str, Any]]] = {}
    where: dict[str, Rule] = {}
    for rule in rules:
        for condition in (c for variant in rule.variants for c in variant):
            for term in expr.conjuncts(condition.expr):
                if (
                    isinstance(term, expr.Binary)
                    and isinstance(term.right, expr.Literal)
                    and isinstance(term.left, expr.Field)
                ):
                    tests.setdefault(term.left.name, set()).add((term.op, term.right.value))
                    where.setdefault(term.left.name, rule)
    problems = []
    names = {
        ref.name
        for rule in rules
        for variant in rule.variants
        for condition in variant
        for ref in expr.fields(condition.expr)
    }
    if len(names) > MAX_ENGINE_FIELDS and rules:
        rule = rules[-1]
        problems.append(
            RuleProblem(
                rule.file,
                rule.line,
                rule.id,
                f"the rule set tests {len(names)} different fields; the engine takes at most "
                f"{MAX_ENGINE_FIELDS} per fact",
                "move per-subject values into master data fields",
            )
        )
    for name, values in tests.items():
        if len(values) > MAX_SIBLING_TESTS:
            rule = where[name]
            problems.append(
                RuleProblem(
                    rule.file,
                    rule.line,
                    rule.id,
                    f"{len(values)} different tests of field {name!r} across the rule set; "
                    f"the engine fails above {MAX_SIBLING_TESTS}",
                    "use master data fields (e.g. reorder_point) instead of one rule per value",
                )
            )
    return problems
