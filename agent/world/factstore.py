"""The world's facts by key, compact at rest.

A fact's fields are a plain dict for everyone who reads them (rules, the engine's posting, the
snapshot, the console): a dict's `get` and copy run in C, where a Mapping of our own layering
the message's values over shared master data runs in Python (measured: `dict()` of one 0.2 µs
against 8 µs, and the snapshot copies every changed fact). But a dict of 22 to 42 entries takes
832 bytes, the largest part of a fact. So the stock facts stored most recently (the ones a batch
works on, reads again and snapshots) are kept as they are, and the others packed: their field
names as one tuple shared by every fact of the same shape, their values as a tuple of the same
objects (248 bytes for 26 fields). Getting a packed fact gives it back as it was: an equal Fact
with its fields in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Final

from agent.model import Fact, FactKind, Value

# Facts kept unpacked: the most recently stored, more than a batch of messages changes.
HOT: Final = 2048
# Stock facts are packed, machine facts not: in a plant of 10k SKUs and 1k machines the SKUs are
# most of the facts (and of their memory), while telemetry is half the messages: unpacking a
# machine's fact at every message would cost that half for a tenth of the memory.
PACKED_KINDS: Final = frozenset({"stock"})
# Shapes (tuples of field names) kept for sharing before the table starts again: bounds it when
# fields come and go in many combinations (a packed fact keeps its own tuple either way).
MAX_SHAPES: Final = 4096


# A packed fact: kind, site, subject, updated_at, its field names (shared), its values. A plain
# tuple: a NamedTuple's constructor runs in Python, a cost at every packing.
_Packed = tuple[FactKind, str, str, datetime, tuple[str, ...], tuple[Value, ...]]


class FactStore:
    """Facts by key, in the order each key was first stored (as a dict keeps them). Even `get`
    changes it (a packed fact becomes unpacked): one thread only, as the world (the ingest
    thread's; the console reads the store's snapshot)."""

    __slots__ = ("_entries", "_hot", "_hot_max", "_shapes")

    def __init__(self, hot: int | None = None) -> None:
        self._entries: dict[str, Fact | _Packed] = {}
        self._hot: dict[str, None] = {}  # keys of the unpacked facts, oldest stored first
        self._hot_max = HOT if hot is None else hot
        # a shape's names -> the shared tuple and where each name is in it
        self._shapes: dict[tuple[str, ...], tuple[tuple[str, ...], dict[str, int]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Fact]:
        """Every fact, in key order of first storing; over a copy of the keys, so a caller may
        store facts while it goes."""
        for entry in list(self._entries.values()):
            yield entry if isinstance(entry, Fact) else _unpack(entry)

    def get(self, key: str) -> Fact | None:
        """The fact of `key`; a packed one is unpacked and kept so (it is about to be read
        again or replaced: the core gets a message's fact before the world applies it)."""
        entry = self._entries.get(key)
        if entry is None or isinstance(entry, Fact):
            return entry
        return self.put(key, _unpack(entry))

    def put(self, key: str, fact: Fact) -> Fact:
        """Store `fact` under `key` (its `Fact.key`); pack the oldest unpacked one if too many."""
        self._entries[key] = fact
        if fact.kind not in PACKED_KINDS:
            return fact
        hot = self._hot
        if key in hot:
            del hot[key]
        hot[key] = None
        if len(hot) > self._hot_max:
            oldest = next(iter(hot))
            del hot[oldest]
            entry = self._entries[oldest]
            if isinstance(entry, Fact):
                self._entries[oldest] = self._pack(entry)
        return fact

    def pop(self, key: str) -> None:
        self._hot.pop(key, None)
        self._entries.pop(key, None)

    def _pack(self, fact: Fact) -> _Packed:
        fields = fact.fields
        names = tuple(fields)
        shapes = self._shapes
        shape = shapes.get(names)
        if shape is None:
            if len(shapes) >= MAX_SHAPES:
                shapes.clear()
            shape = shapes[names] = (names, {name: i for i, name in enumerate(names)})
        return (
            fact.kind,
            fact.site,
            fact.subject,
            fact.updated_at,
            shape[0],
            tuple(fields.values()),
        )

    def at_rest(self) -> Iterator[tuple[Fact, bool]]:
        """Every fact as `__iter__` gives them, with True for a packed one, whose `fields` is then
        a read-only view of the packed values (`PackedFields`), not a dict: for a pass that reads
        a few fields of every fact and changes few (a tick). Get a fact before handing it on."""
        shapes = self._shapes
        for entry in list(self._entries.values()):
            if isinstance(entry, Fact):
                yield entry, False
                continue
            kind, site, subject, updated_at, names, values = entry
            shape = shapes.get(names)
            index = shape[1] if shape is not None else {n: i for i, n in enumerate(names)}
            yield Fact(kind, site, subject, PackedFields(index, values), updated_at), True


def _unpack(packed: _Packed) -> Fact:
    kind, site, subject, updated_at, names, values = packed
    return Fact(kind, site, subject, dict(zip(names, values, strict=False)), updated_at)


class PackedFields(Mapping[str, Value]):
    """The fields of a packed fact, read in place (see `FactStore.at_rest`)."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: tuple[Value, ...]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, name: str) -> Value:
        return self._values[self._index[name]]

    def get(self, name: str, default: Any = None) -> Any:
        at = self._index.get(name)
        return default if at is None else self._values[at]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)
