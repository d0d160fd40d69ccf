"""Sparkplug B input: `spBv1.0/{group}/{type}/{edge}[/{device}]` protobuf payloads → readings.

A `SparkplugMapping` (a `sparkplug:` entry of config/inputs.yaml) names the group, where site and
machine come from, and which metric feeds which telemetry field. A `SparkplugHost` keeps what
the edge nodes said: the alias table of each NBIRTH/DBIRTH per (group, edge, device), the next
sequence number per node, the node's bdSeq; it counts sequence gaps and unknown aliases and
queues a rebirth request (NCMD `Node Control/Rebirth`) for the daemon to publish. Pure: bytes
and a time in, readings (still to be validated by `decode`) or refusals out; no I/O.

protobuf (`sparkplug_pb`) is imported at the first Sparkplug payload read or written, so an
agent without a `sparkplug:` mapping never loads it (3 MB).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from agent.ingest.mapping import FieldRule, Template

if TYPE_CHECKING:
    from types import ModuleType

NAMESPACE: Final = "spBv1.0"
NODE_TYPES: Final = ("NBIRTH", "NDATA", "NDEATH")
DEVICE_TYPES: Final = ("DBIRTH", "DDATA", "DDEATH")
LEVELS: Final = ("group", "edge", "device")
ONLINE: Final = "online"  # the field a BIRTH sets to 1 and a DEATH to 0
REBIRTH_METRIC: Final = "Node Control/Rebirth"
BD_SEQ: Final = "bdSeq"
# A node asked for a rebirth is not asked again before this much message time has passed.
REBIRTH_INTERVAL: Final = timedelta(seconds=30)
MAX_METRICS: Final = 1000
# Edge nodes and devices per node the host keeps alias tables for: beyond, a BIRTH is refused.
MAX_NODES: Final = 10_000
MAX_DEVICES: Final = 10_000


@dataclass(frozen=True, slots=True)
class MetricPath:
    """A `FieldRule` path that reads one Sparkplug metric by name (`Motor/Speed` is one name)."""

    name: str

    def search(self, metrics: object) -> object:
        return metrics.get(self.name) if isinstance(metrics, dict) else None


@dataclass(frozen=True, slots=True)
class SparkplugMapping:
    """`sparkplug: {group, edge}` → site, subject and fields from metric names."""

    name: str
    group: str | None  # None: every group
    edge: str | None  # None: every edge node
    site: Template  # of {group}, {edge}, {device}
    subject: Template  # the machine; `{device}` unless said otherwise
    fields: tuple[FieldRule, ...]
    file: str = ""
    line: int = 0

    @property
    def filters(self) -> list[str]:
        """One subscription per message type the host reads (never NCMD, DCMD or STATE)."""
        group = self.group or "+"
        edge = self.edge or "+"
        node = [f"{NAMESPACE}/{group}/{kind}/{edge}" for kind in NODE_TYPES]
        return [*node, *(f"{NAMESPACE}/{group}/{kind}/{edge}/+" for kind in DEVICE_TYPES)]

    @property
    def device_level(self) -> bool:
        """Whether the machine is a device (NDATA then only feeds the alias tables)."""
        return "device" in self.subject.names

    def levels_of(self, parts: Sequence[str]) -> tuple[str, dict[str, str]] | None:
        """(message type, named levels) of a topic split at `/`, or None when it does not fit."""
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
            return None
        _, group, kind, edge, *device = parts
        wanted = NODE_TYPES if not device else DEVICE_TYPES
        if kind not in wanted or not group or not edge or (device and not device[0]):
            return None
        if (self.group is not None and group != self.group) or (
            self.edge is not None and edge != self.edge
        ):
            return None
        return kind, {"group": group, "edge": edge, "device": device[0] if device else ""}

    def names_subject(self, levels: Mapping[str, str]) -> tuple[str, str] | None:
        """(site, subject) for these levels; None when they name no machine (a node topic when
        the machine is the device)."""
        if not levels["device"] and ("device" in self.subject.names or "device" in self.site.names):
            return None
        return self.site.fill(levels), self.subject.fill(levels)


@dataclass(frozen=True, slots=True)
class Reading:
    """Telemetry of one machine at one time, as the mapping took it (not validated yet)."""

    site: str
    subject: str
    fields: dict[str, object]
    ts: datetime


@dataclass(slots=True)
class _Node:
    next_seq: int | None
    bd_seq: int | None
    aliases: dict[int, str] = field(default_factory=dict)
    devices: dict[str, dict[int, str]] = field(default_factory=dict)


@dataclass(slots=True)
class SparkplugCounts:
    seq_gaps: int = 0
    unknown_aliases: int = 0
    rebirths_requested: int = 0
    stale_deaths: int = 0  # an NDEATH of an older session (its bdSeq not the birth's): ignored
    _exported: dict[str, int] = field(default_factory=dict)

    def since_last(self) -> dict[str, int]:
        """Each event's count since the last call (for a Prometheus counter)."""
        now = {
            "seq_gap": self.seq_gaps,
            "unknown_alias": self.unknown_aliases,
            "rebirth_requested": self.rebirths_requested,
            "stale_death": self.stale_deaths,
        }
        grown = {k: v - self._exported.get(k, 0) for k, v in now.items()}
        self._exported = now
        return {k: v for k, v in grown.items() if v > 0}


class SparkplugHost:
    """What the edge nodes announced, kept across messages (and across reloads of the mappings).

    Used from the agent's one ingest thread only."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._asked: dict[tuple[str, str], datetime] = {}
        self._requests: dict[str, bytes] = {}  # NCMD topic → payload: one per node at most
        self.counts = SparkplugCounts()

    def take_requests(self) -> list[tuple[str, bytes]]:
        """The rebirth requests (topic, payload) queued since the last call: for the publisher."""
        requests, self._requests = self._requests, {}
        return list(requests.items())

    def read(
        self,
        mapping: SparkplugMapping,
        kind: str,
        levels: Mapping[str, str],
        raw: bytes,
        now: datetime,
    ) -> list[Reading | str]:
        """The readings of one message, or the reasons it (or a part of it) is refused."""
        pb = _pb()
        try:
            payload: Any = pb.Payload.FromString(raw)
        except (pb.DecodeError, ValueError, RecursionError) as exc:
            return [f"not a Sparkplug B payload (protobuf): {str(exc).split(':')[-1].strip()}"]
        if len(payload.metrics) > MAX_METRICS:
            return [f"{len(payload.metrics)} metrics, more than the limit of {MAX_METRICS}"]
        key = (levels["group"], levels["edge"])
        device = levels["device"]
        sent = _ms(payload.timestamp) if payload.HasField("timestamp") else now
        if kind == "NDEATH":
            return self._node_death(mapping, key, payload, levels, sent)
        node = self._nodes.get(key)
        if node is None and len(self._nodes) >= MAX_NODES:
            return [f"more than {MAX_NODES} Sparkplug edge nodes: not kept"]
        if (
            kind == "DBIRTH"
            and node is not None
            and device not in node.devices
            and len(node.devices) >= MAX_DEVICES
        ):
            return [f"more than {MAX_DEVICES} devices on edge node {key[1]!r}: not kept"]
        if kind == "NBIRTH":
            node = _Node(_next(payload), _bd_seq(payload))
            self._nodes[key] = node
            self._asked.pop(key, None)
        elif node is None:  # a node first heard of after its birth: ask for one
            node = _Node(None, None)
            self._nodes[key] = node
            self._ask(key, now)
        if kind != "NBIRTH":
            self._check_seq(key, node, payload, now)
        if kind in ("NBIRTH", "DBIRTH"):
            table: dict[int, str] = {}
            for metric in payload.metrics:
                if metric.HasField("alias") and metric.name:
                    table[metric.alias] = metric.name
            if kind == "NBIRTH":
                node.aliases = table
                node.devices = {}
            else:
                node.devices[device] = table
        if kind == "DDEATH":
            node.devices.pop(device, None)
            return self._online(mapping, levels, 0, sent)
        table = node.devices.get(device, {}) if device else node.aliases
        return self._readings(mapping, kind, levels, payload, table, key, now, sent)

    def _readings(
        self,
        mapping: SparkplugMapping,
        kind: str,
        levels: Mapping[str, str],
        payload: Any,
        table: Mapping[int, str],
        key: tuple[str, str],
        now: datetime,
        sent: datetime,
    ) -> list[Reading | str]:
        named = mapping.names_subject(levels)
        by_time: dict[datetime, dict[str, object]] = {}
        unknown: list[str] = []
        for metric in payload.metrics:
            name = metric.name
            if not name and metric.HasField("alias"):
                name = table.get(metric.alias, "")
            if not name:
                unknown.append(str(metric.alias) if metric.HasField("alias") else "(none)")
                continue
            historical = metric.is_historical and metric.HasField("timestamp")
            at = _ms(metric.timestamp) if historical else sent
            by_time.setdefault(at, {})[name] = _value(metric)
        if unknown:
            self.counts.unknown_aliases += len(unknown)
            self._ask(key, now)
        if named is None:
            return []  # node metrics, when the machines are devices: the alias table only
        site, subject = named
        out: list[Reading | str] = []
        if unknown and not by_time:
            shown = ", ".join(unknown[:5])
            return [
                f"alias {shown} unknown: no {'D' if levels['device'] else 'N'}BIRTH names it "
                "(a rebirth is requested)"
            ]
        birth = kind.endswith("BIRTH")
        for at in sorted(by_time):
            metrics = by_time[at]
            fields: dict[str, object] = {}
            problems: list[str] = []
            for rule in mapping.fields:
                name, value, problem = rule.take(metrics, levels)
                if problem:
                    problems.append(problem)
                elif value is not None:
                    fields[name] = int(value) if isinstance(value, bool) else value
            if birth and at == sent:
                fields[ONLINE] = 1
            if problems:
                out.append("; ".join(problems))
            elif fields:
                out.append(Reading(site, subject, fields, at))
        if birth and sent not in by_time:
            out.append(Reading(site, subject, {ONLINE: 1}, sent))
        return out

    def _online(
        self, mapping: SparkplugMapping, levels: Mapping[str, str], online: int, at: datetime
    ) -> list[Reading | str]:
        named = mapping.names_subject(levels)
        if named is None:
            return []
        return [Reading(named[0], named[1], {ONLINE: online}, at)]

    def _node_death(
        self,
        mapping: SparkplugMapping,
        key: tuple[str, str],
        payload: Any,
        levels: Mapping[str, str],
        at: datetime,
    ) -> list[Reading | str]:
        node = self._nodes.get(key)
        bd_seq = _bd_seq(payload)
        if node is not None and None not in (node.bd_seq, bd_seq) and node.bd_seq != bd_seq:
            self.counts.stale_deaths += 1  # the will of a session that was replaced
            return []
        self._nodes.pop(key, None)
        out: list[Reading | str] = []
        devices = sorted(node.devices) if node is not None else []
        for device in devices:
            out.extend(self._online(mapping, {**levels, "device": device}, 0, at))
        out.extend(self._online(mapping, levels, 0, at))
        return out

    def _check_seq(self, key: tuple[str, str], node: _Node, payload: Any, now: datetime) -> None:
        if not payload.HasField("seq"):
            return
        seq = payload.seq % 256
        if node.next_seq is not None and seq != node.next_seq:
            self.counts.seq_gaps += 1
            self._ask(key, now)
        node.next_seq = (seq + 1) % 256

    def _ask(self, key: tuple[str, str], now: datetime) -> None:
        asked = self._asked.get(key)
        if asked is not None and now - asked < REBIRTH_INTERVAL and now >= asked:
            return
        self._asked[key] = now
        self.counts.rebirths_requested += 1
        group, edge = key
        self._requests[f"{NAMESPACE}/{group}/NCMD/{edge}"] = rebirth_request(now)


def rebirth_request(now: datetime) -> bytes:
    """The NCMD payload asking an edge node to publish its births again."""
    pb = _pb()
    payload: Any = pb.Payload(timestamp=int(now.timestamp() * 1000))
    payload.metrics.add(name=REBIRTH_METRIC, datatype=pb.BOOLEAN, boolean_value=True)
    return bytes(payload.SerializeToString())


def _value(metric: Any) -> object:
    """A metric's scalar value (signed types as signed); None when null or no scalar."""
    if metric.is_null:
        return None
    which = metric.WhichOneof("value")
    if which is None or which == "bytes_value":
        return None
    value = getattr(metric, which)
    bits = _pb().SIGNED_BITS.get(metric.datatype)
    if bits is not None and which in ("int_value", "long_value"):
        value &= (1 << bits) - 1
        if value >= 1 << (bits - 1):
            value -= 1 << bits
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


@functools.cache
def _pb() -> ModuleType:
    """The protobuf messages, imported at their first use."""
    from agent.ingest import sparkplug_pb

    return sparkplug_pb


def _ms(value: int) -> datetime:
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)
    except OverflowError:
        return datetime(9999, 1, 1, tzinfo=UTC)  # refused by `decode`'s range check


def _next(payload: Any) -> int | None:
    return (payload.seq + 1) % 256 if payload.HasField("seq") else None


def _bd_seq(payload: Any) -> int | None:
    for metric in payload.metrics:
        if metric.name == BD_SEQ:
            value = _value(metric)
            return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None
