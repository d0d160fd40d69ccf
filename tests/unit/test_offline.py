"""A device said to be gone (a Sparkplug B DEATH: `online` 0) is stale at once, not after
`stale_after_s`; the BIRTH that brings it back (`online` 1) ends that (issue 21 item 2)."""

from __future__ import annotations

from datetime import timedelta

from agent.model import AlertDecision, AlertResolved, Value
from tests.unit.test_late_data import T0, make_core, message


def reading(seconds: float, **fields: Value) -> list:  # type: ignore[type-arg]
    at = T0 + timedelta(seconds=seconds)
    return [message(at, at, fields)]


def test_a_death_makes_the_machine_stale_at_once_and_its_birth_ends_it() -> None:
    core = make_core()
    core.process(reading(0, state="running", temp_c=60.0, online=1))
    (stale,) = [d for d in core.process(reading(10, online=0)) if isinstance(d, AlertDecision)]
    assert stale.rule_id == "sensor-stale" and stale.at == T0 + timedelta(seconds=10)
    back = core.process(reading(40, state="running", temp_c=60.0, online=1))
    assert [d.rule_id for d in back if isinstance(d, AlertResolved)] == ["sensor-stale"]


def test_without_online_a_machine_is_stale_only_after_its_wait() -> None:
    core = make_core()
    core.process(reading(0, state="running", temp_c=60.0))
    assert not [d for d in core.tick(T0 + timedelta(seconds=200)) if isinstance(d, AlertDecision)]
