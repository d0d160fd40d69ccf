"""The life of a rule's match: pending (`for` not yet elapsed) → firing → resolved or gone.

Pure bookkeeping over (rule, matched facts): the core tells it what holds (or stops holding) at
a time; it moves the match by the table (`states.MATCH_MOVES`) and answers what the table says
to do: nothing, fire, repeat, forget or resolve. What changed since the last commit is handed
out by `take_changes()` for the store to save with the batch, and `restore` takes it back after
a restart: a pending `for` keeps its start, a firing match stays firing (and can resolve).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.decisions.build import resolve_holds
from agent.decisions.states import MatchEvent, Outcome, ResolveWhen, match_move
from agent.model import Fact, SavedTrack, TrackChanges
from agent.rulebook.rules import Rule

TrackKey = tuple[str, tuple[str, ...]]  # rule id, the matched facts' keys in alias order


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
    # The rule's `for`, made once: `due` runs for every holding match on every message (a
    # track's rule keeps its text, or the track is dropped).
    wait: timedelta | None = field(default=None, compare=False, repr=False)

    def due(self, rule: Rule, now: datetime) -> bool:
        wait = self.wait
        if wait is None:
            wait = self.wait = timedelta(seconds=rule.for_s)
        return now - self.since >= wait

    def saved(self) -> SavedTrack:
        return SavedTrack(
            self.rule_id,
            self.fingerprint,
            dict(self.facts),
            self.since,
            self.firing,
            self.alert_keys,
        )


@dataclass
class Lifecycle:
    """Every tracked match, indexed by the facts it involves."""

    tracks: dict[TrackKey, Track] = field(default_factory=dict)
    by_fact: dict[str, set[TrackKey]] = field(default_factory=dict)
    _changed: set[TrackKey] = field(default_factory=set)  # since `take_changes()`
    _saved: set[TrackKey] = field(default_factory=set)  # as the store has them

    def _add(self, track: Track) -> None:
        self.tracks[track.key] = track
        for fact in track.facts.values():
            self.by_fact.setdefault(fact, set()).add(track.key)
        self._changed.add(track.key)

    @staticmethod
    def key(rule: Rule, facts: Mapping[str, str]) -> TrackKey:
        return rule.id, tuple(facts[c.alias] for c in rule.conditions)

    def holds(self, rule: Rule, facts: Mapping[str, str], at: datetime) -> Outcome:
        """The rule's condition holds on `facts` at `at`: fire now, keep waiting (nothing), or
        repeat. A match not tracked yet is pending from `at`."""
        key = self.key(rule, facts)
        track = self.tracks.get(key)
        if track is None:
            track = Track(rule.id, rule.fingerprint, dict(facts), at, key=key)
            self._add(track)
        return self._move(track, "due" if track.due(rule, at) else "holds")

    def stops(self, track: Track, rule: Rule, facts: Mapping[str, Fact] | None) -> Outcome:
        """The track's condition no longer holds on `facts` (None: one is gone): forget it,
        keep it firing (nothing) or resolve it, as its rule's `resolve_when` says."""
        return self._move(track, "stops", lambda: _resolve_when(rule, facts))

    def _move(
        self, track: Track, event: MatchEvent, guard: Callable[[], ResolveWhen] | None = None
    ) -> Outcome:
        move = match_move("firing" if track.firing else "pending", event, guard)
        if move.to is None:
            self.drop(track)
        elif (move.to == "firing") != track.firing:
            track.firing = move.to == "firing"
            self._changed.add(track.key)
        return move.outcome

    def fired(self, rule: Rule, facts: Mapping[str, str], alert_keys: Iterable[str]) -> None:
        track = self.tracks.get(self.key(rule, facts))
        if track is not None:
            self.mark_firing(track, alert_keys)

    def mark_firing(self, track: Track, alert_keys: Iterable[str]) -> None:
        """The track fires (with these alerts, added to those it has)."""
        keys = tuple(dict.fromkeys((*track.alert_keys, *alert_keys)))
        if not track.firing or keys != track.alert_keys:
            track.firing = True
            track.alert_keys = keys
            self._changed.add(track.key)

    def involving(self, fact_key: str) -> list[Track]:
        return [self.tracks[k] for k in sorted(self.by_fact.get(fact_key, ()))]

    def pending(self) -> list[Track]:
        return [track for track in self.tracks.values() if not track.firing]

    def drop(self, track: Track) -> None:
        key = track.key
        if self.tracks.pop(key, None) is None:
            return
        self._changed.add(key)
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

    def has_changes(self) -> bool:
        return bool(self._changed)

    def take_changes(self) -> TrackChanges:
        """The tracks to save and to delete since the last call (a commit), and forget them."""
        changed, self._changed = self._changed, set()
        saved: list[SavedTrack] = []
        removed: list[tuple[str, tuple[str, ...]]] = []
        for key in sorted(changed):
            track = self.tracks.get(key)
            if track is not None:
                saved.append(track.saved())
                self._saved.add(key)
            elif key in self._saved:
                removed.append(key)
                self._saved.discard(key)
        return TrackChanges(tuple(saved), tuple(removed))

    def restore(self, saved: Iterable[SavedTrack], rules: Mapping[str, Rule]) -> int:
        """Take back the tracks the store kept (at a restart), as unchanged. A track of a rule
        that is gone or whose text changed is dropped (and deleted at the next commit), as a
        reload would. Returns how many were taken back."""
        taken = 0
        for item in saved:
            key: TrackKey = (item.rule_id, item.fact_keys)
            self._saved.add(key)
            rule = rules.get(item.rule_id)
            if rule is None or rule.fingerprint != item.fingerprint:
                self._changed.add(key)
                continue
            if tuple(c.alias for c in rule.conditions) != tuple(item.facts):
                self._changed.add(key)
                continue
            track = Track(
                item.rule_id,
                item.fingerprint,
                dict(item.facts),
                item.since,
                item.firing,
                tuple(item.alert_keys),
                key,
            )
            self._add(track)
            self._changed.discard(key)
            taken += 1
        return taken

    def __iter__(self) -> Iterator[Track]:
        return iter(list(self.tracks.values()))


def _resolve_when(rule: Rule, facts: Mapping[str, Fact] | None) -> ResolveWhen:
    """The guard on a match that stops: the rule's `resolve_when` on its facts."""
    if rule.resolve_when is None:
        return "absent"
    if facts is None or not resolve_holds(rule, facts):
        return "unmet"
    return "met"
