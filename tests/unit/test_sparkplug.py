"""Sparkplug B decode: BIRTH alias tables, DATA by alias, DEATH, sequence gaps, unknown aliases,
historical metrics and malformed protobuf (pure: no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ingest import sparkplug_pb as pb
from agent.ingest.decode import decode_all
from agent.ingest.mapping_load import InputsError, parse_inputs
from agent.ingest.topics import TopicMap
from agent.model import Message, Rejected

INPUTS = """\
inputs:
  - name: edge
    sparkplug: {group: Plant1}
    site: plant1
    fields:
      temp_c: Temperature
      state: {metric: State, map: {0: idle, 1: running, 2: down}}
      speed_rpm: {metric: Motor/Speed, scale: 60}
"""
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
MS = int(NOW.timestamp() * 1000)
NODE = "spBv1.0/Plant1/{}/edge-1"
DEVICE = "spBv1.0/Plant1/{}/edge-1/press-01"


def payload(seq: int | None, *metrics: dict[str, Any], ts: int = MS) -> bytes:
    message: Any = pb.Payload(timestamp=ts)
    if seq is not None:
        message.seq = seq
    for metric in metrics:
        message.metrics.add(**metric)
    return bytes(message.SerializeToString())


def birth_metrics() -> list[dict[str, Any]]:
    return [
        {"name": "Temperature", "alias": 1, "datatype": pb.DOUBLE, "double_value": 70.0},
        {"name": "State", "alias": 2, "datatype": pb.INT32, "int_value": 1},
        {"name": "Motor/Speed", "alias": 3, "datatype": pb.FLOAT, "float_value": 20.0},
    ]


def topics() -> TopicMap:
    return TopicMap("factory", parse_inputs(INPUTS))


def run(topic_map: TopicMap, topic: str, raw: bytes, at: datetime = NOW) -> list[Any]:
    return decode_all(topic, raw, at, topic_map)


def born(topic_map: TopicMap) -> None:
    node_birth = [{"name": "bdSeq", "datatype": pb.INT64, "long_value": 4}]
    assert run(topic_map, NODE.format("NBIRTH"), payload(0, *node_birth)) == []
    run(topic_map, DEVICE.format("DBIRTH"), payload(1, *birth_metrics()))


def test_a_device_birth_names_its_aliases_and_is_a_reading_with_online() -> None:
    topic_map = topics()
    assert run(topic_map, NODE.format("NBIRTH"), payload(0)) == []  # node metrics: aliases only
    [message] = run(topic_map, DEVICE.format("DBIRTH"), payload(1, *birth_metrics()))
    assert isinstance(message, Message)
    assert (message.kind, message.site, message.subject) == ("telemetry", "plant1", "press-01")
    assert message.fields == {"temp_c": 70.0, "state": "running", "speed_rpm": 1200.0, "online": 1}
    assert message.ts == NOW


def test_data_by_alias_maps_onto_the_metric_names_of_the_birth() -> None:
    topic_map = topics()
    born(topic_map)
    data = payload(
        2,
        {"alias": 1, "datatype": pb.DOUBLE, "double_value": 95.5},
        {"alias": 2, "datatype": pb.INT32, "int_value": 2},
        ts=MS + 1000,
    )
    [message] = run(topic_map, DEVICE.format("DDATA"), data)
    assert message.fields == {"temp_c": 95.5, "state": "down"}
    assert message.ts == NOW + timedelta(seconds=1)
    assert topic_map.sparkplug.take_requests() == []
    assert topic_map.sparkplug.counts.seq_gaps == 0


def test_a_device_death_takes_it_offline_at_once_and_a_node_death_all_its_devices() -> None:
    topic_map = topics()
    born(topic_map)
    [death] = run(topic_map, DEVICE.format("DDEATH"), payload(2, ts=MS + 5000))
    assert death.fields == {"online": 0}
    assert death.ts == NOW + timedelta(seconds=5)
    run(topic_map, DEVICE.format("DBIRTH"), payload(3, *birth_metrics()))
    stale = payload(None, {"name": "bdSeq", "datatype": pb.INT64, "long_value": 3})
    assert run(topic_map, NODE.format("NDEATH"), stale) == []  # an older session's will
    assert topic_map.sparkplug.counts.stale_deaths == 1
    will = payload(None, {"name": "bdSeq", "datatype": pb.INT64, "long_value": 4})
    [offline] = run(topic_map, NODE.format("NDEATH"), will)
    assert (offline.subject, offline.fields) == ("press-01", {"online": 0})


def test_a_sequence_gap_is_counted_and_asks_the_node_for_a_rebirth() -> None:
    topic_map = topics()
    born(topic_map)
    data = payload(7, {"alias": 1, "datatype": pb.DOUBLE, "double_value": 71.0})
    [message] = run(topic_map, DEVICE.format("DDATA"), data)
    assert message.fields == {"temp_c": 71.0}  # the reading itself is good
    assert topic_map.sparkplug.counts.seq_gaps == 1
    [(topic, raw)] = topic_map.sparkplug.take_requests()
    assert topic == "spBv1.0/Plant1/NCMD/edge-1"
    request: Any = pb.Payload.FromString(raw)
    [metric] = request.metrics
    assert (metric.name, metric.boolean_value) == ("Node Control/Rebirth", True)
    # the next in order is no gap; the counts are exported once
    run(topic_map, DEVICE.format("DDATA"), payload(8))
    assert topic_map.sparkplug.counts.seq_gaps == 1
    assert topic_map.sparkplug.counts.since_last() == {"seq_gap": 1, "rebirth_requested": 1}
    assert topic_map.sparkplug.counts.since_last() == {}


def test_seq_wraps_after_255() -> None:
    topic_map = topics()
    run(topic_map, NODE.format("NBIRTH"), payload(254))
    run(topic_map, NODE.format("NDATA"), payload(255))
    run(topic_map, NODE.format("NDATA"), payload(0))
    assert topic_map.sparkplug.counts.seq_gaps == 0


def test_an_unknown_alias_is_a_dead_letter_and_asks_for_a_rebirth_once() -> None:
    topic_map = topics()
    data = payload(5, {"alias": 9, "datatype": pb.DOUBLE, "double_value": 1.0})
    [letter] = run(topic_map, DEVICE.format("DDATA"), data)
    assert isinstance(letter, Rejected)
    assert letter.reason == (
        "input mapping 'edge': alias 9 unknown: no DBIRTH names it (a rebirth is requested)"
    )
    run(topic_map, DEVICE.format("DDATA"), payload(6, {"alias": 9, "double_value": 1.0}))
    assert len(topic_map.sparkplug.take_requests()) == 1  # not again within 30 s
    assert topic_map.sparkplug.counts.unknown_aliases == 2
    later = NOW + timedelta(seconds=31)
    run(topic_map, DEVICE.format("DDATA"), payload(7, {"alias": 9, "double_value": 1.0}), later)
    assert len(topic_map.sparkplug.take_requests()) == 1


def test_historical_metrics_carry_their_own_time() -> None:
    topic_map = topics()
    born(topic_map)
    data = payload(
        2,
        {"alias": 1, "double_value": 80.0, "is_historical": True, "timestamp": MS - 60_000},
        {"alias": 1, "double_value": 81.0, "is_historical": True, "timestamp": MS - 30_000},
        {"alias": 2, "int_value": 1},
    )
    messages = run(topic_map, DEVICE.format("DDATA"), data)
    assert [(m.ts, dict(m.fields)) for m in messages] == [
        (NOW - timedelta(seconds=60), {"temp_c": 80.0}),
        (NOW - timedelta(seconds=30), {"temp_c": 81.0}),
        (NOW, {"state": "running"}),
    ]


def test_signed_integers_are_read_as_signed() -> None:
    text = INPUTS.replace("temp_c: Temperature", "temp_c: Temperature\n      level: Level")
    topic_map = TopicMap("factory", parse_inputs(text))
    metric = {"name": "Level", "alias": 4, "datatype": pb.INT16, "int_value": 0xFFFFFFFE}
    [message] = run(topic_map, DEVICE.format("DBIRTH"), payload(0, metric))
    assert message.fields == {"level": -2, "online": 1}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xff\xff", "not a Sparkplug B payload (protobuf): Wire format was corrupt"),
        (b'{"temp": 71}', "not a Sparkplug B payload (protobuf): Wire format was corrupt"),
    ],
)
def test_a_malformed_payload_is_a_dead_letter_with_the_reason(raw: bytes, reason: str) -> None:
    [letter] = run(topics(), DEVICE.format("DDATA"), raw)
    assert isinstance(letter, Rejected)
    assert letter.reason == f"input mapping 'edge': {reason}"
    assert letter.raw == raw


def test_a_code_not_in_the_map_and_a_bad_value_are_refused_by_the_mapping() -> None:
    topic_map = topics()
    born(topic_map)
    [letter] = run(topic_map, DEVICE.format("DDATA"), payload(2, {"alias": 2, "int_value": 7}))
    assert letter.reason == "input mapping 'edge': field 'state': 7 is not in its map (0, 1, 2)"
    bad = payload(3, {"alias": 1, "string_value": "hot"})
    [letter] = run(topic_map, DEVICE.format("DDATA"), bad)
    assert letter.reason.startswith("input mapping 'edge': field 'temp_c': expected a number")


def test_the_mapping_subscribes_to_the_host_topics_and_counts_under_its_name() -> None:
    topic_map = topics()
    assert topic_map.subscriptions()[:6] == [
        "spBv1.0/Plant1/NBIRTH/+",
        "spBv1.0/Plant1/NDATA/+",
        "spBv1.0/Plant1/NDEATH/+",
        "spBv1.0/Plant1/DBIRTH/+/+",
        "spBv1.0/Plant1/DDATA/+/+",
        "spBv1.0/Plant1/DDEATH/+/+",
    ]
    match = topic_map.match(DEVICE.format("DDATA"))
    assert match is not None and (match.mapping, match.subject) == ("edge", "press-01")
    assert topic_map.match("spBv1.0/Other/DDATA/edge-1/press-01") is None
    assert topic_map.match("spBv1.0/Plant1/NCMD/edge-1") is None  # our own rebirth requests


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            "sparkplug: {group: Plant1, node: x}",
            "inputs.yaml:3: edge: 'sparkplug' must be a mapping of 'group' and 'edge'",
        ),
        ("sparkplug: {group: a/b}", "inputs.yaml:3: edge: sparkplug group must be a Sparkplug id"),
        ("sparkplug: {}\n    topic: x", "inputs.yaml:4: edge: unknown key 'topic' in a sparkplug"),
        ("sparkplug: {}\n    subject: '{line}'", "inputs.yaml:4: edge: 'subject' uses {line}"),
    ],
)
def test_a_bad_sparkplug_entry_is_refused_with_its_line(entry: str, problem: str) -> None:
    text = f"inputs:\n  - name: edge\n    {entry}\n    fields: {{temp_c: Temperature}}\n"
    with pytest.raises(InputsError) as caught:
        parse_inputs(text)
    assert str(caught.value.problems[0]).startswith(problem)


def test_online_is_the_birth_and_death_field_not_a_mapped_one() -> None:
    text = "inputs:\n  - name: edge\n    sparkplug:\n    fields: {online: Up}\n"
    with pytest.raises(InputsError) as caught:
        parse_inputs(text)
    assert "field 'online' is set by BIRTH and DEATH" in str(caught.value)


def test_the_host_keeps_a_bounded_number_of_nodes_and_one_request_per_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent.ingest import sparkplug

    monkeypatch.setattr(sparkplug, "MAX_NODES", 2)
    topic_map = topics()
    for edge in ("a", "b", "c"):
        run(topic_map, f"spBv1.0/Plant1/NDATA/{edge}", payload(3))
    [letter] = run(topic_map, "spBv1.0/Plant1/NDATA/d", payload(3))
    assert letter.reason == "input mapping 'edge': more than 2 Sparkplug edge nodes: not kept"
    run(topic_map, "spBv1.0/Plant1/NDATA/a", payload(9), NOW + timedelta(minutes=1))  # a gap
    assert [topic for topic, _ in topic_map.sparkplug.take_requests()] == [
        "spBv1.0/Plant1/NCMD/a",
        "spBv1.0/Plant1/NCMD/b",
    ]


@given(
    kind=st.sampled_from(["NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH"]),
    raw=st.one_of(
        st.binary(max_size=80),
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(["Temperature", "State", "bdSeq", "x"]),
                    "alias": st.integers(0, 5),
                    "datatype": st.integers(0, 20),
                    "is_historical": st.booleans(),
                    "timestamp": st.integers(0, 2**64 - 1),
                    "int_value": st.integers(0, 2**32 - 1),
                    "double_value": st.floats(),
                    "string_value": st.text(max_size=5),
                },
            ),
            max_size=4,
        ).map(lambda metrics: payload(3, *metrics)),
    ),
)
@settings(max_examples=300, deadline=None)
def test_any_payload_on_a_sparkplug_topic_decodes_or_is_refused(kind: str, raw: bytes) -> None:
    topic_map = topics()
    born(topic_map)
    topic = (DEVICE if kind.startswith("D") else NODE).format(kind)
    for decoded in run(topic_map, topic, raw):
        assert isinstance(decoded, (Message, Rejected))
        if isinstance(decoded, Rejected):
            assert decoded.reason.startswith("input mapping 'edge': ")


def test_decode_of_one_message_gives_its_first_reading_or_says_there_is_none() -> None:
    from agent.ingest.decode import decode

    topic_map = topics()
    message = decode(DEVICE.format("DBIRTH"), payload(0, *birth_metrics()), NOW, topic_map)
    assert isinstance(message, Message) and message.fields["temp_c"] == 70.0
    none = decode(NODE.format("NBIRTH"), payload(0), NOW, topic_map)
    assert isinstance(none, Rejected)
    assert none.reason == "input mapping 'edge': no reading of a mapped machine in it"
