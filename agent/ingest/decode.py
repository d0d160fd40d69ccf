"""Raw MQTT bytes → a validated `Message`, or a `Rejected` saying why in words a person can act on.

Never raises: whatever arrives on the wire becomes one or the other (a dead letter is not a crash).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

import orjson

from agent.ingest.mapping import Mapped, PlainText
from agent.ingest.schema import METRIC_NAME, OPEN_NUMERIC_KINDS, RESERVED_FIELDS, SCHEMAS, FieldSpec
from agent.ingest.sparkplug import Reading, SparkplugMapping
from agent.ingest.topics import TopicMap
from agent.model import Message, MessageKind, Rejected, Value

MAX_BYTES: Final = 65536
# A site, SKU or machine id longer than this is a dead letter: ids are keys the world state, the
# snapshot and every decision carry (3,000 SKUs of 4,000 characters made a 53 MB database).
MAX_LEVEL_CHARS: Final = 128
MAX_KEYS: Final = 100
MAX_STRING_LENGTH: Final = 1024
MAX_PROBLEMS_SHOWN: Final = 5

# Integers beyond 64 bits fit neither the database nor the rule engine.
_INT_LIMIT: Final = 2**63
_TS_MIN: Final = datetime(2000, 1, 1, tzinfo=UTC)
_TS_MAX: Final = datetime(2100, 1, 1, tzinfo=UTC)
_EPOCH_MIN: Final = _TS_MIN.timestamp()
_EPOCH_MAX: Final = _TS_MAX.timestamp()

_ALLOWED_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {kind: ", ".join([*fields, "ts"]) for kind, fields in SCHEMAS.items()}
)


def decode(
    topic: str,
    raw: bytes,
    received_at: datetime,
    topics: TopicMap,
    max_bytes: int = MAX_BYTES,
    max_level_chars: int = MAX_LEVEL_CHARS,
) -> Message | Rejected:
    """Decode and validate one MQTT message.

    A JSON `null` for an optional field means the field is absent (it is left out of `fields`);
    for a required field it counts as missing. `ts` may be ISO 8601 text (naive means UTC) or
    epoch seconds, between 2000 and 2100; without it the message is dated `received_at`.
    """
    if received_at.tzinfo is not UTC:
        received_at = _as_utc(received_at)
    if topics.inputs is not None:
        found = topics.inputs.match_sparkplug(topic)
        if found is not None:  # `inputs try`: the first reading (the pipeline takes them all)
            readings = _decode_sparkplug(
                found, topic, raw, received_at, topics, max_bytes, max_level_chars
            )
            if readings:
                return readings[0]
            reason = f"input mapping {found[0].name!r}: no reading of a mapped machine in it"
            return Rejected(topic, raw, reason, received_at)
        mapped = topics.inputs.match(topic)
        if mapped is not None:
            return _decode_mapped(mapped, topic, raw, received_at, max_bytes, max_level_chars)
    match = topics.match_builtin(topic)
    if match is None:
        return Rejected(
            topic, raw, f"unknown topic: no pattern matches {_quote(topic, 200)}", received_at
        )
    longest = max(len(match.site), len(match.subject))
    if longest > max_level_chars:
        reason = (
            f"topic level of {longest} characters exceeds the {max_level_chars}-character limit "
            "(ingest.max_topic_level_chars)"
        )
        return Rejected(topic, raw, reason, received_at)
    reason, payload = _parse(raw, max_bytes)
    if payload is None:
        return Rejected(topic, raw, reason, received_at)
    if len(payload) > MAX_KEYS:
        reason = f"payload has {len(payload)} keys, more than the limit of {MAX_KEYS}"
        return Rejected(topic, raw, reason, received_at)
    fields: dict[str, Value] = {}
    problems = _validate(match.kind, payload, fields)
    ts = received_at
    raw_ts = payload.get("ts")
    if raw_ts is not None:
        ts_or_problem = _timestamp(raw_ts)
        if isinstance(ts_or_problem, str):
            problems.append(ts_or_problem)
        else:
            ts = ts_or_problem
    if problems:
        return Rejected(topic, raw, _summary(problems), received_at)
    return Message(match.kind, topic, match.site, match.subject, fields, ts, received_at)


def decode_all(
    topic: str,
    raw: bytes,
    received_at: datetime,
    topics: TopicMap,
    max_bytes: int = MAX_BYTES,
    max_level_chars: int = MAX_LEVEL_CHARS,
) -> list[Message | Rejected]:
    """`decode`, and a Sparkplug B message (a `sparkplug:` input mapping), which may hold
    readings of several machines or times, or none (a birth of node metrics, a stale death)."""
    if received_at.tzinfo is not UTC:
        received_at = _as_utc(received_at)
    found = topics.inputs.match_sparkplug(topic) if topics.inputs is not None else None
    if found is None:
        return [decode(topic, raw, received_at, topics, max_bytes, max_level_chars)]
    return _decode_sparkplug(found, topic, raw, received_at, topics, max_bytes, max_level_chars)


def _decode_sparkplug(
    found: tuple[SparkplugMapping, str, dict[str, str]],
    topic: str,
    raw: bytes,
    received_at: datetime,
    topics: TopicMap,
    max_bytes: int,
    max_level_chars: int,
) -> list[Message | Rejected]:
    mapping, kind, levels = found

    def refused(reason: str) -> Rejected:
        return Rejected(topic, raw, f"input mapping {mapping.name!r}: {reason}", received_at)

    if len(raw) > max_bytes:
        return [refused(f"payload of {len(raw)} bytes exceeds the {max_bytes}-byte limit")]
    out: list[Message | Rejected] = []
    for reading in topics.sparkplug.read(mapping, kind, levels, raw, received_at):
        if not isinstance(reading, Reading):
            out.append(refused(reading))
            continue
        longest = max(len(reading.site), len(reading.subject))
        if longest > max_level_chars:
            out.append(
                refused(
                    f"site or subject of {longest} characters exceeds the {max_level_chars}-"
                    "character limit (ingest.max_topic_level_chars)"
                )
            )
            continue
        fields: dict[str, Value] = {}
        problems = _validate("telemetry", reading.fields, fields)
        if not _TS_MIN <= reading.ts < _TS_MAX:
            problems.append(f"timestamp {reading.ts:%Y-%m-%d} is outside 2000-01-01..2100-01-01")
        if problems:
            out.append(refused(_summary(problems)))
            continue
        message = Message(
            "telemetry", topic, reading.site, reading.subject, fields, reading.ts, received_at
        )
        out.append(message)
    return out


def _decode_mapped(
    mapped: Mapped,
    topic: str,
    raw: bytes,
    received_at: datetime,
    max_bytes: int,
    max_level_chars: int,
) -> Message | Rejected:
    """A message on a topic of an input mapping: its fields taken as the mapping says, then
    validated as the built-in scheme's are. A refusal names the mapping."""
    name = mapped.mapping.name

    def refused(reason: str) -> Rejected:
        return Rejected(topic, raw, f"input mapping {name!r}: {reason}", received_at)

    longest = max(len(mapped.site), len(mapped.subject))
    if longest > max_level_chars:
        return refused(
            f"site or subject of {longest} characters exceeds the {max_level_chars}-character "
            "limit (ingest.max_topic_level_chars)"
        )
    reason, payload = _parse_any(raw, max_bytes)
    if reason:
        return refused(reason)
    taken = mapped.mapping.take(payload, mapped.levels)
    if isinstance(taken, str):
        return refused(taken)
    fields: dict[str, Value] = {}
    problems = _validate(mapped.kind, taken.fields, fields)
    ts = received_at
    if taken.ts is not None:
        ts_or_problem = _timestamp(taken.ts)
        if isinstance(ts_or_problem, str):
            problems.append(ts_or_problem)
        else:
            ts = ts_or_problem
    if problems:
        return refused(_summary(problems))
    return Message(mapped.kind, topic, mapped.site, mapped.subject, fields, ts, received_at)


class _DuplicateKey(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object as a dict, refusing a key given twice: `json.loads` keeps the last one,
    so `{"on_hand": 5, "on_hand": 500}` would mean whatever the last gateway field said."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateKey(name)
            seen.add(name)
    return obj


# One decoder, made once: `json.loads(text, object_pairs_hook=...)` builds a decoder per call,
# which doubled the parse time; this one costs about 0.1-0.4 µs more than `json.loads`.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys)
# Metric names found well-formed (the regular expression is asked once per name).
_METRIC_NAMES: set[str] = set()
_METRIC_NAMES_MAX: Final = 10_000


def _parse(raw: bytes, max_bytes: int) -> tuple[str, dict[str, object] | None]:
    """The payload as a JSON object, or the reason it is not one."""
    reason, payload = _parse_json(raw, max_bytes)
    if reason:
        return reason, None
    if not isinstance(payload, dict):
        return f"payload must be a JSON object, got {_describe(payload)}", None
    return "", payload


def _parse_any(raw: bytes, max_bytes: int) -> tuple[str, object]:
    """The payload as any JSON value, or as its text (a `PlainText`) when
    it is no JSON at all (`running`); the reason when it is not even text."""
    reason, payload = _parse_json(raw, max_bytes)
    if not reason:
        return "", payload
    if not reason.startswith("invalid JSON"):
        return reason, None
    text = raw.decode("utf-8-sig").strip()
    if len(text) > MAX_STRING_LENGTH:
        return reason, None
    return "", PlainText(text)


def _parse_json(raw: bytes, max_bytes: int) -> tuple[str, object]:
    if len(raw) > max_bytes:
        return f"payload of {len(raw)} bytes exceeds the {max_bytes}-byte limit", None
    fast = _flat_object(raw)
    if fast is not None:
        return "", fast
    try:
        # utf-8-sig: a byte-order mark, which some gateways write, is not an error.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return f"payload is not UTF-8: invalid byte 0x{raw[exc.start]:02x} at {exc.start}", None
    try:
        payload = _DECODER.decode(text)
    except _DuplicateKey as exc:
        return f"duplicate key {_quote(exc.name)}", None
    except json.JSONDecodeError as exc:
        return f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", None
    except ValueError:  # an integer literal longer than Python converts
        return f"invalid JSON: a number has more than {sys.get_int_max_str_digits()} digits", None
    except RecursionError:
        return "invalid JSON: nested too deeply", None
    return "", payload


def _flat_object(raw: bytes) -> dict[str, object] | None:
    """The usual payload, one JSON object without nested objects, parsed by orjson; None for
    anything else, which the checking parser reads (and explains). orjson keeps the last of a
    repeated key silently, so the fast path is taken only when no key can repeat: no escapes
    (a key's bytes are its text) and each key's quoted text is in the bytes once. orjson refuses
    what the checking parser must explain (NaN, invalid UTF-8, a BOM), and reads an integer
    beyond 64 bits as a float: a float that large goes to the checking parser too."""
    if b"\\" in raw or raw.count(b"{") != 1:
        return None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(payload) is not dict:
        return None
    for key, value in payload.items():
        if raw.count(b'"%s"' % key.encode()) != 1:
            return None
        # orjson reads an integer beyond 64 bits as a float: such a float is the parser's to judge.
        if _huge_float(value) or (type(value) is list and any(map(_huge_float, value))):
            return None
    return payload


def _huge_float(value: object) -> bool:
    return type(value) is float and not -_INT_LIMIT < value < _INT_LIMIT


def _validate(kind: MessageKind, payload: dict[str, object], fields: dict[str, Value]) -> list[str]:
    """Copy the valid fields of `payload` into `fields`; return what is wrong, field by field."""
    schema = SCHEMAS[kind]
    open_numeric = kind in OPEN_NUMERIC_KINDS
    problems: list[str] = []
    for name, value in payload.items():
        if name == "ts":
            continue
        spec = schema.get(name)
        if spec is not None:
            problem = _check(name, value, spec)
        elif open_numeric:
            problem = _check_metric(name, value)
        else:
            problem = (
                f"unknown field {_quote(name)} for {kind} messages (allowed: {_ALLOWED_KEYS[kind]})"
            )
        if problem is not None:
            problems.append(problem)
        elif isinstance(value, (str, int, float)):  # bool is an int; None means absent
            fields[name] = value
    for name, spec in schema.items():
        if spec.required and payload.get(name) is None:
            problems.append(f"missing required field {_quote(name)}")
    return problems


def _check(name: str, value: object, spec: FieldSpec) -> str | None:
    """What is wrong with one declared field's value, or None."""
    if value is None:
        return None  # absent; `_validate` reports it if it is required
    if spec.type == "number" or spec.type == "integer":
        problem = _check_number(name, value, integer=spec.type == "integer")
        if problem is not None or not isinstance(value, (int, float)):
            return problem
        if spec.minimum is not None and value < spec.minimum:
            return f"field {_quote(name)}: must be >= {spec.minimum:g}, got {_number(value)}"
        if spec.exclusive_minimum is not None and value <= spec.exclusive_minimum:
            limit = spec.exclusive_minimum
            return f"field {_quote(name)}: must be > {limit:g}, got {_number(value)}"
        return None
    if spec.type == "string":
        if not isinstance(value, str):
            return _expected(name, "text", value)
        if spec.choices and value not in spec.choices:
            choices = ", ".join(spec.choices)
            return f"field {_quote(name)}: expected one of {choices}; got {_quote(value)}"
        return _check_text(name, value)
    if not isinstance(value, bool):
        return _expected(name, "true or false", value)
    return None


def _check_metric(name: str, value: object) -> str | None:
    """What is wrong with an undeclared telemetry field (a metric), or None."""
    if name in RESERVED_FIELDS:
        return f"field {_quote(name)}: reserved for the subject's identity, not a metric"
    if name not in _METRIC_NAMES:
        if METRIC_NAME.fullmatch(name) is None:
            return (
                f"field {_quote(name)}: a metric name must be letters, digits and '_', not "
                "starting with a digit, at most 64 characters"
            )
        if len(_METRIC_NAMES) < _METRIC_NAMES_MAX:
            _METRIC_NAMES.add(name)
    if value is None:
        return None
    return _check_number(name, value, integer=False, what="a number (a metric)")


def _check_number(name: str, value: object, *, integer: bool, what: str = "") -> str | None:
    # bool is a subclass of int in Python, but `true` is not a number in a payload.
    if isinstance(value, int) and not isinstance(value, bool):
        if -_INT_LIMIT <= value < _INT_LIMIT:
            return None
        return f"field {_quote(name)}: integer out of range (more than 64 bits)"
    if isinstance(value, float) and not integer:
        if math.isfinite(value):
            return None
        return f"field {_quote(name)}: expected a finite number, got {_describe(value)}"
    return _expected(name, what or ("an integer" if integer else "a number"), value)


def _check_text(name: str, value: str) -> str | None:
    if len(value) > MAX_STRING_LENGTH:
        return (
            f"field {_quote(name)}: text of {len(value)} characters exceeds the "
            f"{MAX_STRING_LENGTH}-character limit"
        )
    if "\0" in value:
        return f"field {_quote(name)}: text must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: not storable
            return f"field {_quote(name)}: text contains an invalid \\u escape (a lone surrogate)"
    return None


def _timestamp(value: object) -> datetime | str:
    """The UTC time `value` stands for, or what is wrong with it."""
    if isinstance(value, str):
        return _iso_timestamp(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _expected("ts", "ISO 8601 text or epoch seconds", value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"field 'ts': expected a finite number, got {_describe(value)}"
    if _EPOCH_MIN <= value < _EPOCH_MAX:
        return datetime.fromtimestamp(value, UTC)
    # Compared, not divided: a huge integer cannot be turned into a float.
    in_ms = _EPOCH_MIN * 1000 <= value < _EPOCH_MAX * 1000
    hint = " (milliseconds? send seconds)" if in_ms else ""
    return f"field 'ts': epoch seconds {_number(value)} are outside 2000-01-01..2100-01-01{hint}"


def _iso_timestamp(text: str) -> datetime | str:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return f"field 'ts': expected ISO 8601 time or epoch seconds, got {_describe(text)}"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not _TS_MIN <= parsed < _TS_MAX:
        return f"field 'ts': {_quote(text)} is outside 2000-01-01..2100-01-01"
    return parsed.astimezone(UTC)


def _as_utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _expected(name: str, what: str, value: object) -> str:
    return f"field {_quote(name)}: expected {what}, got {_describe(value)}"


def _describe(value: object) -> str:
    """A JSON value named the way JSON names it: `string 'lots'`, `boolean true`, `an array`."""
    if value is None:
        return "null"
    if value is True or value is False:
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (int, float)):
        return f"number {_number(value)}"
    return "an object" if isinstance(value, dict) else "an array"


def _number(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _quote(text: str, limit: int = 60) -> str:
    """`text` quoted for a reason: shortened, and escaped so that it is always storable."""
    if len(text) > limit:
        return repr(text[:limit]) + "…"
    return repr(text)


def _summary(problems: list[str]) -> str:
    if len(problems) <= MAX_PROBLEMS_SHOWN:
        return "; ".join(problems)
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return "; ".join(problems[:MAX_PROBLEMS_SHOWN]) + f"; and {more} more"
