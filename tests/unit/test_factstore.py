"""The world's fact store: packed facts come back as they were, in the order they were stored."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from agent.model import Fact, Message, OpenReorder, Value
from agent.world import factstore
from agent.world.factstore import FactStore
from agent.world.masterdata import MasterData
from agent.world.state import WorldState

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _stock(sku: str, on_hand: int, minutes: int = 0) -> Fact:
    fields = {"supplier": "ACME", "spare": ["a", "b"], "on_hand": on_hand, "kind": "stock"}
    fields["sku"] = sku
    return Fact("stock", "p", sku, fields, T0 + timedelta(minutes=minutes))


def test_a_packed_fact_comes_back_equal_with_its_fields_in_order() -> None:
    store = FactStore(hot=1)
    first, second = _stock("A", 5), _stock("B", 7)
    store.put(first.key, first)
    store.put(second.key, second)  # packs A
    again = store.get(first.key)
    assert again == first and again is not first
    assert again is not None and list(again.fields.items()) == list(first.fields.items())
    assert again.fields["spare"] is first.fields["spare"]  # the same values, not copies


def test_the_store_keeps_the_order_keys_were_first_stored_in_across_packing() -> None:
    store = FactStore(hot=2)
    for n, sku in enumerate("CABD"):
        store.put(f"stock/p/{sku}", _stock(sku, n))
    store.put("stock/p/C", _stock("C", 9, minutes=1))  # replaced after it was packed
    store.get("stock/p/A")
    assert [f.subject for f in store] == ["C", "A", "B", "D"]
    assert [f.fields["on_hand"] for f in store] == [9, 1, 2, 3]
    assert len(store) == 4


def test_only_the_most_recently_stored_stock_facts_stay_unpacked() -> None:
    store = FactStore(hot=2)
    facts = [_stock(str(n), n) for n in range(5)]
    for fact in facts:
        store.put(fact.key, fact)
    machine = Fact("machine", "p", "m1", {"kind": "machine", "state": "idle"}, T0)
    store.put(machine.key, machine)
    # the two last stored are the same objects; the older ones were packed and come back equal
    assert store.get(facts[4].key) is facts[4] and store.get(facts[3].key) is facts[3]
    assert store.get(machine.key) is machine  # machine facts are never packed
    older = [store.get(f.key) for f in facts[:3]]
    assert older == facts[:3] and not any(a is b for a, b in zip(older, facts, strict=False))


def test_a_removed_fact_is_gone() -> None:
    store = FactStore(hot=1)
    a, b = _stock("A", 1), _stock("B", 2)
    store.put(a.key, a)
    store.put(b.key, b)
    store.pop(a.key)
    store.pop(b.key)
    assert store.get(a.key) is None and store.get(b.key) is None and len(store) == 0


def _stream(seed: int) -> list[Message]:
    rng = random.Random(seed)
    out = []
    for n in range(600):
        at = T0 + timedelta(minutes=n)
        sku = f"S{rng.randrange(12)}"
        if rng.random() < 0.1:
            fields: dict[str, Value] = {"quantity": rng.randint(1, 50), "reference": f"r{n}"}
            out.append(Message("receipt", f"f/p/receipt/{sku}", "p", sku, fields, at, at))
        elif rng.random() < 0.3:
            fields = {"state": rng.choice(["running", "idle"]), "temp_c": rng.random() * 90}
            out.append(Message("telemetry", "f/p/machine/m1", "p", "m1", fields, at, at))
        else:
            late = at - timedelta(minutes=rng.choice([0, 0, 0, 30]))  # some out of order
            fields = {"on_hand": rng.randint(0, 300)}
            out.append(Message("stock", f"f/p/stock/{sku}", "p", sku, fields, late, at))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_a_world_that_packs_every_fact_decides_on_the_same_facts(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts, receipts, reorders, telemetry and ticks through a world whose every stock fact is
    packed as soon as another is stored, and through one that never packs: the same facts."""
    items = {
        f"S{n}": {"reorder_point": 40, "max_level": 200, "lead_time_days": 3} for n in range(12)
    }
    masterdata = MasterData(items=items, machines={"m1": {"line": "L1", "max_temp_c": 80}})
    worlds = []
    for hot in (0, 10_000):
        monkeypatch.setattr(factstore, "HOT", hot)
        worlds.append(WorldState(masterdata))
    packing, plain = worlds
    for n, message in enumerate(_stream(seed)):
        got = []
        for world in worlds:
            if message.kind == "receipt":
                got.append(world.receive(message))
            else:
                got.append(world.apply(message))
            if n % 37 == 0:
                reorder = OpenReorder(f"r{n}", "p", message.subject, 60.0, 0.0, message.ts)
                got.append(world.reorder_opened(reorder))
            if n % 50 == 0:
                got.append(world.refresh(message.ts + timedelta(hours=1)))
        half = len(got) // 2
        assert got[:half] == got[half:], n
    assert packing.snapshot() == plain.snapshot()
    assert [f.key for f in packing] == [f.key for f in plain]
    assert [list(f.fields) for f in packing] == [list(f.fields) for f in plain]
