"""Hostile messages (issue 16): no payload, topic or rule result can grow the world without bound,
hide a reorder or order an absurd quantity; each becomes a dead letter or a located alert."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agent.adapters.signals import SignalThread
from agent.app.core import Core
from agent.app.pipeline import Pipeline, Raw
from agent.decisions.build import ACTION_REFUSED_KEY
from agent.ingest.decode import decode
from agent.ingest.subjects import ALERT_KEY, SITES_ALERT_KEY, SubjectLimits
from agent.ingest.topics import TopicMap
from agent.model import ActionDecision, AlertDecision, AlertResolved, Fact, Message, Rejected
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources
from agent.world.masterdata import MasterData
from agent.world.stock import StockPolicy
from tests.support.live import poll

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
TOPICS = TopicMap("factory")
MASTERDATA = MasterData(
    items={"BRG-1": {"reorder_point": 10, "max_level": 100}}, machines={"CNC-1": {}}
)
SCHEMA = build_schema(MASTERDATA.item_fields(), MASTERDATA.machine_fields())
LOW_STOCK = """\
rules:
  - id: low
    when:
      s: kind == "stock" and on_hand < 0
    then:
      - alert: {severity: info, message: "{s.sku} below zero"}
"""


def pipeline(limits: SubjectLimits, facts: list[Fact] | None = None) -> Pipeline:
    core = Core(parse_rule_sources([("rules/low.yaml", LOW_STOCK)], SCHEMA), MASTERDATA)
    p = Pipeline(core, TOPICS, 65536, limits)
    if facts is not None:
        p.restore(facts)
    return p


@pytest.fixture
def capped() -> Iterator[Pipeline]:
    p = pipeline(SubjectLimits("accept", 3))
    yield p
    p.core.close()


def stock(sku: str, seconds: float = 0, site: str = "plant1") -> Raw:
    return Raw(f"factory/{site}/stock/{sku}", b'{"on_hand": 5}', T0 + timedelta(seconds=seconds))


def telemetry(machine: str, seconds: float = 0) -> Raw:
    at = T0 + timedelta(seconds=seconds)
    return Raw(f"factory/plant1/machine/{machine}/telemetry", b'{"state": "running"}', at)


def cap_alerts(decisions: list[object]) -> list[object]:
    return [
        d
        for d in decisions
        if isinstance(d, AlertDecision | AlertResolved) and d.dedup_key == ALERT_KEY
    ]


# -- hole 3: unknown subjects grow the world without bound ---------------------------------------


def test_a_topic_level_over_the_limit_is_a_dead_letter_naming_the_limit() -> None:
    long_sku = "x" * 129
    decoded = decode(f"factory/plant1/stock/{long_sku}", b'{"on_hand": 1}', T0, TOPICS)
    assert isinstance(decoded, Rejected)
    assert decoded.reason == (
        "topic level of 129 characters exceeds the 128-character limit "
        "(ingest.max_topic_level_chars)"
    )
    long_site = decode(f"factory/{'s' * 129}/machine/m/telemetry", b"{}", T0, TOPICS)
    assert isinstance(long_site, Rejected)
    assert isinstance(
        decode(f"factory/p/stock/{'x' * 128}", b'{"on_hand": 1}', T0, TOPICS), Message
    )
    assert isinstance(
        decode("factory/p/stock/xx", b'{"on_hand": 1}', T0, TOPICS, max_level_chars=1), Rejected
    )


def test_unknown_subjects_are_accepted_up_to_the_cap_then_dead_lettered_with_the_payload(
    capped: Pipeline,
) -> None:
    outcome = capped.run([stock(f"NEW-{i}", i) for i in range(5)])
    assert len(capped.core.world) == 3
    assert capped.subjects.count == 3
    assert [r.topic for r in outcome.rejected] == [
        "factory/plant1/stock/NEW-3",
        "factory/plant1/stock/NEW-4",
    ]
    refused = outcome.rejected[0]
    assert refused.raw == b'{"on_hand": 5}'
    assert refused.reason.startswith("SKU 'NEW-3' is not in the master data (items) and 3 unknown")
    assert "ingest.unknown_subjects_max" in refused.reason


def test_subjects_already_in_the_world_keep_being_updated_over_the_cap(capped: Pipeline) -> None:
    capped.run([stock(f"NEW-{i}", i) for i in range(4)])
    outcome = capped.run([stock("NEW-0", 10), stock("NEW-2", 11)])
    assert outcome.rejected == []
    fact = capped.core.world.get("stock/plant1/NEW-0")
    assert fact is not None and fact.updated_at == T0 + timedelta(seconds=10)


def test_known_subjects_are_never_capped(capped: Pipeline) -> None:
    capped.run([stock(f"NEW-{i}", i) for i in range(4)])
    outcome = capped.run([stock("BRG-1", 5), telemetry("CNC-1", 5), stock("BRG-1", 6, site="p2")])
    assert outcome.rejected == []
    assert capped.subjects.count == 3


def test_an_unknown_machine_counts_against_the_same_cap(capped: Pipeline) -> None:
    outcome = capped.run(
        [stock("NEW-0"), stock("NEW-1"), telemetry("ROBOT-9"), telemetry("ROBOT-10")]
    )
    assert [r.reason.split(" is ")[0] for r in outcome.rejected] == ["machine 'ROBOT-10'"]


def test_the_same_new_subject_twice_in_one_batch_counts_once(capped: Pipeline) -> None:
    outcome = capped.run(
        [stock("NEW-0", 0), stock("NEW-0", 1), stock("NEW-1", 2), stock("NEW-2", 3)]
    )
    assert outcome.rejected == []
    assert capped.subjects.count == 3


def test_reaching_the_cap_raises_one_alert_not_one_per_message(capped: Pipeline) -> None:
    first = capped.run([stock(f"NEW-{i}", i) for i in range(5)])
    (alert,) = cap_alerts(first.decisions)
    assert isinstance(alert, AlertDecision)
    assert alert.severity == "warning"
    assert "ingest.unknown_subjects_max = 3 is reached" in alert.message
    assert "factory/plant1/stock/NEW-3" in alert.message
    assert alert.matched["unknown_subjects"]["count"] == 3
    later = capped.run([stock(f"MORE-{i}", 10 + i) for i in range(5)])
    assert len(later.rejected) == 5
    assert cap_alerts(later.decisions) == []


def test_a_start_under_the_cap_resolves_the_alert_once(capped: Pipeline) -> None:
    first = capped.run([stock("NEW-0")])
    (resolved,) = cap_alerts(first.decisions)
    assert isinstance(resolved, AlertResolved)
    assert cap_alerts(capped.run([stock("NEW-1", 1)]).decisions) == []


def test_a_restart_counts_the_restored_unknown_subjects_against_the_cap(capped: Pipeline) -> None:
    capped.run([stock(f"NEW-{i}", i) for i in range(3)])
    saved = list(capped.core.world)
    again = pipeline(SubjectLimits("accept", 3), saved)
    try:
        assert again.subjects.count == 3
        outcome = again.run([stock("NEW-9", 9), stock("NEW-1", 10)])
        assert [r.topic for r in outcome.rejected] == ["factory/plant1/stock/NEW-9"]
        assert len(cap_alerts(outcome.decisions)) == 1
    finally:
        again.core.close()
    raised = pipeline(SubjectLimits("accept", 10), saved)  # a higher cap: under it again
    try:
        (resolved,) = cap_alerts(raised.run([stock("NEW-9", 9)]).decisions)
        assert isinstance(resolved, AlertResolved)
    finally:
        raised.core.close()


def test_dead_letter_mode_refuses_every_unknown_subject() -> None:
    p = pipeline(SubjectLimits("dead_letter", 1000))
    try:
        outcome = p.run([stock("NEW-0"), telemetry("ROBOT-1"), stock("BRG-1"), telemetry("CNC-1")])
        assert len(p.core.world) == 2
        assert [r.reason for r in outcome.rejected] == [
            "SKU 'NEW-0' is not in the master data (items) and ingest.unknown_subjects is "
            "'dead_letter': add it there, then send again",
            "machine 'ROBOT-1' is not in the master data (machines) and ingest.unknown_subjects "
            "is 'dead_letter': add it there, then send again",
        ]
    finally:
        p.core.close()


def site_alerts(decisions: list[object]) -> list[object]:
    return [
        d
        for d in decisions
        if isinstance(d, AlertDecision | AlertResolved) and d.dedup_key == SITES_ALERT_KEY
    ]


def test_new_sites_over_the_cap_are_dead_letters_with_one_alert_and_a_count() -> None:
    """A known SKU at a random site is a new fact: a flood of site names grew the world."""
    p = pipeline(SubjectLimits(max_sites=2))
    try:
        first = p.run([stock("BRG-1", 0, "plant1"), stock("BRG-1", 1, "plant2")])
        assert first.rejected == [] and p.subjects.sites == 2
        flood = [stock("BRG-1", 2 + i, f"x{i}") for i in range(50)]
        outcome = p.run([*flood, stock("BRG-1", 60, "plant1")])  # a known site goes on
        assert [r.topic for r in outcome.rejected] == [raw.topic for raw in flood]
        assert outcome.rejected[0].reason == (
            "site 'x0' is new and 2 sites are in the world already, the limit of "
            "ingest.sites_max: list the agent's sites in mqtt.sites, or raise the limit"
        )
        assert outcome.rejected[0].raw == b'{"on_hand": 5}'  # kept whole
        assert len(p.core.world) == 2 and p.subjects.sites == 2
        (alert,) = site_alerts(outcome.decisions)
        assert isinstance(alert, AlertDecision) and alert.severity == "warning"
        assert "ingest.sites_max = 2 is reached" in alert.message
        assert site_alerts(p.run([stock("BRG-1", 70, "x99")]).decisions) == []  # one alert
        saved = list(p.core.world)
    finally:
        p.core.close()
    again = pipeline(SubjectLimits(max_sites=2), saved)  # a restart counts the restored sites
    try:
        assert again.subjects.sites == 2
        assert len(again.run([stock("BRG-1", 80, "x100")]).rejected) == 1
    finally:
        again.core.close()


def test_a_subject_refused_does_not_take_a_site_place() -> None:
    p = pipeline(SubjectLimits("dead_letter", max_sites=1))
    try:
        assert len(p.run([stock("NEW-0", 0, "elsewhere")]).rejected) == 1
        assert p.subjects.sites == 0
        assert p.run([stock("BRG-1", 1, "plant1")]).rejected == []
    finally:
        p.core.close()


def test_sites_listed_in_mqtt_sites_are_not_capped() -> None:
    """`mqtt.sites` restricts the subscriptions already: the cap would only refuse the plant's."""
    p = pipeline(SubjectLimits(max_sites=1, sites=frozenset({"a", "b", "c"})))
    try:
        outcome = p.run([stock("BRG-1", i, site) for i, site in enumerate("abc")])
        assert outcome.rejected == [] and p.subjects.sites == 3
        assert site_alerts(outcome.decisions) == []
    finally:
        p.core.close()


# -- hole 4: a reorder vanishes when its quantity is not a number --------------------------------

REORDER = """\
rules:
  - id: odd-order
    when:
      s: kind == "stock" and on_hand >= 0
    then:
      - reorder:
          sku: s.sku
          quantity: {quantity}
      - alert: {{severity: info, message: "{{s.sku}} ordered"}}
"""
ITEMS = MasterData(
    items={
        "BRG-1": {"reorder_point": 10, "max_level": 100, "unit_cost": 2.5},
        "BARE": {},
        "GOLD": {"unit_cost": 1e300},
    }
)


def reorder_decisions(quantity: str, sku: str, on_hand: float, **fields: float) -> list[object]:
    schema = build_schema(ITEMS.item_fields(), ITEMS.machine_fields())
    text = REORDER.format(quantity=quantity)
    core = Core(parse_rule_sources([("rules/odd.yaml", text)], schema), ITEMS)
    try:
        message = Message(
            "stock",
            f"factory/plant1/stock/{sku}",
            "plant1",
            sku,
            {"on_hand": on_hand, **fields},
            T0,
            T0,
        )
        return list(core.process([message]))
    finally:
        core.close()


def refused(decisions: list[object]) -> str:
    """The message of the one error alert, after checking that no reorder was made."""
    assert not [d for d in decisions if isinstance(d, ActionDecision)]
    errors = [
        d
        for d in decisions
        if isinstance(d, AlertDecision) and d.dedup_key.startswith(ACTION_REFUSED_KEY)
    ]
    assert len(errors) == 1, decisions
    (error,) = errors
    assert error.dedup_key == f"{ACTION_REFUSED_KEY}/odd-order/plant1/{error.subject}"
    assert error.rule_id == "odd-order" and error.severity == "warning"
    # The rule's own alert still fires: the error is added, nothing is hidden.
    assert [d.rule_id for d in decisions if isinstance(d, AlertDecision)] == ["odd-order"] * 2
    return error.message


def test_a_quantity_divided_by_zero_is_a_located_error_alert_not_a_silent_drop() -> None:
    message = refused(reorder_decisions("s.on_hand / s.on_order", "BRG-1", 5, on_order=0))
    assert message == (
        "rules/odd.yaml:6: odd-order: reorder of BRG-1 not placed: quantity did not evaluate to "
        "a number (a division by zero, an overflow or a missing field?)"
    )


def test_an_overflowing_quantity_is_an_error_alert() -> None:
    message = refused(reorder_decisions("s.on_hand * s.on_hand", "BRG-1", 1e200))
    assert "quantity did not evaluate to a number" in message


def test_a_quantity_of_zero_or_less_is_an_error_alert() -> None:
    message = refused(reorder_decisions("s.max_level - s.on_hand", "BRG-1", 130))
    assert message.endswith("reorder of BRG-1 not placed: quantity -30 is not positive")
    assert "not positive" in refused(reorder_decisions("0", "BRG-1", 5))


def test_a_quantity_over_the_factor_of_max_level_is_an_error_alert() -> None:
    message = refused(reorder_decisions("s.on_hand", "BRG-1", 1001))
    assert message.endswith(
        "quantity 1001 is above 10 x max_level 100 = 1000 (inventory.max_reorder_factor)"
    )
    ordered = reorder_decisions("s.on_hand", "BRG-1", 1000)
    (action,) = [d for d in ordered if isinstance(d, ActionDecision)]
    assert action.params["quantity"] == 1000 and action.params["cost"] == 2500.0


def test_a_quantity_of_1e308_is_never_ordered_even_without_master_data() -> None:
    message = refused(reorder_decisions("s.on_hand", "BARE", 1e308))
    assert message.endswith("quantity 1e+308 is above the limit of 1,000,000,000 units")


def test_a_reorder_whose_cost_is_not_finite_is_an_error_alert_not_the_string_inf() -> None:
    message = refused(reorder_decisions("s.on_hand", "GOLD", 1e9))
    assert message.endswith("its cost (1000000000 x unit_cost) is not a finite number")


def test_the_factor_is_a_setting() -> None:
    schema = build_schema(ITEMS.item_fields(), ITEMS.machine_fields())
    rules = parse_rule_sources([("rules/odd.yaml", REORDER.format(quantity="s.on_hand"))], schema)
    core = Core(rules, ITEMS, stock_policy=StockPolicy(max_reorder_factor=20))
    try:
        message = Message("stock", "factory/p/stock/BRG-1", "p", "BRG-1", {"on_hand": 1500}, T0, T0)
        (action,) = [d for d in core.process([message]) if isinstance(d, ActionDecision)]
        assert action.params["quantity"] == 1500
    finally:
        core.close()


# -- hole 5: duplicate JSON keys (last wins) -------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "key"),
    [
        ("factory/p/stock/BRG-1", b'{"on_hand": 5, "on_hand": 500}', "on_hand"),
        ("factory/p/stock/BRG-1", b'{"on_hand": 5, "unit": "pcs", "unit": "kg"}', "unit"),
        ("factory/p/machine/CNC-1/telemetry", b'{"temp_c": 20, "temp_c": 90}', "temp_c"),
        ("factory/p/receipt/BRG-1", b'{"quantity": 1, "ts": 1780000000, "ts": 1}', "ts"),
        (
            "factory/p/agent/command",
            b'{"command": "ack", "id": 1, "by": "ann", "by": "admin"}',
            "by",
        ),
        ("factory/p/stock/BRG-1", b'{"on_hand": 5, "x": {"a": 1, "a": 2}}', "a"),
    ],
)
def test_a_key_given_twice_is_a_dead_letter_not_last_wins(
    topic: str, payload: bytes, key: str
) -> None:
    decoded = decode(topic, payload, T0, TOPICS)
    assert isinstance(decoded, Rejected)
    assert decoded.reason == f"duplicate key {key!r}"
    assert decoded.raw == payload


def test_the_same_value_under_two_different_keys_is_fine() -> None:
    decoded = decode("factory/p/stock/BRG-1", b'{"on_hand": 5, "on_order": 5}', T0, TOPICS)
    assert isinstance(decoded, Message)
    assert decoded.fields == {"on_hand": 5, "on_order": 5}


def test_a_duplicate_command_key_reaches_the_dead_letters_through_the_pipeline() -> None:
    p = pipeline(SubjectLimits())
    try:
        raw = b'{"command": "ack", "id": 1, "id": 2, "by": "ann"}'
        outcome = p.run([Raw("factory/p/agent/command", raw, T0)])
        assert outcome.commands == []
        assert [(r.reason, r.raw) for r in outcome.rejected] == [("duplicate key 'id'", raw)]
    finally:
        p.core.close()


# -- hole 5: SIGTERM while ingest sits in a C call ------------------------------------------------


def test_signals_are_handled_on_their_own_thread_not_the_main_one() -> None:
    seen: list[tuple[str, str]] = []
    handlers = SignalThread(
        lambda: seen.append(("stop", threading.current_thread().name)),
        lambda: seen.append(("hangup", threading.current_thread().name)),
    )
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    handlers.start()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        poll(lambda: len(seen) == 2, 5, "both signals")
        assert seen == [("hangup", "signals"), ("stop", "signals")]
    finally:
        handlers.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
