"""A restart resumes the rules' tracked matches: a pending `for` keeps its start, a firing match
stays firing and resolves (issue 18 item 1). The core's side, with a simulated clock."""

from __future__ import annotations

from datetime import timedelta

from agent.app.core import Core
from agent.model import AlertDecision, AlertResolved, SavedTrack
from tests.unit.test_lifecycle import HOT, MASTER, T0, of, rules, telemetry


def restarted(core: Core, tracks: list[SavedTrack], firing: frozenset[str] = frozenset()) -> Core:
    facts = list(core.world)
    core.close()
    again = Core(rules(HOT), MASTER)
    again.restore(facts, tracks, firing)
    return again


def test_a_pending_for_keeps_its_start_across_a_restart() -> None:
    core = Core(rules(HOT), MASTER)
    core.process([telemetry(0, state="running", temp_c=90.0)])
    core.tick(T0 + timedelta(minutes=4))
    saved = core.take_tracks()
    assert [t.firing for t in saved.saved] == [False]
    again = restarted(core, list(saved.saved))
    assert again.tick(T0 + timedelta(minutes=9)) == []
    (alert,) = of(AlertDecision, again.tick(T0 + timedelta(minutes=10)))
    assert alert.at == T0 + timedelta(minutes=10)
    again.close()


def test_a_firing_for_alert_resolves_after_a_restart() -> None:
    core = Core(rules(HOT), MASTER)
    core.process([telemetry(0, state="running", temp_c=90.0)])
    (alert,) = of(AlertDecision, core.tick(T0 + timedelta(minutes=10)))
    saved = core.take_tracks()
    assert [t.firing for t in saved.saved] == [True]
    again = restarted(core, list(saved.saved))
    assert again.take_tracks().saved == ()  # taken back as they were: nothing to save
    resolved = of(AlertResolved, again.process([telemetry(12, state="running", temp_c=60.0)]))
    assert [r.dedup_key for r in resolved] == [alert.dedup_key]
    assert again.take_tracks().removed != ()  # the resolved track is deleted at the commit
    again.close()


def test_without_saved_tracks_a_firing_alert_in_the_store_is_adopted() -> None:
    core = Core(rules(HOT), MASTER)
    core.process([telemetry(0, state="running", temp_c=90.0)])
    (alert,) = of(AlertDecision, core.tick(T0 + timedelta(minutes=10)))
    again = restarted(
        core, [], frozenset({alert.dedup_key})
    )  # a database from before tracks were kept
    assert again.tick(T0 + timedelta(minutes=30)) == []  # not fired a second time
    resolved = of(AlertResolved, again.process([telemetry(31, state="running", temp_c=60.0)]))
    assert [r.dedup_key for r in resolved] == [alert.dedup_key]
    again.close()


def test_a_track_of_a_rule_changed_while_down_is_dropped_and_deleted() -> None:
    core = Core(rules(HOT), MASTER)
    core.process([telemetry(0, state="running", temp_c=90.0)])
    (track,) = core.take_tracks().saved
    stale = SavedTrack(
        track.rule_id, "other-fingerprint", track.facts, track.since, track.firing, ()
    )
    again = restarted(core, [stale])
    changes = again.take_tracks()
    # the match still holds: saved anew under the rule's current text, not the stale one
    assert [t.fingerprint for t in changes.saved] == [track.fingerprint]
    again.close()
