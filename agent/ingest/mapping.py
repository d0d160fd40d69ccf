"""Input mappings: a plant's own topics and payloads → the kind, subject and fields of a message.

Pure: a topic and a parsed payload in, the fields (still to be validated by `decode`) or the
reason the mapping refuses them out. `mapping_load.py` builds these from `config/inputs.yaml`.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from agent.model import MessageKind, Value

if TYPE_CHECKING:
    from agent.ingest.sparkplug import SparkplugMapping

MappedKind = Literal["stock", "receipt", "telemetry"]
TimeUnit = Literal["iso", "s", "ms"]
MAPPED_KINDS: Final[tuple[MappedKind, ...]] = ("stock", "receipt", "telemetry")
TIME_UNITS: Final[tuple[TimeUnit, ...]] = ("iso", "s", "ms")

# `{name}` in a topic level, a template or a field name.
PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PlainText(str):
    """A payload that is no JSON (`running`, `ON`): text when a field reads the bare payload;
    a path needs JSON."""

    __slots__ = ()


def _path_errors() -> tuple[type[Exception], ...]:
    """What a path's search may raise: JMESPath's error, once a mapping's expression was compiled
    with it (only then is a path not a `FieldChain`, which raises nothing). jmespath is imported
    by `mapping_load` for an expression only: an agent whose mappings read plain fields, or that
    has none, never loads it."""
    errors = sys.modules.get("jmespath.exceptions")
    return (errors.JMESPathError,) if errors is not None else ()


@dataclass(frozen=True, slots=True)
class FieldChain:
    """A JMESPath of plain fields (`data.temp`), walked without the JMESPath interpreter: the
    same result (None where a level is missing or no object), about 50 times faster."""

    names: tuple[str, ...]

    @classmethod
    def of(cls, compiled: Any) -> FieldChain | None:
        """The chain a compiled expression is, or None when it is more than fields."""
        node = compiled.parsed
        parts = node["children"] if node["type"] == "subexpression" else [node]
        if not all(part["type"] == "field" for part in parts):
            return None
        return cls(tuple(part["value"] for part in parts))

    def search(self, value: object) -> object:
        for name in self.names:
            if not isinstance(value, dict):
                return None
            value = value.get(name)
        return value


@dataclass(frozen=True, slots=True)
class Template:
    """A text with `{level}` placeholders filled from the topic (`{line}-{machine}`, `plant1`)."""

    text: str
    # The one level the text is made of, for the common case (`{machine}`): no substitution.
    only: str | None = None

    @classmethod
    def of(cls, text: str) -> Template:
        whole = PLACEHOLDER.fullmatch(text)
        return cls(text, whole[1] if whole else None)

    @property
    def names(self) -> list[str]:
        return PLACEHOLDER.findall(self.text)

    def fill(self, levels: Mapping[str, str]) -> str:
        if self.only is not None:
            return levels[self.only]
        if "{" not in self.text:
            return self.text
        return PLACEHOLDER.sub(lambda found: levels[found[1]], self.text)


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field of the message: where it is in the payload and how its value is turned."""

    name: Template
    path: Any = None  # a compiled JMESPath expression; None: the bare payload
    path_text: str = ""
    scale: float | None = None
    offset: float | None = None
    values: Mapping[object, Value] | None = None  # keys normalised by `value_key`

    def take(self, payload: object, levels: Mapping[str, str]) -> tuple[str, Value | None, str]:
        """(field name, value or None when absent, problem or "")."""
        name = self.name.fill(levels)
        if self.path is None:
            value = str(payload) if isinstance(payload, PlainText) else payload
        elif isinstance(payload, PlainText):
            return (
                name,
                None,
                f"field {name!r}: the payload is not JSON: no path {self.path_text!r} in it",
            )
        else:
            try:
                value = self.path.search(payload)
            except _path_errors() as exc:
                return name, None, f"field {name!r}: path {self.path_text!r} failed: {exc}"
        if value is None:
            return name, None, ""
        if self.values is not None:
            key = value_key(value)
            if key is None or key not in self.values:
                known = ", ".join(str(k) for k in self.values)
                return name, None, f"field {name!r}: {_shown(value)} is not in its map ({known})"
            return name, self.values[key], ""
        if self.scale is not None or self.offset is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return (
                    name,
                    None,
                    f"field {name!r}: scale/offset need a number, got {_shown(value)}",
                )
            try:
                value = value * (1.0 if self.scale is None else self.scale) + (self.offset or 0.0)
            except OverflowError:  # an integer of hundreds of digits is no float
                return name, None, f"field {name!r}: {_shown(value)} is out of range"
            return name, value, ""
        if isinstance(value, (str, int, float)):  # bool is an int
            return name, value, ""
        return name, None, f"field {name!r}: expected a number or text, got {_shown(value)}"


@dataclass(frozen=True, slots=True)
class TimeRule:
    path: Any  # compiled JMESPath
    path_text: str
    unit: TimeUnit


@dataclass(frozen=True, slots=True)
class Taken:
    """What a mapping took from a message: the fields to validate and the time, in seconds or
    ISO text (None: the arrival time)."""

    fields: dict[str, object]
    ts: float | str | None


@dataclass(frozen=True, slots=True)
class InputMapping:
    """`topic` pattern → `kind`, `site`, `subject` and `fields` (first mapping that fits wins)."""

    name: str
    topic: str
    kind: MappedKind
    site: Template
    subject: Template
    fields: tuple[FieldRule, ...]
    ts: TimeRule | None = None
    file: str = ""
    line: int = 0
    # Per topic level: a literal, or None for `+`/`{name}`; the names at their positions.
    _literals: tuple[str | None, ...] = field(default=(), repr=False)
    _names: tuple[tuple[int, str], ...] = field(default=(), repr=False)
    _rest: bool = field(default=False, repr=False)  # the pattern ends in `#`

    @classmethod
    def build(
        cls,
        name: str,
        topic: str,
        kind: MappedKind,
        site: str,
        subject: str,
        fields: Sequence[FieldRule],
        ts: TimeRule | None = None,
        file: str = "",
        line: int = 0,
    ) -> InputMapping:
        """Compile `topic` (already checked by the loader: see `pattern_problem`)."""
        levels = topic.split("/")
        rest = levels[-1] == "#"
        if rest:
            levels = levels[:-1]
        literals: list[str | None] = []
        names: list[tuple[int, str]] = []
        for index, level in enumerate(levels):
            named = PLACEHOLDER.fullmatch(level)
            if named:
                names.append((index, named[1]))
                literals.append(None)
            else:
                literals.append(None if level == "+" else level)
        return cls(
            name,
            topic,
            kind,
            Template.of(site),
            Template.of(subject),
            tuple(fields),
            ts,
            file,
            line,
            tuple(literals),
            tuple(names),
            rest,
        )

    @property
    def level_names(self) -> list[str]:
        return [name for _, name in self._names]

    @property
    def filter(self) -> str:
        """The MQTT subscription for the pattern: each `{name}` becomes `+`."""
        return PLACEHOLDER.sub("+", self.topic)

    def levels_of(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The named levels of a topic split at `/`, or None when the pattern does not fit."""
        literals = self._literals
        if len(parts) != len(literals) and not (self._rest and len(parts) > len(literals)):
            return None
        for literal, part in zip(literals, parts, strict=False):
            if literal is not None and literal != part:
                return None
        levels = {name: parts[index] for index, name in self._names}
        for value in levels.values():
            if not value:
                return None  # an empty site, SKU or machine is no subject
        return levels

    def take(self, payload: object, levels: Mapping[str, str]) -> Taken | str:
        """The fields and time of a parsed payload (`PlainText` when no JSON), or the problems."""
        fields: dict[str, object] = {}
        problems: list[str] = []
        for rule in self.fields:
            name, value, problem = rule.take(payload, levels)
            if problem:
                problems.append(problem)
            elif name == "ts":  # a `{metric}` level named so: the time is `ts:`'s, not a field
                problems.append("field 'ts': the time is read by the mapping's 'ts', not a field")
            elif name in fields:
                problems.append(f"field {name!r} is given twice")
            else:
                fields[name] = value
        ts: float | str | None = None
        if self.ts is not None:
            ts_or_problem = self._time(payload)
            if isinstance(ts_or_problem, tuple):
                problems.append(ts_or_problem[0])
            else:
                ts = ts_or_problem
        if problems:
            return "; ".join(problems)
        return Taken(fields, ts)

    def _time(self, payload: object) -> float | str | tuple[str]:
        rule = self.ts
        assert rule is not None
        if isinstance(payload, PlainText):
            return (f"timestamp: the payload is not JSON, so {rule.path_text!r} cannot be read",)
        try:
            value = rule.path.search(payload)
        except _path_errors() as exc:
            return (f"timestamp: path {rule.path_text!r} failed: {exc}",)
        if value is None:
            return (f"timestamp: no value at {rule.path_text!r}",)
        if rule.unit == "iso":
            if isinstance(value, str):
                return value
            return (
                f"timestamp at {rule.path_text!r}: expected ISO 8601 text, got {_shown(value)}",
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = "epoch seconds" if rule.unit == "s" else "epoch milliseconds"
            return (f"timestamp at {rule.path_text!r}: expected {what}, got {_shown(value)}",)
        if isinstance(value, float) and not math.isfinite(value):
            return (f"timestamp at {rule.path_text!r}: expected a finite number",)
        if rule.unit == "ms":
            if abs(value) > 1e18:  # beyond any date `decode` accepts; a float would overflow
                return (f"timestamp at {rule.path_text!r}: {value!r} ms is out of range",)
            return value / 1000
        return value


@dataclass(frozen=True, slots=True)
class Mapped:
    """A topic one mapping fits: the mapping, its named levels, the site and the subject."""

    mapping: InputMapping
    levels: Mapping[str, str]
    site: str
    subject: str

    @property
    def kind(self) -> MessageKind:
        return self.mapping.kind


class InputMappings:
    """The mappings of one inputs file, in the file's order: the first that fits a topic wins."""

    __slots__ = ("file", "mappings", "sparkplug")

    def __init__(
        self,
        mappings: Sequence[InputMapping],
        file: str = "",
        sparkplug: Sequence[SparkplugMapping] = (),
    ) -> None:
        self.mappings = tuple(mappings)
        self.file = file
        self.sparkplug = tuple(sparkplug)  # `sparkplug:` entries: spBv1.0 topics, tried first

    def __len__(self) -> int:
        return len(self.mappings) + len(self.sparkplug)

    def __repr__(self) -> str:
        names = [m.name for m in self.mappings] + [m.name for m in self.sparkplug]
        return f"InputMappings({names!r})"

    def filters(self) -> list[str]:
        """The MQTT subscriptions that cover every mapped topic (each once)."""
        sparkplug = [f for mapping in self.sparkplug for f in mapping.filters]
        return list(dict.fromkeys([*sparkplug, *(mapping.filter for mapping in self.mappings)]))

    def match_sparkplug(self, topic: str) -> tuple[SparkplugMapping, str, dict[str, str]] | None:
        """(mapping, message type, levels) of the first `sparkplug:` entry fitting `topic`."""
        if not self.sparkplug or not topic.startswith("spBv1.0/"):
            return None
        parts = topic.split("/")
        for mapping in self.sparkplug:
            found = mapping.levels_of(parts)
            if found is not None:
                return mapping, found[0], found[1]
        return None

    def filters_for(self, sites: Sequence[str]) -> list[str]:
        """`filters` limited to `sites` (`mqtt.sites`): a `{site}` level narrowed to each site;
        a mapping of a fixed site kept only for its site; one whose site is made of several
        levels kept whole (its messages are the agent's to take)."""
        narrowed: list[str] = []
        for spb in self.sparkplug:  # a fixed site: only for its agent; a template: whole
            if spb.site.names or spb.site.text in sites:
                narrowed.extend(spb.filters)
        for mapping in self.mappings:
            site = mapping.site
            if site.only is not None:
                index = next(i for i, name in mapping._names if name == site.only)
                for one in sites:
                    levels = mapping.filter.split("/")
                    levels[index] = one
                    narrowed.append("/".join(levels))
            elif not site.names:
                if site.text in sites:
                    narrowed.append(mapping.filter)
            else:
                narrowed.append(mapping.filter)
        return list(dict.fromkeys(narrowed))

    def match(self, topic: str) -> Mapped | None:
        if not self.mappings:
            return None
        parts = topic.split("/")
        for mapping in self.mappings:
            levels = mapping.levels_of(parts)
            if levels is not None:
                return Mapped(
                    mapping, levels, mapping.site.fill(levels), mapping.subject.fill(levels)
                )
        return None


def value_key(value: object) -> object:
    """A value map's key for `value`: `1`, `1.0` are one key; `true` is not `1`; None: none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, (int, str)):
        return value
    return None


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is True or value is False:
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"text {value[:60]!r}"
    return f"{value!r}"[:60]
