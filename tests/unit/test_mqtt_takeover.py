"""Another client with the agent's client id: when the broker's drops read as a take-over, and
that a fight of many take-overs is reported once (TakeoverWatch, on made-up monotonic times)."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from agent.adapters.mqtt import MqttSource
from agent.adapters.takeover import FLAP_DROPS, FLAP_WINDOW_S, QUIET_S, TakeoverWatch


def drops(watch: TakeoverWatch, times: list[float], taken_over: bool = False) -> list[bool]:
    return [watch.dropped(t, taken_over) for t in times]


def test_the_broker_saying_so_is_a_take_over_at_once() -> None:
    assert drops(TakeoverWatch(), [100.0], taken_over=True) == [True]


def test_one_or_two_plain_drops_are_a_flaky_network_not_a_take_over() -> None:
    assert drops(TakeoverWatch(), [100.0, 110.0]) == [False, False]


def test_three_plain_drops_within_the_window_are_a_take_over() -> None:
    assert FLAP_DROPS == 3
    assert drops(TakeoverWatch(), [100.0, 101.0, 102.0]) == [False, False, True]


def test_drops_further_apart_than_the_window_are_not() -> None:
    step = FLAP_WINDOW_S / 2 + 1
    assert drops(TakeoverWatch(), [0.0, step, 2 * step, 3 * step]) == [False] * 4


def test_two_agents_fighting_for_twelve_seconds_is_one_take_over_not_twelve() -> None:
    watch = TakeoverWatch()
    fight = [100.0 + i for i in range(12)]
    assert drops(watch, fight, taken_over=True) == [True] + [False] * 11
    # ... and it stays one as long as it goes on, however long
    assert not any(drops(watch, [112.0 + 10 * i for i in range(1, 60)], taken_over=True))
    assert watch.recent_drops == 4  # the window holds the last 30 s: 4 drops 10 s apart


def test_a_take_over_after_a_quiet_spell_is_reported_again() -> None:
    watch = TakeoverWatch()
    assert drops(watch, [100.0, 101.0], taken_over=True) == [True, False]
    later = 101.0 + QUIET_S + 1
    assert drops(watch, [later, later + 1], taken_over=True) == [True, False]


def test_a_single_drop_after_a_take_over_ends_it_without_a_report() -> None:
    watch = TakeoverWatch()
    assert drops(watch, [0.0, 1.0, 2.0]) == [False, False, True]
    later = 2.0 + QUIET_S + 1  # a plain drop long after: the network, not the other agent
    assert drops(watch, [later]) == [False]
    assert drops(watch, [later + 1, later + 2]) == [False, True]  # a new fight: news again


def test_the_window_and_count_can_be_set() -> None:
    watch = TakeoverWatch(drops=2, window_s=5.0, quiet_s=10.0)
    assert drops(watch, [0.0, 6.0, 7.0, 8.0]) == [False, False, True, False]


def test_the_source_raises_one_warning_alarm_naming_the_client_id() -> None:
    raised: list[tuple[str, str, dict[str, Any]]] = []

    def alarm(event: str, reason: str, **context: Any) -> None:
        raised.append((event, reason, context))

    source = MqttSource(
        host="127.0.0.1", port=1, client_id="line-3", subscriptions=["f/#"], alarm=alarm
    )
    taken = ReasonCode(PacketTypes.DISCONNECT, identifier=142)
    for _ in range(12):  # the network thread's callback, as paho calls it
        source._on_disconnect(source._client, None, paho.DisconnectFlags(False), taken, None)
    ((event, reason, context),) = raised
    assert (event, reason, context["level"], context["client_id"]) == (
        "mqtt_session_taken_over",
        "Session taken over",
        "warning",
        "line-3",
    )
    assert context["hint"] == (
        "two agents share client id 'line-3': give each its own [mqtt] client_id"
    )
