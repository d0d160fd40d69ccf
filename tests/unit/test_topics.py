"""Topic matching, without a broker: which topics are inputs, and MQTT filter semantics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.ingest.topics import TopicMap, TopicMatch, matches_filter

TOPICS = TopicMap()


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("factory/plant1/stock/BRG-6204", TopicMatch("stock", "plant1", "BRG-6204")),
        ("factory/plant1/receipt/BRG-6204", TopicMatch("receipt", "plant1", "BRG-6204")),
        ("factory/plant1/machine/press-3/telemetry", TopicMatch("telemetry", "plant1", "press-3")),
        ("factory/plant1/agent/command", TopicMatch("command", "plant1", "")),
    ],
)
def test_default_topics_give_kind_site_and_subject(topic: str, expected: TopicMatch) -> None:
    assert TOPICS.match(topic) == expected


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "factory",
        "factory/",
        "factory/plant1",
        "factory/plant1/stock",
        "factory/plant1/stock/",
        "factory//stock/BRG",
        "factory/plant1/stock/BRG/extra",
        "factory/plant1/stocks/BRG",
        "factory/plant1/Stock/BRG",
        "Factory/plant1/stock/BRG",
        "/factory/plant1/stock/BRG",
        "other/plant1/stock/BRG",
        "factoryX/plant1/stock/BRG",
        "factory/plant1/machine/press-3",
        "factory/plant1/machine//telemetry",
        "factory/plant1/machine/press-3/status",
        "factory/plant1/agent/commands",
        "factory/plant1/agent/actions",
        "factory/plant1/agent/alerts",
        "factory/plant1/stock/+",
        "factory/+/stock/BRG",
        "factory/plant1/stock/#",
        "factory/plant1/stock/BR+G",
        "factory/pl#ant1/stock/BRG",
        "factory/plant1/stock/BRG\0",
        "factory/plant1/machine/pre\0ss/telemetry",
    ],
)
def test_anything_outside_the_patterns_matches_nothing(topic: str) -> None:
    assert TOPICS.match(topic) is None


def test_ids_are_case_sensitive_and_taken_as_given() -> None:
    assert TOPICS.match("factory/Plant 1/stock/brg-6204") == TopicMatch(
        "stock", "Plant 1", "brg-6204"
    )
    assert TOPICS.match("factory/plant1/stock/ÄÖÜ-ß") == TopicMatch("stock", "plant1", "ÄÖÜ-ß")


def test_a_site_or_sku_may_be_named_like_a_pattern_word() -> None:
    assert TOPICS.match("factory/stock/stock/agent") == TopicMatch("stock", "stock", "agent")
    assert TOPICS.match("factory/agent/agent/command") == TopicMatch("command", "agent", "")


def test_prefix_may_span_several_levels() -> None:
    topics = TopicMap("acme/plant1")
    assert topics.match("acme/plant1/hall-b/stock/BRG") == TopicMatch("stock", "hall-b", "BRG")
    assert topics.match("acme/plant1/hall-b/agent/command") == TopicMatch("command", "hall-b", "")
    assert topics.match("acme/plant2/hall-b/stock/BRG") is None
    assert topics.match("factory/hall-b/stock/BRG") is None
    assert topics.match("acme/hall-b/stock/BRG") is None


def test_subscriptions_are_the_four_input_filters() -> None:
    assert TopicMap("acme/plant1").subscriptions() == [
        "acme/plant1/+/stock/+",
        "acme/plant1/+/receipt/+",
        "acme/plant1/+/machine/+/telemetry",
        "acme/plant1/+/agent/command",
    ]


@pytest.mark.parametrize("prefix", ["", "/factory", "factory/", "a//b", "fact+ory", "#", "a\0b"])
def test_an_invalid_prefix_is_a_config_error(prefix: str) -> None:
    with pytest.raises(ConfigError, match="topic prefix"):
        TopicMap(prefix)


# MQTT 5.0 §4.7 examples, and the `$` rule of §4.7.2.
@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "sport/tennis", True),
        ("#", "/", True),
        ("sport/tennis/#", "sport/tennis", True),
        ("sport/tennis/#", "sport", False),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+", "finance", True),
        ("sport", "sport", True),
        ("sport", "Sport", False),
        ("sport", "sport/", False),
        ("#", "$SYS/broker/load", False),
        ("+/broker/load", "$SYS/broker/load", False),
        ("$SYS/#", "$SYS/broker/load", True),
        ("$SYS/+/load", "$SYS/broker/load", True),
        ("factory/+/stock/+", "factory/p1/stock/BRG", True),
        ("factory/+/stock/+", "factory/p1/receipt/BRG", False),
        ("#", "", False),
        ("#", "factory/+/stock", False),
        ("#", "factory/#", False),
        ("#", "fac\0tory", False),
    ],
)
def test_matches_filter_follows_mqtt_wildcards(
    topic_filter: str, topic: str, expected: bool
) -> None:
    assert matches_filter(topic_filter, topic) is expected


@pytest.mark.parametrize("topic_filter", ["", "sport/tennis#", "sport/#/ranking", "sport+", "a/+b"])
def test_an_invalid_filter_is_a_config_error(topic_filter: str) -> None:
    with pytest.raises(ConfigError, match="MQTT filter"):
        matches_filter(topic_filter, "sport/tennis")


_LEVEL = st.one_of(
    st.sampled_from(["factory", "acme", "p1", "stock", "receipt", "machine", "telemetry"]),
    st.sampled_from(["agent", "command", "", "+", "#", "$SYS", "a\0b", "BRG-6204"]),
    st.text(max_size=4),
)
_ID = st.one_of(st.sampled_from(["p1", "BRG-6204", "press-3", "command", "telemetry"]), _LEVEL)
_SHAPES = [
    "{p}/{a}/stock/{b}",
    "{p}/{a}/receipt/{b}",
    "{p}/{a}/machine/{b}/telemetry",
    "{p}/{a}/agent/{b}",
    "{p}/{a}/{b}/command",
    "{p}/{a}/machine/{b}",
    "{p}/{a}/{b}",
]
_SHAPED = st.builds(
    str.format,
    st.sampled_from(_SHAPES),
    p=st.sampled_from(["factory", "acme/p1", "factory/p1", "$SYS", "+"]),
    a=_ID,
    b=_ID,
)
_TOPIC = st.one_of(_SHAPED, st.lists(_LEVEL, min_size=1, max_size=7).map("/".join))


@given(_TOPIC, st.sampled_from(["factory", "acme/p1"]))
def test_match_agrees_with_the_subscriptions(topic: str, prefix: str) -> None:
    """A topic is an input exactly when a subscription covers it and none of its levels is empty."""
    topics = TopicMap(prefix)
    covered = any(matches_filter(f, topic) for f in topics.subscriptions())
    expected = covered and all(topic.split("/"))
    assert (topics.match(topic) is not None) is expected


_VALID_ID = st.text(
    st.characters(blacklist_characters="/+#\0", blacklist_categories=["Cs"]), min_size=1
)


@given(st.sampled_from(["factory", "acme/plant1", "$share"]), _VALID_ID, _VALID_ID)
def test_every_input_topic_built_from_valid_ids_matches(prefix: str, site: str, sub: str) -> None:
    topics = TopicMap(prefix)
    assert topics.match(f"{prefix}/{site}/stock/{sub}") == TopicMatch("stock", site, sub)
    assert topics.match(f"{prefix}/{site}/receipt/{sub}") == TopicMatch("receipt", site, sub)
    telemetry = f"{prefix}/{site}/machine/{sub}/telemetry"
    assert topics.match(telemetry) == TopicMatch("telemetry", site, sub)
    assert topics.match(f"{prefix}/{site}/agent/command") == TopicMatch("command", site, "")
    for topic in (telemetry, f"{prefix}/{site}/agent/command"):
        assert any(matches_filter(f, topic) for f in topics.subscriptions())
