"""The one answer to "is a tick due at t" that the daemon, replay and rule tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.app.ticks import TickSchedule

T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_tick_at_an_instant_comes_before_a_message_at_that_instant() -> None:
    ticks = TickSchedule(30, T0)
    assert ticks.due(s(0)) == []
    assert ticks.due(s(29.9)) == []
    assert ticks.due(s(30)) == [s(30)]  # `>=`: due at its own instant
    assert ticks.due(s(30)) == []  # each instant once


def test_a_gap_gets_every_instant_in_order() -> None:
    ticks = TickSchedule(30, T0)
    assert ticks.due(s(100)) == [s(30), s(60), s(90)]
    assert ticks.next_at == s(120)


def test_without_an_anchor_the_first_time_seen_is_the_anchor() -> None:
    ticks = TickSchedule(30)
    assert ticks.due(s(7)) == []
    assert ticks.due(s(36)) == []
    assert ticks.due(s(37)) == [s(37)]


def test_a_coalescing_schedule_hands_a_late_loop_one_tick_not_a_backlog() -> None:
    ticks = TickSchedule(30, T0, coalesce=True)
    assert ticks.due(s(100)) == [s(90)]
    assert ticks.due(s(119)) == []
    assert ticks.due(s(120)) == [s(120)]


def test_a_tick_must_take_time() -> None:
    with pytest.raises(ValueError, match="longer than 0"):
        TickSchedule(0)
