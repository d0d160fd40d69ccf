"""Topic partitions for scale-out: the subscriptions of an agent limited to some sites.

`mqtt.sites = "plant1,plant2"` turns `factory/+/stock/+` into one filter per site; empty: all.
"""

from __future__ import annotations

from agent.errors import ConfigError
from agent.ingest.topics import TopicMap


def parse_sites(text: str) -> list[str]:
    sites = [site.strip() for site in text.split(",") if site.strip()]
    bad = [site for site in sites if {"+", "#", "/", "\0"} & set(site)]
    if bad:
        raise ConfigError(
            f"mqtt.sites: {', '.join(map(repr, bad))} is not a single topic level "
            "(a comma-separated list of site names, e.g. 'plant1,plant2')"
        )
    return sites


def partition_filters(topics: TopicMap, sites: list[str]) -> list[str]:
    """The agent's MQTT filters: every site (`+`) when `sites` is empty, else one set per site."""
    if not sites:
        return topics.subscriptions()
    levels = len(topics.prefix.split("/"))
    narrowed = topics.inputs.filters_for(sites) if topics.inputs is not None else []
    for site in sites:
        for topic_filter in topics.builtin_subscriptions():
            parts = topic_filter.split("/")
            parts[levels] = site  # the level right after the prefix is the site
            narrowed.append("/".join(parts))
    return narrowed
