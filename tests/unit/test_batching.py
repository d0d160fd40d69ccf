"""`Core.process_many` (one engine round trip per segment) decides exactly what `Core.process`
decides one message at a time: same decisions in the same order, same world state.

The shipped rules over the shipped master data (3 machines, 6 SKUs): subjects repeat within a few
messages, so segments are short and cut often; reorders are booked by a single-fact rule and by a
join (`no-spare-for-failing-machine` books a reorder for the *other* fact), which makes the core
rewind and re-post the rest of a segment.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.app.core import Core, EngineFactory
from agent.model import ActionDecision, Decision, Message, ReceiptDecision, Value
from agent.rulebook.engine import DurableEngine
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules, parse_rule_sources
from agent.rulebook.worker import ProcessEngine
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SKUS = ["BRG-6204", "OIL-HLP46", "STL-2MM", "BLT-A42", "FLT-HYD10", "PPE-GLV-M"]
MACHINES = ["press-01", "cnc-02", "weld-03"]


def make_core(engine: EngineFactory = DurableEngine) -> Core:
    masterdata = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    return Core(load_rules([ROOT / "rules"], schema), masterdata, engine_factory=engine)


def stream(seed: int, count: int) -> list[Message]:
    rng = random.Random(seed)
    messages = []
    at = T0
    for _ in range(count):
        at += timedelta(seconds=rng.choice([1, 5, 30, 120]))
        roll = rng.random()
        fields: dict[str, Value]
        if roll < 0.45:
            sku = rng.choice(SKUS)
            fields = {"on_hand": rng.choice([0, 0, 1, 5, 20, 40, 80, 150, 400])}
            if rng.random() < 0.3:  # open orders the agent did not place: no reorder of its own
                fields["on_order"] = rng.choice([0, 500])
            kind, topic, subject = "stock", f"factory/plant1/stock/{sku}", sku
        elif roll < 0.55:
            sku = rng.choice(SKUS)
            fields = {"quantity": rng.choice([10, 50, 120])}
            kind, topic, subject = "receipt", f"factory/plant1/receipt/{sku}", sku
        else:
            machine = rng.choice(MACHINES)
            fields = {
                "state": rng.choice(["running", "running", "idle", "down"]),
                "temp_c": rng.uniform(40, 110),
                "vibration_mm_s": rng.uniform(0.5, 12),
            }
            if rng.random() < 0.1:
                fields["fault"] = rng.choice(["E401", "W100"])
            kind, topic, subject = (
                "telemetry",
                f"factory/plant1/machine/{machine}/telemetry",
                machine,
            )
        messages.append(Message(kind, topic, "plant1", subject, fields, at, at))  # type: ignore[arg-type]
    return messages


def batches(messages: list[Message], rng: random.Random) -> list[list[Message]]:
    out, start = [], 0
    while start < len(messages):
        size = rng.choice([1, 3, 17, 60, 500])
        out.append(messages[start : start + size])
        start += size
    return out


@pytest.mark.parametrize(
    ("seed", "engine"),
    [(seed, DurableEngine) for seed in range(12)] + [(seed, ProcessEngine) for seed in range(2)],
)
def test_batched_decides_as_one_at_a_time(seed: int, engine: EngineFactory) -> None:
    """Also through the engine worker, which answers unchanged facts without a round trip."""
    messages = stream(seed, 600)
    single, batched = make_core(), make_core(engine)
    expected: list[list[Decision]] = []
    got: list[list[Decision]] = []
    for batch in batches(messages, random.Random(seed)):
        expected.extend(single.process([message]) for message in batch)
        for result in batched.process_many(batch):
            assert not isinstance(result, Exception)
            got.append(result)
        now = batch[-1].ts + timedelta(seconds=30)
        expected.append(single.tick(now))
        got.append(batched.tick(now))
    batched.close()
    assert got == expected
    assert batched.world.snapshot() == single.world.snapshot()
    # The stream did exercise what makes batching hard.
    booked = [d for ds in got for d in ds if isinstance(d, ActionDecision)]
    assert any(d.rule_id == "no-spare-for-failing-machine" for d in booked)
    assert any(d.rule_id == "reorder-point" for d in booked)


def test_a_join_books_a_fact_that_a_later_message_of_the_batch_changes() -> None:
    """press-01 goes down while its spare BRG-6204 is out: the join books a reorder for the spare,
    and the next message of the same batch counts that spare. One at a time, the count lands on
    the booked fact; the batch must apply it again on top of the booking."""

    def message(kind: str, subject: str, seconds: int, **fields: Value) -> Message:
        at = T0 + timedelta(seconds=seconds)
        topic = (
            f"factory/plant1/machine/{subject}/telemetry"
            if kind == "telemetry"
            else f"factory/plant1/stock/{subject}"
        )
        return Message(kind, topic, "plant1", subject, fields, at, at)  # type: ignore[arg-type]

    before = [
        message("stock", "BRG-6204", 0, on_hand=0, on_order=500),  # no reorder: enough on order
        message("telemetry", "press-01", 1, state="running", temp_c=50, vibration_mm_s=1),
    ]
    batch = [
        message("telemetry", "press-01", 10, state="down", temp_c=50, vibration_mm_s=1),
        message("stock", "BRG-6204", 11, on_hand=0, on_order=500),
        message("telemetry", "cnc-02", 12, state="running", temp_c=50, vibration_mm_s=1),
    ]
    single, batched = make_core(), make_core()
    single.process(before)
    batched.process(before)
    expected = [single.process([m]) for m in batch]
    got = batched.process_many(batch)
    assert got == expected
    assert batched.world.snapshot() == single.world.snapshot()
    (reorder,) = [d for d in got[0] if isinstance(d, ActionDecision) and d.kind == "reorder"]
    assert reorder.rule_id == "no-spare-for-failing-machine"
    counted = batched.world.get("stock/plant1/BRG-6204")
    assert counted is not None and counted.fields["on_order_agent"] == reorder.params["quantity"]


FOREIGN = """\
rules:
  - id: press-down-orders-oil
    description: A rule over one fact that books another subject.
    when:
      m: kind == "machine" and state == "down"
    then:
      - reorder: {sku: '"OIL-HLP46"', quantity: 50}
"""


def test_a_rule_over_one_fact_that_books_another_subject_is_batched_exactly() -> None:
    masterdata = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    inventory = (ROOT / "rules/inventory.yaml").read_text()
    sources = [("inventory.yaml", inventory), ("foreign.yaml", FOREIGN)]

    def make() -> Core:
        return Core(parse_rule_sources(sources, schema), masterdata)

    def at(seconds: int) -> datetime:
        return T0 + timedelta(seconds=seconds)

    def stock(sku: str, seconds: int, **fields: Value) -> Message:
        return Message(
            "stock", f"factory/plant1/stock/{sku}", "plant1", sku, fields, at(seconds), at(seconds)
        )  # type: ignore[arg-type]

    def receipt(sku: str, seconds: int, quantity: int) -> Message:
        topic = f"factory/plant1/receipt/{sku}"
        return Message(
            "receipt", topic, "plant1", sku, {"quantity": quantity}, at(seconds), at(seconds)
        )

    def down(seconds: int) -> Message:
        topic = "factory/plant1/machine/press-01/telemetry"
        return Message(
            "telemetry", topic, "plant1", "press-01", {"state": "down"}, at(seconds), at(seconds)
        )

    before = [stock("OIL-HLP46", 0, on_hand=300)]
    batch = [down(10), stock("OIL-HLP46", 11, on_hand=290), receipt("OIL-HLP46", 12, 50)]
    single, batched = make(), make()
    single.process(before)
    batched.process(before)
    expected = [single.process([m]) for m in batch]
    assert batched.process_many(batch) == expected
    assert batched.world.snapshot() == single.world.snapshot()
    (oil,) = [d for d in expected[0] if isinstance(d, ActionDecision)]
    assert (oil.kind, oil.subject) == ("reorder", "OIL-HLP46")
    # The receipt was booked against the reorder the press's message opened in the same batch.
    (booked,) = [d for d in expected[2] if isinstance(d, ReceiptDecision)]
    assert [line.dedup_key for line in booked.lines] == [oil.dedup_key]
