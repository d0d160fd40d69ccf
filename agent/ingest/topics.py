"""MQTT topic → message kind, site and subject; and MQTT wildcard filter matching.

Pure string work, no broker: `TopicMap` knows the default topic layout under a prefix (DESIGN §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from agent.errors import ConfigError
from agent.ingest.mapping import InputMappings
from agent.ingest.sparkplug import SparkplugHost
from agent.model import MessageKind

_FORBIDDEN: Final = ("+", "#", "\0")


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """What a topic says about its message: the kind, the site and the subject.

    `subject` is the SKU for stock and receipt messages, the machine id for telemetry and ""
    for commands.
    """

    kind: MessageKind
    site: str
    subject: str
    mapping: str = ""  # the input mapping's name; "" for the built-in scheme


def _valid_level(level: str) -> bool:
    return bool(level) and "+" not in level and "#" not in level and "\0" not in level


class TopicMap:
    """The input topics under one prefix, which may span several levels (`acme/plant1`).

    `{prefix}/{site}/stock/{sku}`, `{prefix}/{site}/receipt/{sku}`,
    `{prefix}/{site}/machine/{machine}/telemetry`, `{prefix}/{site}/agent/command`.
    Ids are taken as given (case-sensitive); an empty level or one holding `+`, `#` or NUL
    matches nothing.

    `inputs` (config/inputs.yaml) are tried first, in their order; the built-in scheme after them.
    """

    __slots__ = ("_head", "_prefix", "inputs", "sparkplug")

    def __init__(self, prefix: str = "factory", inputs: InputMappings | None = None) -> None:
        if not all(_valid_level(level) for level in prefix.split("/")):
            raise ConfigError(
                f"topic prefix {prefix!r}: every level must be non-empty and free of '+', '#' "
                "and NUL (for example 'factory' or 'acme/plant1')"
            )
        self._prefix = prefix
        self._head = prefix + "/"
        self.inputs = inputs if inputs else None  # no mappings: the built-in scheme alone
        # What Sparkplug edge nodes announced (aliases, seq): kept when `inputs` is reloaded.
        self.sparkplug = SparkplugHost()

    @property
    def prefix(self) -> str:
        return self._prefix

    def __repr__(self) -> str:
        return f"TopicMap(prefix={self._prefix!r})"

    def subscriptions(self) -> list[str]:
        """The MQTT filters that cover every topic `match` accepts."""
        mapped = self.inputs.filters() if self.inputs is not None else []
        return [*mapped, *(f for f in self.builtin_subscriptions() if f not in mapped)]

    def builtin_subscriptions(self) -> list[str]:
        p = self._prefix
        return [
            f"{p}/+/stock/+",
            f"{p}/+/receipt/+",
            f"{p}/+/machine/+/telemetry",
            f"{p}/+/agent/command",
        ]

    def match(self, topic: str) -> TopicMatch | None:
        """The kind, site and subject of `topic`, or None when no input pattern fits it."""
        if self.inputs is not None:
            spb = self.inputs.match_sparkplug(topic)
            if spb is not None:
                named = spb[0].names_subject(spb[2])
                site, subject = named if named is not None else ("", "")
                return TopicMatch("telemetry", site, subject, spb[0].name)
            mapped = self.inputs.match(topic)
            if mapped is not None:
                return TopicMatch(mapped.kind, mapped.site, mapped.subject, mapped.mapping.name)
        return self.match_builtin(topic)

    def match_builtin(self, topic: str) -> TopicMatch | None:
        """`match` for the built-in scheme alone."""
        if not topic.startswith(self._head):
            return None
        levels = topic[len(self._head) :].split("/")
        if len(levels) == 3:
            site, word, subject = levels
            if word in ("stock", "receipt"):
                kind: MessageKind = "stock" if word == "stock" else "receipt"
                if _valid_level(site) and _valid_level(subject):
                    return TopicMatch(kind, site, subject)
                return None
            if word == "agent" and subject == "command" and _valid_level(site):
                return TopicMatch("command", site, "")
            return None
        if len(levels) == 4:
            site, word, machine, last = levels
            if (
                word == "machine"
                and last == "telemetry"
                and _valid_level(site)
                and _valid_level(machine)
            ):
                return TopicMatch("telemetry", site, machine)
        return None


def _check_filter(topic_filter: str) -> list[str]:
    levels = topic_filter.split("/")
    bad = (
        not topic_filter
        or "\0" in topic_filter
        or any(("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels)
        or "#" in levels[:-1]
    )
    if bad:
        raise ConfigError(
            f"MQTT filter {topic_filter!r} is invalid: '+' and '#' must fill a whole level and "
            "'#' must be the last level (for example 'factory/+/stock/#')"
        )
    return levels


def matches_filter(filter: str, topic: str) -> bool:
    """Whether `topic` is matched by the MQTT subscription `filter` (MQTT 3.1.1/5 §4.7).

    `+` matches one level (possibly empty), a final `#` matches the parent and any number of
    levels, and wildcards in the first level do not match topics starting with `$`. An invalid
    topic (empty, or holding `+`, `#` or NUL) matches nothing; an invalid filter is a
    `ConfigError`, since filters come from configuration.
    """
    levels = _check_filter(filter)
    if not topic or any(ch in topic for ch in _FORBIDDEN):
        return False
    if topic.startswith("$") and levels[0] in ("+", "#"):
        return False
    parts = topic.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(levels) == len(parts)
