"""The life of a rule's match: pending (`for` not yet elapsed) → firing → resolved or gone.

Pure bookkeeping over (rule, matched facts): the core tells it what holds at a time and it says
whether to fire, stay quiet or resolve. Pending matches live here only; they are not stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from agent.rulebook.rules import Rule

TrackKey = tuple[str, tuple[str, ...]]  # rule id, the matched facts' keys in alias order
Step = Literal["fire", "pending", "repeat"]


@dataclass
class Track:
    """One rule matched on one tuple of facts, since `since`."""

    rule_id: str
    fingerprint: str
    facts: dict[str, str]  # alias -> fact key
    since: datetime
    firing: bool = False
    alert_keys: tuple[str, ...] = ()
    key: TrackKey = ("", ())

    def due(self, rule: Rule, now: datetime) -> bool:
        return now - self.since >= timedelta(seconds=rule.for_s)


@dataclass
class Lifecycle:
    """Every tracked match, indexed by the facts it involves."""

    tracks: dict[TrackKey, Track] = field(default_factory=dict)
    by_fact: dict[str, set[TrackKey]] = field(default_factory=dict)

    @staticmethod
    def key(rule: Rule, facts: Mapping[str, str]) -> TrackKey:
        return rule.id, tuple(facts[c.alias] for c in rule.conditions)

    def holds(self, rule: Rule, facts: Mapping[str, str], at: datetime) -> Step:
        """The rule's condition holds on `facts` at `at`: fire now, keep waiting, or repeat."""
        key = self.key(rule, facts)
        track = self.tracks.get(key)
        if track is None:
            track = Track(rule.id, rule.fingerprint, dict(facts), at, key=key)
            self.tracks[key] = track
            for fact in facts.values():
                self.by_fact.setdefault(fact, set()).add(key)
        if track.firing:
            return "repeat"
        if not track.due(rule, at):
            return "pending"
        track.firing = True
        return "fire"

    def fired(self, rule: Rule, facts: Mapping[str, str], alert_keys: Iterable[str]) -> None:
        track = self.tracks.get(self.key(rule, facts))
        if track is not None:
            track.alert_keys = tuple(dict.fromkeys((*track.alert_keys, *alert_keys)))

    def involving(self, fact_key: str) -> list[Track]:
        return [self.tracks[k] for k in sorted(self.by_fact.get(fact_key, ()))]

    def pending(self) -> list[Track]:
        return [track for track in self.tracks.values() if not track.firing]

    def drop(self, track: Track) -> None:
        key = track.key
        if self.tracks.pop(key, None) is None:
            return
        for fact in track.facts.values():
            keys = self.by_fact.get(fact)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.by_fact[fact]

    def keep_only(self, rules: Mapping[str, Rule]) -> int:
        """After a reload: keep the tracks of rules whose text did not change; return how many."""
        for track in list(self.tracks.values()):
            rule = rules.get(track.rule_id)
            if rule is None or rule.fingerprint != track.fingerprint:
                self.drop(track)
        return len(self.tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(list(self.tracks.values()))
