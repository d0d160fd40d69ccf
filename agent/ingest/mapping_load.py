"""`config/inputs.yaml` → `InputMappings`, or every problem as `file:line: mapping: reason (hint)`.

Read with the rule files' careful YAML reader (no anchors, size and depth limits, line numbers).
A missing file, an empty one or one with every mapping commented out: no mappings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agent.errors import ConfigError
from agent.ingest.mapping import (
    MAPPED_KINDS,
    PLACEHOLDER,
    TIME_UNITS,
    FieldChain,
    FieldRule,
    InputMapping,
    InputMappings,
    MappedKind,
    Template,
    TimeRule,
    TimeUnit,
    value_key,
)
from agent.ingest.schema import METRIC_NAME, RESERVED_FIELDS, SCHEMAS
from agent.ingest.sparkplug import LEVELS as SPARKPLUG_LEVELS
from agent.ingest.sparkplug import ONLINE, MetricPath, SparkplugMapping
from agent.model import Value
from agent.rulebook.yamlsrc import LineList, LineMap, YamlProblem, load_yaml

if TYPE_CHECKING:
    from jmespath.exceptions import JMESPathError

MAX_INPUTS_FILE_BYTES: Final = 1 << 20
MAX_MAPPINGS: Final = 1000
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAPPING_KEYS: Final = ("name", "topic", "kind", "site", "subject", "fields", "ts", "description")
_SPARKPLUG_KEYS: Final = ("name", "sparkplug", "site", "subject", "fields", "description")
_FIELD_KEYS: Final = ("path", "scale", "offset", "map")
# A path JMESPath reads as fields and nothing else (`data.temp`): its unquoted identifiers.
_PLAIN_PATH: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_TS_KEYS: Final = ("path", "unit")
_DEFAULT_SUBJECT: Final[Mapping[str, str]] = {
    "stock": "sku",
    "receipt": "sku",
    "telemetry": "machine",
}


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One thing wrong in an inputs file: `file:line: mapping-name: reason (hint: ...)`."""

    file: str
    line: int
    mapping: str
    reason: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: {self.mapping or '-'}: {self.reason}"
        return f"{where} (hint: {self.hint})" if self.hint else where


class InputsError(ConfigError):
    """The inputs file is refused; carries every problem found."""

    def __init__(self, problems: list[InputProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_inputs(path: Path | None) -> InputMappings | None:
    """The mappings of `path`; None when there is no file or it maps nothing (the built-in
    scheme alone, exactly as without an inputs file). Raise `InputsError`."""
    if path is None or not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc.strerror)
        raise InputsError(
            [InputProblem(str(path), 1, "", f"cannot read the file: {reason}")]
        ) from exc
    mappings = parse_inputs(text, str(path))
    return mappings if len(mappings) else None


def parse_inputs(text: str, file: str = "inputs.yaml") -> InputMappings:
    try:
        document = load_yaml(text, MAX_INPUTS_FILE_BYTES)
    except YamlProblem as exc:
        hint = "check the indentation and quoting" if exc.syntax else ""
        raise InputsError([InputProblem(file, exc.line, "", exc.reason, hint)]) from exc
    return _Reader(file).document(document)


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[InputProblem] = []

    def problem(self, line: int, mapping: str, reason: str, hint: str = "") -> None:
        self.problems.append(InputProblem(self.file, line, mapping, reason, hint))

    def document(self, document: Any) -> InputMappings:
        if document is None:
            return InputMappings([], self.file)
        if not isinstance(document, LineMap) or set(document) - {"inputs"}:
            line = document.line if isinstance(document, LineMap) else 1
            self.problem(line, "", "expected a mapping with one key, 'inputs'", _EXAMPLE_HINT)
            raise InputsError(self.problems)
        entries = document.get("inputs")
        if entries is None:
            return InputMappings([], self.file)
        if not isinstance(entries, LineList):
            self.problem(document.lines["inputs"], "", "'inputs' must be a list of mappings")
            raise InputsError(self.problems)
        if len(entries) > MAX_MAPPINGS:
            self.problem(entries.line, "", f"more than {MAX_MAPPINGS} mappings")
            raise InputsError(self.problems)
        mappings: list[InputMapping] = []
        sparkplug: list[SparkplugMapping] = []
        names: dict[str, int] = {}
        for entry, line in zip(entries, entries.lines, strict=True):
            if isinstance(entry, LineMap) and "sparkplug" in entry:
                found = self.sparkplug(entry, names)
                if found is not None:
                    sparkplug.append(found)
                continue
            built = self.mapping(entry, line, names)
            if built is not None:
                mappings.append(built)
        if self.problems:
            raise InputsError(self.problems)
        return InputMappings(mappings, self.file, sparkplug)

    def mapping(self, entry: Any, line: int, names: dict[str, int]) -> InputMapping | None:
        if not isinstance(entry, LineMap):
            self.problem(line, "", "each input must be a mapping (name, topic, kind, fields)")
            return None
        before = len(self.problems)
        name = self.name(entry, names)
        for key in entry:
            if key not in _MAPPING_KEYS:
                self.problem(
                    entry.lines[key],
                    name,
                    f"unknown key {key!r}",
                    f"known: {', '.join(_MAPPING_KEYS)}",
                )
        topic = self.topic(entry, name)
        levels = [found[1] for found in PLACEHOLDER.finditer(topic or "")]
        kind = entry.get("kind")
        if kind not in MAPPED_KINDS:
            self.problem(
                entry.lines.get("kind", entry.line),
                name,
                f"'kind' must be one of {', '.join(MAPPED_KINDS)}, got {kind!r}",
            )
            kind = None
        site = self.template(entry, "site", name, levels, "site")
        subject = (
            self.template(entry, "subject", name, levels, _DEFAULT_SUBJECT[kind])
            if kind is not None
            else None
        )
        fields = self.fields(entry, name, levels, kind)
        ts = self.time(entry, name)
        if len(self.problems) > before or topic is None or kind is None:
            return None
        assert site is not None and subject is not None
        mapped_kind: MappedKind = kind
        return InputMapping.build(
            name, topic, mapped_kind, site, subject, fields, ts, self.file, entry.line
        )

    def name(self, entry: LineMap, names: dict[str, int]) -> str:
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.problem(
                entry.lines.get("name", entry.line),
                "",
                f"'name' must be letters, digits, '.', '_' or '-' (up to 64), got {name!r}",
                "name: press-temperature",
            )
            return ""
        if name in names:
            self.problem(
                entry.lines["name"],
                name,
                f"a second input named {name!r} (first at line {names[name]})",
            )
        else:
            names[name] = entry.lines["name"]
        return name

    def sparkplug(self, entry: LineMap, names: dict[str, int]) -> SparkplugMapping | None:
        """A `sparkplug:` entry: metric names of spBv1.0 messages → telemetry fields."""
        before = len(self.problems)
        name = self.name(entry, names)
        for key in entry:
            if key not in _SPARKPLUG_KEYS:
                self.problem(
                    entry.lines[key],
                    name,
                    f"unknown key {key!r} in a sparkplug input",
                    f"known: {', '.join(_SPARKPLUG_KEYS)}",
                )
        spec = entry["sparkplug"]
        line = entry.lines["sparkplug"]
        ids: dict[str, str | None] = {"group": None, "edge": None}
        if spec is not None and (not isinstance(spec, LineMap) or set(spec) - set(ids)):
            self.problem(
                line,
                name,
                "'sparkplug' must be a mapping of 'group' and 'edge' (each optional)",
                "sparkplug: {group: Plant1}",
            )
        elif spec is not None:
            for key, value in spec.items():
                if not isinstance(value, str) or not value or any(c in value for c in "/+#\0"):
                    self.problem(
                        spec.lines[key],
                        name,
                        f"sparkplug {key} must be a Sparkplug id (no '/', '+', '#'), got {value!r}",
                    )
                else:
                    ids[key] = value
        levels = list(SPARKPLUG_LEVELS)
        site = self.template(entry, "site", name, levels, "group")
        subject = self.template(entry, "subject", name, levels, "device")
        rules = self.metric_fields(entry, name)
        if len(self.problems) > before or site is None or subject is None:
            return None
        return SparkplugMapping(
            name,
            ids["group"],
            ids["edge"],
            Template.of(site),
            Template.of(subject),
            tuple(rules),
            self.file,
            entry.line,
        )

    def metric_fields(self, entry: LineMap, name: str) -> list[FieldRule]:
        table = entry.get("fields")
        line = entry.lines.get("fields", entry.line)
        if not isinstance(table, LineMap) or not table:
            self.problem(
                line,
                name,
                "'fields' is required: field name → the metric that feeds it",
                "fields: {temp_c: Temperature, state: {metric: State, map: {1: running}}}",
            )
            return []
        rules: list[FieldRule] = []
        for field_name, spec in table.items():
            field_line = table.lines[field_name]
            if not self.field_name(field_name, field_line, name, [], "telemetry"):
                continue
            if field_name == ONLINE:
                self.problem(field_line, name, f"field {ONLINE!r} is set by BIRTH and DEATH")
                continue
            metric: object = field_name if spec is None else spec
            rest: Any = None
            if isinstance(spec, LineMap):
                metric = spec.get("metric", field_name)
                rest = LineMap({k: v for k, v in spec.items() if k != "metric"})
                rest.line, rest.lines = spec.line, spec.lines
                if "path" in spec:
                    self.problem(
                        field_line,
                        name,
                        f"field {field_name!r}: a sparkplug field names its 'metric', not a 'path'",
                    )
                    continue
            if not isinstance(metric, str) or not metric:
                self.problem(
                    field_line,
                    name,
                    f"field {field_name!r}: expected a metric name or a mapping of metric, "
                    "scale, offset, map",
                )
                continue
            rule = self.field(Template.of(str(field_name)), rest or None, field_line, name)
            if rule is not None:
                rules.append(replace(rule, path=MetricPath(metric), path_text=metric))
        return rules

    def topic(self, entry: LineMap, name: str) -> str | None:
        topic = entry.get("topic")
        line = entry.lines.get("topic", entry.line)
        if not isinstance(topic, str) or not topic:
            self.problem(
                line,
                name,
                "'topic' is required: an MQTT topic pattern",
                "topic: plant/{site}/line/+/{machine}/{metric}",
            )
            return None
        levels = topic.split("/")
        seen: set[str] = set()
        for index, level in enumerate(levels):
            named = PLACEHOLDER.fullmatch(level)
            if named:
                if named[1] in seen:
                    self.problem(line, name, f"level {{{named[1]}}} is named twice in {topic!r}")
                seen.add(named[1])
                continue
            if level == "#" and index == len(levels) - 1 and index > 0:
                continue
            if not level or level == "+":
                if level:
                    continue
                self.problem(
                    line, name, f"{topic!r} has an empty level", "no '//' and no '/' at either end"
                )
                return None
            if any(ch in level for ch in "+#{}\0"):
                self.problem(
                    line,
                    name,
                    f"level {level!r} of {topic!r}: '+', '#', '{{name}}' must fill a whole level",
                    "'#' only as the last level",
                )
                return None
        if topic.startswith("$"):
            self.problem(line, name, "topics starting with '$' belong to the broker")
            return None
        return topic

    def template(
        self, entry: LineMap, key: str, name: str, levels: list[str], default: str
    ) -> str | None:
        value = entry.get(key)
        line = entry.lines.get(key, entry.line)
        if value is None:
            if default in levels:
                return "{" + default + "}"
            self.problem(
                line,
                name,
                f"'{key}' is required: the topic has no {{{default or key}}} level",
                f'{key}: plant1, or {key}: "{{{default or key}}}" with such a level in the topic',
            )
            return None
        if not isinstance(value, str) or not value:
            self.problem(line, name, f"'{key}' must be text, got {value!r}")
            return None
        unknown = [level for level in Template.of(value).names if level not in levels]
        if unknown:
            self.problem(
                line,
                name,
                f"'{key}' uses {{{unknown[0]}}}, which the topic does not name",
                f"named levels: {', '.join(levels) or 'none'}",
            )
            return None
        if any(ch in PLACEHOLDER.sub("", value) for ch in "{}/+#\0"):
            self.problem(
                line, name, f"'{key}' {value!r}: only letters, digits and {{level}} placeholders"
            )
            return None
        return value

    def fields(self, entry: LineMap, name: str, levels: list[str], kind: object) -> list[FieldRule]:
        table = entry.get("fields")
        line = entry.lines.get("fields", entry.line)
        if not isinstance(table, LineMap) or not table:
            self.problem(
                line,
                name,
                "'fields' is required: field name → where its value is",
                "fields: {temp_c: value}",
            )
            return []
        rules: list[FieldRule] = []
        for field_name, spec in table.items():
            field_line = table.lines[field_name]
            if self.field_name(field_name, field_line, name, levels, kind):
                rule = self.field(Template.of(str(field_name)), spec, field_line, name)
                if rule is not None:
                    rules.append(rule)
        return rules

    def field_name(
        self, field_name: object, line: int, name: str, levels: list[str], kind: object
    ) -> bool:
        if not isinstance(field_name, str):
            self.problem(line, name, f"field name {field_name!r} must be text")
            return False
        template = Template.of(field_name)
        if template.names:
            unknown = [level for level in template.names if level not in levels]
            if unknown:
                self.problem(
                    line,
                    name,
                    f"field {field_name!r} uses {{{unknown[0]}}}, which the topic does not name",
                )
                return False
            return True
        if kind not in MAPPED_KINDS:
            return True  # reported already
        schema = SCHEMAS[kind]
        if field_name in schema:
            return True
        if kind != "telemetry":
            self.problem(
                line,
                name,
                f"{kind} messages have no field {field_name!r}",
                f"fields: {', '.join(schema)}",
            )
            return False
        if field_name in RESERVED_FIELDS or not METRIC_NAME.fullmatch(field_name):
            self.problem(
                line,
                name,
                f"{field_name!r} cannot be a metric name",
                "letters, digits and '_', not starting with a digit; not kind, site, sku, "
                "machine, topic or ts",
            )
            return False
        return True

    def field(self, field_name: Template, spec: Any, line: int, name: str) -> FieldRule | None:
        if spec is None:
            return FieldRule(field_name)
        if isinstance(spec, str):
            spec = {"path": spec}
        elif not isinstance(spec, LineMap):
            self.problem(
                line,
                name,
                f"field {field_name.text!r}: expected a path or a mapping of "
                f"{', '.join(_FIELD_KEYS)}",
            )
            return None
        for key in spec:
            if key not in _FIELD_KEYS:
                self.problem(
                    line,
                    name,
                    f"field {field_name.text!r}: unknown key {key!r}",
                    f"known: {', '.join(_FIELD_KEYS)}",
                )
                return None
        path_text = spec.get("path")
        path = (
            self.path(path_text, line, name, f"field {field_name.text!r}")
            if path_text is not None
            else None
        )
        scale = self.number(spec.get("scale"), line, name, field_name.text, "scale")
        offset = self.number(spec.get("offset"), line, name, field_name.text, "offset")
        values = self.values(spec.get("map"), line, name, field_name.text)
        if values is not None and (scale is not None or offset is not None):
            self.problem(
                line,
                name,
                f"field {field_name.text!r}: a value map and scale/offset do not go together",
            )
            return None
        if scale == 1.0 and offset in (None, 0.0):
            scale = offset = None  # the identity: keep integers integers
        return FieldRule(field_name, path, str(path_text or ""), scale, offset, values)

    def path(self, text: object, line: int, name: str, what: str) -> Any:
        if not isinstance(text, str) or not text:
            self.problem(line, name, f"{what}: 'path' must be a JMESPath expression, got {text!r}")
            return None
        if _PLAIN_PATH.fullmatch(text):  # what JMESPath parses as fields only: no jmespath
            return FieldChain(tuple(text.split(".")))
        import jmespath  # only for an expression (`values[0].v`)
        from jmespath.exceptions import JMESPathError

        try:
            compiled = jmespath.compile(text)
        except JMESPathError as exc:
            reason = _jmespath_reason(exc)
            self.problem(
                line,
                name,
                f"{what}: path {text!r} is not JMESPath: {reason}",
                "e.g. data.temp or values[0].v",
            )
            return None
        return FieldChain.of(compiled) or compiled

    def number(
        self, value: object, line: int, name: str, field_name: str, key: str
    ) -> float | None:
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            self.problem(
                line, name, f"field {field_name!r}: '{key}' must be a number, got {value!r}"
            )
            return None
        return float(value)

    def values(
        self, table: object, line: int, name: str, field_name: str
    ) -> Mapping[object, Value] | None:
        if table is None:
            return None
        if not isinstance(table, LineMap) or not table:
            self.problem(
                line,
                name,
                f"field {field_name!r}: 'map' must be a mapping of codes",
                "map: {0: idle, 1: running, 2: down}",
            )
            return None
        values: dict[object, Value] = {}
        for code, meaning in table.items():
            key = value_key(code)
            if key is None or isinstance(meaning, (dict, list)) or meaning is None:
                self.problem(
                    table.lines[code],
                    name,
                    f"field {field_name!r}: map {code!r}: {meaning!r} is not a code → value pair",
                )
                continue
            values[key] = meaning
        return values

    def time(self, entry: LineMap, name: str) -> TimeRule | None:
        spec = entry.get("ts")
        if spec is None:
            return None  # the arrival time
        line = entry.lines["ts"]
        if not isinstance(spec, LineMap) or set(spec) - set(_TS_KEYS) or "path" not in spec:
            self.problem(
                line,
                name,
                "'ts' must be a mapping with 'path' and 'unit'",
                "ts: {path: t, unit: ms} (iso, s or ms)",
            )
            return None
        unit = spec.get("unit")
        if unit not in TIME_UNITS:
            self.problem(
                spec.lines.get("unit", line), name, f"'ts' unit must be iso, s or ms, got {unit!r}"
            )
            return None
        path = self.path(spec["path"], spec.lines["path"], name, "ts")
        if path is None:
            return None
        ts_unit: TimeUnit = unit
        return TimeRule(path, str(spec["path"]), ts_unit)


_EXAMPLE_HINT: Final = "see config/inputs.yaml and docs/inputs.md for examples"


def _jmespath_reason(exc: JMESPathError) -> str:
    """JMESPath's own words, without the expression it repeats on a second line."""
    from jmespath.exceptions import IncompleteExpressionError, LexerError, ParseError

    if isinstance(exc, IncompleteExpressionError):
        return "the expression is incomplete"
    if isinstance(exc, ParseError):
        return f"{exc.msg} at column {exc.lex_position + 1}"
    if isinstance(exc, LexerError):
        return f"{exc.message} at column {exc.lexer_position + 1}"
    return str(exc).splitlines()[0].rstrip(": ")
