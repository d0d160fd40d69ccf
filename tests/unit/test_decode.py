"""The decoder: each message becomes a validated Message or a Rejected with a reason; no crash."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ingest.decode import decode
from agent.ingest.schema import KNOWN_METRICS, SCHEMAS, FieldSpec
from agent.ingest.topics import TopicMap
from agent.model import Message, Rejected

TOPICS = TopicMap()
NOW = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
STOCK = "factory/plant1/stock/BRG-6204"
RECEIPT = "factory/plant1/receipt/BRG-6204"
TELEMETRY = "factory/plant1/machine/press-3/telemetry"
COMMAND = "factory/plant1/agent/command"
TOPIC_OF = {"stock": STOCK, "receipt": RECEIPT, "telemetry": TELEMETRY, "command": COMMAND}


def accepted(topic: str, payload: object) -> Message:
    result = decode(topic, json.dumps(payload).encode(), NOW, TOPICS)
    assert isinstance(result, Message), result
    return result


def reason(topic: str, raw: bytes | str, **kwargs: int) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    result = decode(topic, data, NOW, TOPICS, **kwargs)
    assert isinstance(result, Rejected), result
    assert result.topic == topic
    assert result.raw == data
    assert result.received_at == NOW
    return result.reason


# ---------------------------------------------------------------------------------------------
# Valid messages of every kind


def test_stock_message_carries_site_sku_and_fields() -> None:
    message = accepted(STOCK, {"on_hand": 120, "on_order": 50.5, "unit": "pcs"})
    assert message == Message(
        kind="stock",
        topic=STOCK,
        site="plant1",
        subject="BRG-6204",
        fields={"on_hand": 120, "on_order": 50.5, "unit": "pcs"},
        ts=NOW,
        received_at=NOW,
    )


def test_integers_stay_int_and_floats_stay_float() -> None:
    fields = accepted(STOCK, {"on_hand": 3, "on_order": 2.0}).fields
    assert type(fields["on_hand"]) is int
    assert type(fields["on_order"]) is float


def test_stock_on_hand_may_be_negative_as_the_erp_reports_it() -> None:
    assert accepted(STOCK, {"on_hand": -4}).fields == {"on_hand": -4}


def test_receipt_message() -> None:
    message = accepted(RECEIPT, {"quantity": 300, "reference": "PO-4711"})
    assert (message.kind, message.subject) == ("receipt", "BRG-6204")
    assert message.fields == {"quantity": 300, "reference": "PO-4711"}


def test_telemetry_message_accepts_declared_fields_and_any_numeric_metric() -> None:
    payload = {
        "state": "running",
        "fault": "E042",
        "cycles": 18211,
        "good": 18000,
        "scrap": 211,
        "temp_c": 71.5,
        "vibration_mm_s": 2.25,
        "spindle_load_pct": 64,
    }
    message = accepted(TELEMETRY, payload)
    assert (message.kind, message.site, message.subject) == ("telemetry", "plant1", "press-3")
    assert message.fields == payload


@pytest.mark.parametrize("metric", KNOWN_METRICS)
def test_every_known_metric_is_accepted(metric: str) -> None:
    assert accepted(TELEMETRY, {metric: 1.5}).fields == {metric: 1.5}


def test_command_message_has_no_subject() -> None:
    message = accepted(COMMAND, {"command": "ack", "id": 12, "by": "ann", "note": "on it"})
    assert (message.kind, message.site, message.subject) == ("command", "plant1", "")
    assert message.fields == {"command": "ack", "id": 12, "by": "ann", "note": "on it"}


def test_null_for_an_optional_field_means_absent() -> None:
    message = accepted(TELEMETRY, {"state": "idle", "fault": None, "temp_c": None})
    assert message.fields == {"state": "idle"}
    assert accepted(STOCK, {"on_hand": 1, "unit": None, "ts": None}).fields == {"on_hand": 1}


def test_a_byte_order_mark_is_tolerated() -> None:
    result = decode(STOCK, b'\xef\xbb\xbf{"on_hand": 1}', NOW, TOPICS)
    assert isinstance(result, Message)


def test_topic_prefix_with_several_levels() -> None:
    topics = TopicMap("acme/plant1")
    result = decode("acme/plant1/hall-b/stock/BRG", b'{"on_hand": 7}', NOW, topics)
    assert isinstance(result, Message)
    assert (result.site, result.subject) == ("hall-b", "BRG")


# ---------------------------------------------------------------------------------------------
# ts


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-01-05T07:30:00Z", datetime(2026, 1, 5, 7, 30, tzinfo=UTC)),
        ("2026-01-05T08:30:00+01:00", datetime(2026, 1, 5, 7, 30, tzinfo=UTC)),
        ("2026-01-05T02:30:00-05:00", datetime(2026, 1, 5, 7, 30, tzinfo=UTC)),
        ("2026-01-05T07:30:00", datetime(2026, 1, 5, 7, 30, tzinfo=UTC)),
        ("2026-01-05T07:30:00.250Z", datetime(2026, 1, 5, 7, 30, 0, 250000, tzinfo=UTC)),
        ("2026-01-05 07:30:00+00:00", datetime(2026, 1, 5, 7, 30, tzinfo=UTC)),
        (1767598200, datetime(2026, 1, 5, 7, 30, tzinfo=UTC)),
        (1767598200.5, datetime(2026, 1, 5, 7, 30, 0, 500000, tzinfo=UTC)),
    ],
)
def test_ts_as_iso_8601_or_epoch_seconds_becomes_aware_utc(
    ts: str | float, expected: datetime
) -> None:
    message = accepted(STOCK, {"on_hand": 1, "ts": ts})
    assert message.ts == expected
    assert message.ts.utcoffset() == timedelta(0)
    assert "ts" not in message.fields
    assert message.received_at == NOW


def test_missing_ts_means_the_receive_time() -> None:
    assert accepted(STOCK, {"on_hand": 1}).ts == NOW


def test_receive_time_is_normalised_to_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    result = decode(STOCK, b'{"on_hand": 1}', local, TOPICS)
    assert isinstance(result, Message)
    assert result.ts == NOW
    assert result.ts.tzinfo is UTC
    assert result.received_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (
            "yesterday",
            "field 'ts': expected ISO 8601 time or epoch seconds, got string 'yesterday'",
        ),
        (
            "1999-12-31T23:59:59Z",
            "field 'ts': '1999-12-31T23:59:59Z' is outside 2000-01-01..2100-01-01",
        ),
        ("0001-01-01T00:00:00+01:00", "is outside 2000-01-01..2100-01-01"),
        ("9999-12-31T23:59:59-01:00", "is outside 2000-01-01..2100-01-01"),
        (0, "field 'ts': epoch seconds 0 are outside 2000-01-01..2100-01-01"),
        (4102444800, "field 'ts': epoch seconds 4102444800 are outside 2000-01-01..2100-01-01"),
        (1767598200000, "outside 2000-01-01..2100-01-01 (milliseconds? send seconds)"),
        (10**400, "field 'ts': epoch seconds 1000000000"),
        (-(10**400), "field 'ts': epoch seconds -1000000000"),
        (True, "field 'ts': expected ISO 8601 text or epoch seconds, got boolean true"),
        ([1], "field 'ts': expected ISO 8601 text or epoch seconds, got an array"),
    ],
)
def test_bad_ts_is_rejected(ts: object, expected: str) -> None:
    assert expected in reason(STOCK, json.dumps({"on_hand": 1, "ts": ts}))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_ts_is_rejected(literal: str) -> None:
    assert reason(STOCK, '{"on_hand": 1, "ts": %s}' % literal).startswith(  # noqa: UP031
        "field 'ts': expected a finite number, got "
    )


# ---------------------------------------------------------------------------------------------
# Rejections, in the order the decoder checks


def test_unknown_topic() -> None:
    assert reason("x/y", b'{"on_hand": 1}') == "unknown topic: no pattern matches 'x/y'"


def test_unknown_topic_is_reported_before_anything_about_the_payload() -> None:
    assert reason("x/y", b"\xff" * 70000).startswith("unknown topic")


def test_payload_over_the_size_limit() -> None:
    raw = b"{" + b" " * 69998 + b"}"
    assert reason(STOCK, raw) == "payload of 70000 bytes exceeds the 65536-byte limit"
    assert reason(STOCK, b'{"on_hand": 1}', max_bytes=10) == (
        "payload of 14 bytes exceeds the 10-byte limit"
    )


def test_payload_not_utf8() -> None:
    assert reason(STOCK, b'{"unit": "\xff"}') == "payload is not UTF-8: invalid byte 0xff at 10"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "invalid JSON at line 1 column 1: Expecting value"),
        ("on_hand=5", "invalid JSON at line 1 column 1: Expecting value"),
        ('{"on_hand": 5', "invalid JSON at line 1 column 14: Expecting ',' delimiter"),
        (
            '{\n  "on_hand": 5\n  "unit": "kg"}',
            "invalid JSON at line 3 column 3: Expecting ',' delimiter",
        ),
        ('{"on_hand": 1} {}', "invalid JSON at line 1 column 16: Extra data"),
    ],
)
def test_payload_not_json(raw: str, expected: str) -> None:
    assert reason(STOCK, raw) == expected


def test_an_integer_too_long_to_convert_is_invalid_json() -> None:
    assert reason(STOCK, '{"on_hand": %s}' % ("9" * 5000)).startswith(
        "invalid JSON: a number has more than"
    )


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_rejected_not_a_crash(opener: str) -> None:
    assert reason(STOCK, opener * 12000) == "invalid JSON: nested too deeply"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[1, 2]", "payload must be a JSON object, got an array"),
        ("5", "payload must be a JSON object, got number 5"),
        ('"five"', "payload must be a JSON object, got string 'five'"),
        ("null", "payload must be a JSON object, got null"),
        ("true", "payload must be a JSON object, got boolean true"),
    ],
)
def test_payload_not_an_object(raw: str, expected: str) -> None:
    assert reason(STOCK, raw) == expected


def test_more_than_100_keys() -> None:
    payload = {"on_hand": 1} | {f"m{i}": i for i in range(100)}
    assert reason(TELEMETRY, json.dumps(payload)) == (
        "payload has 101 keys, more than the limit of 100"
    )
    assert isinstance(
        decode(TELEMETRY, json.dumps(payload | {"on_hand": None}).encode(), NOW, TOPICS), Rejected
    )
    del payload["on_hand"]
    assert len(accepted(TELEMETRY, payload).fields) == 100


@pytest.mark.parametrize(
    ("value", "described"), [({"qty": 5}, "an object"), ([5], "an array"), ([], "an array")]
)
def test_nested_values_are_rejected_naming_the_field(value: object, described: str) -> None:
    assert reason(STOCK, json.dumps({"on_hand": value})) == (
        f"field 'on_hand': expected a number, got {described}"
    )
    assert reason(TELEMETRY, json.dumps({"temp_c": value})) == (
        f"field 'temp_c': expected a number (a metric), got {described}"
    )
    assert reason(STOCK, json.dumps({"on_hand": 1, "unit": value})) == (
        f"field 'unit': expected text, got {described}"
    )


@pytest.mark.parametrize(
    ("literal", "described"),
    [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e999", "Infinity")],
)
def test_non_finite_numbers_are_rejected(literal: str, described: str) -> None:
    expected = f"field 'on_hand': expected a finite number, got {described}"
    assert reason(STOCK, '{"on_hand": %s}' % literal) == expected  # noqa: UP031
    expected = f"field 'temp_c': expected a finite number, got {described}"
    assert reason(TELEMETRY, '{"temp_c": %s}' % literal) == expected  # noqa: UP031


def test_integers_beyond_64_bits_are_rejected() -> None:
    assert reason(STOCK, json.dumps({"on_hand": 2**63})) == (
        "field 'on_hand': integer out of range (more than 64 bits)"
    )
    assert accepted(STOCK, {"on_hand": 2**63 - 1}).fields["on_hand"] == 2**63 - 1


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (STOCK, {"on_hand": True}, "field 'on_hand': expected a number, got boolean true"),
        (
            TELEMETRY,
            {"temp_c": False},
            "field 'temp_c': expected a number (a metric), got boolean false",
        ),
        (TELEMETRY, {"cycles": True}, "field 'cycles': expected a number, got boolean true"),
        (
            COMMAND,
            {"command": "ack", "id": True, "by": "ann"},
            "field 'id': expected an integer, got boolean true",
        ),
    ],
)
def test_booleans_are_not_numbers(topic: str, payload: object, expected: str) -> None:
    assert reason(topic, json.dumps(payload)) == expected


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (STOCK, {"on_hand": "lots"}, "field 'on_hand': expected a number, got string 'lots'"),
        (STOCK, {"on_hand": "5"}, "field 'on_hand': expected a number, got string '5'"),
        (STOCK, {"on_hand": 5, "unit": 1}, "field 'unit': expected text, got number 1"),
        (RECEIPT, {"quantity": "300"}, "field 'quantity': expected a number, got string '300'"),
        (TELEMETRY, {"state": 1}, "field 'state': expected text, got number 1"),
        (TELEMETRY, {"fault": 42}, "field 'fault': expected text, got number 42"),
        (
            TELEMETRY,
            {"operator": "bob"},
            "field 'operator': expected a number (a metric), got string 'bob'",
        ),
        (
            COMMAND,
            {"command": "ack", "id": 1.0, "by": "ann"},
            "field 'id': expected an integer, got number 1.0",
        ),
        (
            COMMAND,
            {"command": "ack", "id": "12", "by": "ann"},
            "field 'id': expected an integer, got string '12'",
        ),
        (COMMAND, {"command": "ack", "id": 1, "by": 7}, "field 'by': expected text, got number 7"),
    ],
)
def test_wrong_types_are_rejected_naming_field_and_value(
    topic: str, payload: object, expected: str
) -> None:
    assert reason(topic, json.dumps(payload)) == expected


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (STOCK, {"unit": "pcs"}, "missing required field 'on_hand'"),
        (STOCK, {"on_hand": None}, "missing required field 'on_hand'"),
        (RECEIPT, {"reference": "PO-1"}, "missing required field 'quantity'"),
        (COMMAND, {"id": 1, "by": "ann"}, "missing required field 'command'"),
        (COMMAND, {"command": "ack", "by": "ann"}, "missing required field 'id'"),
        (COMMAND, {"command": "ack", "id": 1}, "missing required field 'by'"),
    ],
)
def test_missing_required_fields_are_rejected(topic: str, payload: object, expected: str) -> None:
    assert reason(topic, json.dumps(payload)) == expected


def test_telemetry_needs_no_field_at_all() -> None:
    assert accepted(TELEMETRY, {}).fields == {}


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (STOCK, {"on_hand": 1, "on_order": -1}, "field 'on_order': must be >= 0, got -1"),
        (RECEIPT, {"quantity": 0}, "field 'quantity': must be > 0, got 0"),
        (RECEIPT, {"quantity": -2.5}, "field 'quantity': must be > 0, got -2.5"),
        (TELEMETRY, {"scrap": -1}, "field 'scrap': must be >= 0, got -1"),
        (COMMAND, {"command": "ack", "id": 0, "by": "ann"}, "field 'id': must be >= 1, got 0"),
        (
            TELEMETRY,
            {"state": "Running"},
            "field 'state': expected one of running, idle, down, setup, maintenance; got 'Running'",
        ),
        (
            COMMAND,
            {"command": "delete", "id": 1, "by": "ann"},
            "field 'command': expected one of ack, resolve, done, cancel; got 'delete'",
        ),
    ],
)
def test_values_outside_minimum_or_choices_are_rejected(
    topic: str, payload: object, expected: str
) -> None:
    assert reason(topic, json.dumps(payload)) == expected


def test_boundaries_of_minimums_are_accepted() -> None:
    assert accepted(STOCK, {"on_hand": 0, "on_order": 0}).fields == {"on_hand": 0, "on_order": 0}
    assert accepted(RECEIPT, {"quantity": 0.001}).fields == {"quantity": 0.001}
    assert accepted(TELEMETRY, {"cycles": 0, "good": 0, "scrap": 0.0}).fields["scrap"] == 0.0


def test_strings_longer_than_1024_characters_are_rejected() -> None:
    assert accepted(STOCK, {"on_hand": 1, "unit": "x" * 1024}).fields["unit"] == "x" * 1024
    assert reason(STOCK, json.dumps({"on_hand": 1, "unit": "x" * 1025})) == (
        "field 'unit': text of 1025 characters exceeds the 1024-character limit"
    )


def test_text_that_a_database_cannot_store_is_rejected() -> None:
    assert reason(STOCK, r'{"on_hand": 1, "unit": "kg\u0000"}') == (
        "field 'unit': text must not contain NUL characters"
    )
    assert reason(STOCK, r'{"on_hand": 1, "unit": "\ud800"}') == (
        "field 'unit': text contains an invalid \\u escape (a lone surrogate)"
    )
    assert accepted(STOCK, {"on_hand": 1, "unit": "m²"}).fields["unit"] == "m²"


@pytest.mark.parametrize(
    ("topic", "payload", "unknown", "allowed"),
    [
        (STOCK, {"on_hand": 1, "onorder": 5}, "onorder", "on_hand, on_order, unit, ts"),
        (RECEIPT, {"quantity": 1, "qty": 1}, "qty", "quantity, reference, ts"),
        (
            COMMAND,
            {"command": "ack", "id": 1, "by": "a", "ID": 1},
            "ID",
            "command, id, by, note, type, ts",
        ),
    ],
)
def test_unknown_keys_of_closed_kinds_are_rejected_by_name(
    topic: str, payload: object, unknown: str, allowed: str
) -> None:
    kind = topic.split("/")[2].replace("agent", "command")
    assert reason(topic, json.dumps(payload)) == (
        f"unknown field '{unknown}' for {kind} messages (allowed: {allowed})"
    )


def test_a_typo_of_a_required_field_names_both_problems() -> None:
    assert reason(STOCK, '{"onhand": 5}') == (
        "unknown field 'onhand' for stock messages (allowed: on_hand, on_order, unit, ts); "
        "missing required field 'on_hand'"
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("temp-c", "a metric name must be letters, digits and '_'"),
        ("1st_stage", "a metric name must be letters, digits and '_'"),
        ("", "a metric name must be letters, digits and '_'"),
        ("m" * 65, "at most 64 characters"),
        ("machine", "reserved for the subject's identity, not a metric"),
        ("kind", "reserved for the subject's identity, not a metric"),
        ("site", "reserved for the subject's identity, not a metric"),
    ],
)
def test_telemetry_metric_names_must_be_usable_in_rules(key: str, expected: str) -> None:
    assert expected in reason(TELEMETRY, json.dumps({key: 1}))


def test_a_long_list_of_problems_is_cut_short() -> None:
    text = reason(STOCK, json.dumps({f"k{i}": i for i in range(20)}))
    assert text.endswith("; and 16 more")
    assert text.count("unknown field") == 5


def test_values_in_reasons_are_shortened_and_escaped() -> None:
    text = reason(STOCK, json.dumps({"on_hand": "a\0" + "b" * 200}))
    assert "'a\\x00bbbb" in text
    assert len(text) < 150


# ---------------------------------------------------------------------------------------------
# Properties: whatever arrives, a Message or a Rejected; Messages hold only finite, storable values

_KINDS = st.sampled_from(sorted(TOPIC_OF))
_TOPIC_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(list(TOPIC_OF.values())),
    st.lists(st.sampled_from(["factory", "p1", "stock", "machine", "+", "#", "", "agent"])).map(
        "/".join
    ),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["running", "idle", "ack", "2026-01-05T07:30:00Z", "x" * 1100]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = st.one_of(
    st.sampled_from(sorted({k for fields in SCHEMAS.values() for k in fields} | {"ts"})),
    st.sampled_from(KNOWN_METRICS),
    st.text(max_size=10),
)
_PAYLOADS = st.dictionaries(_KEYS, _JSON, max_size=8)


def _check_message(result: Message | Rejected) -> None:
    assert isinstance(result, Message | Rejected)
    if isinstance(result, Rejected):
        assert result.reason
        result.reason.encode("utf-8")  # storable as a dead letter
        assert "\0" not in result.reason
        return
    assert result.ts.tzinfo is UTC and result.received_at.tzinfo is UTC
    allowed = SCHEMAS[result.kind]
    for name, value in result.fields.items():
        assert name != "ts"
        assert result.kind == "telemetry" or name in allowed
        assert isinstance(value, str | int | float), (name, value)
        if isinstance(value, bool):
            assert name in allowed and allowed[name].type == "bool"
        elif isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, int):
            assert -(2**63) <= value < 2**63
        else:
            assert isinstance(value, str) and len(value) <= 1024
            value.encode("utf-8")
    for name, spec in allowed.items():
        if spec.required:
            assert name in result.fields


@settings(max_examples=300)
@given(_TOPIC_TEXT, st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(topic: str, raw: bytes) -> None:
    _check_message(decode(topic, raw, NOW, TOPICS))


@settings(max_examples=300)
@given(_KINDS, _JSON)
def test_arbitrary_json_values_never_raise(kind: str, value: object) -> None:
    _check_message(decode(TOPIC_OF[kind], json.dumps(value).encode(), NOW, TOPICS))


def _valid_value(spec: FieldSpec) -> st.SearchStrategy[object]:
    if spec.choices:
        return st.sampled_from(spec.choices)
    if spec.type == "string":
        return st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
    low = spec.minimum if spec.minimum is not None else spec.exclusive_minimum
    if spec.type == "integer":
        return st.integers(min_value=int(low or 0), max_value=2**63 - 1)
    return st.integers(min_value=int(low or -(2**63)), max_value=2**63 - 1) | st.floats(
        min_value=low, allow_nan=False, allow_infinity=False
    )


def _payloads_of(kind: str) -> st.SearchStrategy[tuple[str, dict[str, object]]]:
    """Mostly valid payloads of `kind`, with the odd junk value or unknown key mixed in."""
    schema = SCHEMAS[kind]  # type: ignore[index]
    optional: dict[str, st.SearchStrategy[object]] = {
        name: _valid_value(spec) | _SCALARS for name, spec in schema.items() if not spec.required
    }
    optional["ts"] = _SCALARS | st.integers(946684800, 4102444799)
    optional |= {metric: st.floats() | _SCALARS for metric in KNOWN_METRICS[:3]}
    required = {name: _valid_value(spec) for name, spec in schema.items() if spec.required}
    payloads = st.fixed_dictionaries(required, optional=optional)
    return st.tuples(st.just(kind), payloads | _PAYLOADS)


@settings(max_examples=500)
@given(_KINDS.flatmap(_payloads_of))
def test_every_message_holds_only_finite_storable_values(
    kind_and_payload: tuple[str, dict[str, object]],
) -> None:
    kind, payload = kind_and_payload
    result = decode(TOPIC_OF[kind], json.dumps(payload).encode(), NOW, TOPICS)
    _check_message(result)
    if isinstance(result, Message):
        expected = {k: v for k, v in payload.items() if k != "ts" and v is not None}
        assert result.fields == expected


@given(
    st.fixed_dictionaries(
        {"on_hand": st.integers(-(10**9), 10**9) | st.floats(-1e12, 1e12)},
        optional={
            "on_order": st.integers(0, 10**9) | st.floats(0, 1e12),
            "unit": st.text(
                st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=20
            ),
            "ts": st.datetimes(
                datetime(2000, 1, 2), datetime(2099, 12, 30), timezones=st.just(UTC)
            ).map(datetime.isoformat),
        },
    )
)
def test_every_valid_stock_payload_is_accepted(payload: dict[str, object]) -> None:
    message = accepted(STOCK, payload)
    assert message.fields == {k: v for k, v in payload.items() if k != "ts"}
    if "ts" in payload:
        assert message.ts == datetime.fromisoformat(str(payload["ts"]))
