"""Partitions: an agent given sites subscribes to those sites' topics only."""

from __future__ import annotations

import pytest

from agent.errors import ConfigError
from agent.ingest.partition import parse_sites, partition_filters
from agent.ingest.topics import TopicMap, matches_filter


def test_no_sites_means_every_site() -> None:
    topics = TopicMap("factory")
    assert partition_filters(topics, parse_sites("")) == topics.subscriptions()


def test_sites_narrow_every_filter_under_a_multi_level_prefix() -> None:
    filters = partition_filters(TopicMap("acme/north"), parse_sites(" plant1, plant2 "))
    assert "acme/north/plant1/stock/+" in filters
    assert "acme/north/plant2/machine/+/telemetry" in filters
    assert len(filters) == 2 * len(TopicMap("acme/north").subscriptions())
    assert any(matches_filter(f, "acme/north/plant2/receipt/BRG-6204") for f in filters)
    assert not any(matches_filter(f, "acme/north/plant3/stock/BRG-6204") for f in filters)


@pytest.mark.parametrize("sites", ["plant+", "a/b", "#"])
def test_a_site_that_is_not_one_topic_level_is_refused(sites: str) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.sites"):
        parse_sites(sites)
