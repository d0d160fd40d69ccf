"""Input mappings: a plant's own topics and payloads decode into the same messages as the
built-in scheme, and a bad inputs file is refused with `file:line: mapping: reason`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.http.metrics import Metrics, count_messages
from agent.ingest.decode import decode
from agent.ingest.mapping_load import InputsError, load_inputs, parse_inputs
from agent.ingest.partition import partition_filters
from agent.ingest.topics import TopicMap
from agent.model import Message, Rejected

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SHIPPED = Path(__file__).resolve().parents[2] / "config" / "inputs.yaml"

INPUTS = """\
inputs:
  - name: press-temperature
    topic: plant1/{machine}/temperature
    kind: telemetry
    site: plant1
    fields:
      temp_c: {scale: 0.5555555555555556, offset: -17.77777777777778}
  - name: press-state
    topic: plant1/{machine}/state
    kind: telemetry
    site: plant1
    fields:
      state: {map: {0: idle, 1: running, 2: down}}
  - name: press-fault
    topic: plant1/{machine}/fault
    kind: telemetry
    site: plant1
    fields:
      fault:
  - name: press-metrics
    topic: plant1/{machine}/{metric}
    kind: telemetry
    site: plant1
    fields:
      "{metric}":
  - name: line-status
    topic: plant/{site}/line/+/{machine}/status
    kind: telemetry
    fields:
      state: {path: status.code, map: {0: idle, 1: running, 2: down}}
      temp_c: data.temp
    ts: {path: t, unit: ms}
  - name: wms-stock
    topic: wms/{site}/bins/{sku}
    kind: stock
    fields:
      on_hand: qty
    ts: {path: at, unit: iso}
"""


@pytest.fixture
def topics() -> TopicMap:
    return TopicMap("factory", parse_inputs(INPUTS, "inputs.yaml"))


def _message(topics: TopicMap, topic: str, payload: bytes) -> Message:
    decoded = decode(topic, payload, NOW, topics)
    assert isinstance(decoded, Message), decoded
    return decoded


def _reason(topics: TopicMap, topic: str, payload: bytes) -> str:
    decoded = decode(topic, payload, NOW, topics)
    assert isinstance(decoded, Rejected), decoded
    return decoded.reason


def test_a_bare_fahrenheit_number_becomes_temp_c(topics: TopicMap) -> None:
    message = _message(topics, "plant1/press-01/temperature", b"160.3")
    assert (message.kind, message.site, message.subject) == ("telemetry", "plant1", "press-01")
    assert message.fields["temp_c"] == pytest.approx(71.277777, abs=1e-5)
    assert message.ts == NOW  # no ts: the arrival time


def test_a_state_code_is_mapped_to_its_name(topics: TopicMap) -> None:
    assert _message(topics, "plant1/press-01/state", b"1").fields == {"state": "running"}
    assert _message(topics, "plant1/press-01/state", b"2.0").fields == {"state": "down"}


def test_a_metric_named_by_the_topic_takes_the_bare_payload(topics: TopicMap) -> None:
    assert _message(topics, "plant1/press-01/speed_rpm", b"1200").fields == {"speed_rpm": 1200}


def test_plain_text_is_a_bare_string(topics: TopicMap) -> None:
    # `overheat` unquoted is no JSON: taken as text, then validated like a built-in field.
    assert _message(topics, "plant1/press-01/fault", b"overheat\n").fields == {"fault": "overheat"}
    assert _message(topics, "plant1/press-01/fault", b'"overheat"').fields == {"fault": "overheat"}
    reason = _reason(topics, "plant1/press-01/speed_rpm", b"fast")
    assert reason == (
        "input mapping 'press-metrics': field 'speed_rpm': expected a number (a metric), "
        "got string 'fast'"
    )


def test_nested_json_with_milliseconds_and_codes(topics: TopicMap) -> None:
    payload = b'{"t": 1772431200500, "status": {"code": 0}, "data": {"temp": 40.5}}'
    message = _message(topics, "plant/north/line/3/press-07/status", payload)
    assert (message.site, message.subject) == ("north", "press-07")
    assert message.fields == {"state": "idle", "temp_c": 40.5}
    assert message.ts == datetime(2026, 3, 2, 6, 0, 0, 500000, tzinfo=UTC)


def test_an_iso_time_and_a_stock_count(topics: TopicMap) -> None:
    message = _message(
        topics, "wms/north/bins/BRG-6204", b'{"qty": 40, "at": "2026-03-01T22:00:00Z"}'
    )
    assert (message.kind, message.subject, message.fields) == ("stock", "BRG-6204", {"on_hand": 40})
    assert message.ts == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (
            "plant1/press-01/state",
            b"7",
            "input mapping 'press-state': field 'state': 7 is not in its map (0, 1, 2)",
        ),
        (
            "plant1/press-01/temperature",
            b"hot",
            "input mapping 'press-temperature': field 'temp_c': scale/offset need a number, "
            "got text 'hot'",
        ),
        (
            "plant/north/line/3/press-07/status",
            b'{"status": {"code": 1}}',
            "input mapping 'line-status': timestamp: no value at 't'",
        ),
        (
            "plant/north/line/3/press-07/status",
            b'{"status": {"code": 1}, "t": 1772431200}',
            "input mapping 'line-status': field 'ts': epoch seconds 1772431.2 are outside "
            "2000-01-01..2100-01-01",
        ),
        (
            "wms/north/bins/BRG-6204",
            b'{"at": "2026-03-01T22:00:00Z"}',
            "input mapping 'wms-stock': missing required field 'on_hand'",
        ),
        (
            "wms/north/bins/BRG-6204",
            b"40",
            "input mapping 'wms-stock': timestamp: no value at 'at'",
        ),
        (
            "plant/north/line/3/press-07/status",
            b"{oops",
            "input mapping 'line-status': field 'state': the payload is not JSON: no path "
            "'status.code' in it; field 'temp_c': the payload is not JSON: no path 'data.temp' "
            "in it; timestamp: the payload is not JSON, so 't' cannot be read",
        ),
        (
            "plant1/press-01/speed_rpm",
            b'{"a": 1, "a": 2}',
            "input mapping 'press-metrics': duplicate key 'a'",
        ),
        (
            "plant1/press-01/temperature",
            b"1" + b"0" * 400,
            f"input mapping 'press-temperature': field 'temp_c': 1{'0' * 59} is out of range",
        ),
        (
            "plant1/press-01/ts",
            b"1772431200",
            "input mapping 'press-metrics': field 'ts': the time is read by the mapping's 'ts', "
            "not a field",
        ),
    ],
)
def test_a_message_that_fails_its_mapping_is_refused_naming_it(
    topics: TopicMap, topic: str, payload: bytes, reason: str
) -> None:
    assert _reason(topics, topic, payload) == reason


def test_a_subject_over_the_level_limit_is_refused(topics: TopicMap) -> None:
    decoded = decode("plant1/" + "m" * 200 + "/speed_rpm", b"1", NOW, topics)
    assert isinstance(decoded, Rejected)
    assert "'press-metrics'" in decoded.reason and "128-character limit" in decoded.reason


def test_the_built_in_scheme_still_decodes_beside_mappings(topics: TopicMap) -> None:
    plain = TopicMap("factory")
    for topic, payload in [
        ("factory/north/stock/BRG-6204", b'{"on_hand": 40}'),
        ("factory/north/machine/press-07/telemetry", b'{"state": "idle", "temp_c": 40.5}'),
    ]:
        assert decode(topic, payload, NOW, topics) == decode(topic, payload, NOW, plain)
    assert "unknown topic" in _reason(topics, "plant1/press-01", b"1")


def test_mapped_and_built_in_readings_are_the_same_message(topics: TopicMap) -> None:
    mapped = _message(
        topics, "plant/north/line/3/press-07/status", b'{"t": 1772431200000, "status": {"code": 1}}'
    )
    builtin = _message(
        topics,
        "factory/north/machine/press-07/telemetry",
        b'{"state": "running", "ts": 1772431200}',
    )
    assert (mapped.kind, mapped.site, mapped.subject, mapped.fields, mapped.ts) == (
        builtin.kind,
        builtin.site,
        builtin.subject,
        builtin.fields,
        builtin.ts,
    )


def test_the_first_mapping_that_fits_wins(topics: TopicMap) -> None:
    # plant1/{machine}/temperature comes before plant1/{machine}/{metric}.
    match = topics.match("plant1/press-01/temperature")
    assert match is not None and match.mapping == "press-temperature"
    match = topics.match("plant1/press-01/current_a")
    assert match is not None and match.mapping == "press-metrics"
    builtin = topics.match("factory/north/stock/A")
    assert builtin is not None and builtin.mapping == ""


def test_subscriptions_cover_the_mapped_topics(topics: TopicMap) -> None:
    filters = topics.subscriptions()
    assert filters[:5] == [
        "plant1/+/temperature",
        "plant1/+/state",
        "plant1/+/fault",
        "plant1/+/+",
        "plant/+/line/+/+/status",
    ]
    assert "factory/+/stock/+" in filters
    narrowed = partition_filters(topics, ["north"])
    assert "plant/north/line/+/+/status" in narrowed
    assert "wms/north/bins/+" in narrowed
    assert "plant1/+/+" not in narrowed  # site plant1 is not this agent's
    assert "factory/north/stock/+" in narrowed
    assert "plant1/+/+" in partition_filters(topics, ["plant1"])


def test_no_inputs_file_or_an_empty_one_is_the_built_in_scheme(tmp_path: Path) -> None:
    assert load_inputs(None) is None
    assert load_inputs(tmp_path / "missing.yaml") is None
    empty = tmp_path / "inputs.yaml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    assert load_inputs(empty) is None
    empty.write_text("inputs: []\n", encoding="utf-8")
    assert load_inputs(empty) is None
    assert TopicMap("factory", load_inputs(empty)).inputs is None


def test_the_shipped_file_maps_nothing_and_its_examples_are_valid() -> None:
    assert load_inputs(SHIPPED) is None
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    start = lines.index("# inputs:")
    examples = "\n".join(re.sub(r"^# ?", "", line) for line in lines[start:])
    mappings = parse_inputs(examples, "examples")
    assert [m.name for m in mappings.mappings] == [
        "press-temperature",
        "press-state",
        "press-metrics",
        "line-status",
        "wms-stock",
    ]
    example = TopicMap("factory", mappings)
    assert _message(example, "plant1/press-01/state", b"3").fields == {"state": "maintenance"}


def test_per_mapping_counts_of_taken_and_refused(topics: TopicMap) -> None:
    metrics = Metrics()
    received = ["plant1/p/state", "plant1/p/state", "plant1/p/speed_rpm", "factory/n/stock/A"]
    count_messages(metrics, topics, received, ["plant1/p/state"])
    value = metrics.registry.get_sample_value
    mapping = "factory_agent_input_mapping_messages_total"
    assert value(mapping, {"mapping": "press-state", "outcome": "taken"}) == 1
    assert value(mapping, {"mapping": "press-state", "outcome": "refused"}) == 1
    assert value(mapping, {"mapping": "press-metrics", "outcome": "taken"}) == 1
    assert value("factory_agent_messages_total", {"kind": "stock", "outcome": "accepted"}) == 1


# -- the file ---------------------------------------------------------------------------------


def _problems(text: str) -> list[str]:
    with pytest.raises(InputsError) as caught:
        parse_inputs(text, "inputs.yaml")
    return [str(problem) for problem in caught.value.problems]


def _one(body: str) -> str:
    return "inputs:\n  - name: m\n" + body


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            _one(
                "    topic: a/{machine}\n    kind: telemetry\n    site: s\n    fields: {x: '[['}\n"
            ),
            "inputs.yaml:6: m: field 'x': path '[[' is not JMESPath:",
        ),
        (
            _one("    topic: a/{machine}\n    kind: machine\n    site: s\n    fields: {x: v}\n"),
            "inputs.yaml:4: m: 'kind' must be one of stock, receipt, telemetry, got 'machine'",
        ),
        (
            _one("    topic: a/{machine}\n    kind: telemetry\n    fields: {x: v}\n"),
            "inputs.yaml:2: m: 'site' is required: the topic has no {site} level (hint: site: "
            'plant1, or site: "{site}" with such a level in the topic)',
        ),
        (
            _one(
                "    topic: a/{machine}\n    kind: telemetry\n    site: '{plant}'\n"
                "    fields: {x:}\n"
            ),
            "inputs.yaml:5: m: 'site' uses {plant}, which the topic does not name "
            "(hint: named levels: machine)",
        ),
        (
            _one("    topic: a/{sku}\n    kind: stock\n    site: s\n    fields: {count: n}\n"),
            "inputs.yaml:6: m: stock messages have no field 'count' (hint: fields: on_hand, "
            "on_order, unit)",
        ),
        (
            _one("    topic: a/b{machine}\n    kind: telemetry\n    site: s\n    fields: {x:}\n"),
            "inputs.yaml:3: m: level 'b{machine}' of 'a/b{machine}': '+', '#', '{name}' must "
            "fill a whole level (hint: '#' only as the last level)",
        ),
        (
            _one("    topic: a/{machine}\n    kind: telemetry\n    site: s\n    filds: {x:}\n"),
            "inputs.yaml:6: m: unknown key 'filds' (hint: known: name, topic, kind, site, "
            "subject, fields, ts, description)",
        ),
        (
            _one(
                "    topic: a/{machine}\n    kind: telemetry\n    site: s\n"
                "    fields: {x: {map: {1: on}, scale: 2}}\n"
            ),
            "inputs.yaml:6: m: field 'x': a value map and scale/offset do not go together",
        ),
        (
            _one(
                "    topic: a/{machine}\n    kind: telemetry\n    site: s\n    fields: {x:}\n"
                "    ts: {path: t, unit: minutes}\n"
            ),
            "inputs.yaml:7: m: 'ts' unit must be iso, s or ms, got 'minutes'",
        ),
        (
            "inputs:\n  - &x {name: m}\n",
            "inputs.yaml:2: -: YAML anchors and aliases (&name, *name) are not allowed: write "
            "the values out",
        ),
        ("rules: []\n", "inputs.yaml:1: -: expected a mapping with one key, 'inputs'"),
    ],
)
def test_a_bad_file_is_refused_with_file_line_and_mapping(text: str, problem: str) -> None:
    assert any(found.startswith(problem) for found in _problems(text)), _problems(text)


def test_two_mappings_with_one_name_are_refused() -> None:
    entry = (
        "  - name: m\n    topic: a/{machine}\n    kind: telemetry\n    site: s\n    fields: {x:}\n"
    )
    assert _problems("inputs:\n" + entry + entry) == [
        "inputs.yaml:7: m: a second input named 'm' (first at line 2)"
    ]


def test_every_problem_of_the_file_is_reported() -> None:
    text = (
        "inputs:\n"
        "  - name: a\n    topic: x/{machine}\n    kind: nope\n    site: s\n    fields: {x:}\n"
        "  - name: b\n    topic: y/{machine}\n    kind: telemetry\n    site: s\n    fields: {1x:}\n"
    )
    problems = _problems(text)
    assert [p.split(":")[1:3] for p in problems] == [["4", " a"], ["11", " b"]]


@pytest.mark.parametrize(
    "path", ["data.temp", "data", "data.nested.deep", "values[0].v", "data.temp || data.t"]
)
@pytest.mark.parametrize(
    "payload",
    [
        {"data": {"temp": 71.3, "t": 1}},
        {"data": {"nested": {"deep": "x"}}},
        {"data": 5},
        {"values": [{"v": 2}]},
        {"data": None},
        [1, 2],
        "text",
        3,
    ],
)
def test_a_plain_field_path_reads_what_jmespath_reads(path: str, payload: object) -> None:
    import jmespath

    mappings = parse_inputs(
        _one(
            "    topic: a/{machine}\n    kind: telemetry\n    site: s\n"
            f"    fields: {{x: '{path}'}}\n"
        ),
    )
    (rule,) = mappings.mappings[0].fields
    fast = "[" not in path and "|" not in path
    assert (type(rule.path).__name__ == "FieldChain") is fast
    assert rule.path.search(payload) == jmespath.search(path, payload)


@pytest.mark.parametrize("doc", ["README.md", "docs/inputs.md"])
def test_the_documented_mappings_load(doc: str) -> None:
    text = (SHIPPED.parents[1] / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(inputs:\n.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        assert len(parse_inputs(block, doc)) >= 2


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_TOPICS = [
    "plant1/press-01/temperature",
    "plant1/press-01/state",
    "plant1/press-01/fault",
    "plant1/press-01/speed_rpm",
    "plant/north/line/3/press-07/status",
    "wms/north/bins/BRG-6204",
]


@given(
    topic=st.sampled_from(_TOPICS),
    payload=st.one_of(st.binary(max_size=64), _JSON.map(lambda v: json.dumps(v).encode())),
)
@settings(max_examples=400, deadline=None)
def test_any_payload_on_a_mapped_topic_decodes_or_is_refused(topic: str, payload: bytes) -> None:
    topics = TopicMap("factory", parse_inputs(INPUTS, "inputs.yaml"))
    decoded = decode(topic, payload, NOW, topics)
    assert isinstance(decoded, (Message, Rejected))
    if isinstance(decoded, Rejected):
        assert decoded.reason.startswith("input mapping '")
