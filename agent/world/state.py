"""The world as rules see it: one current fact per SKU and per machine, with derived values.

Messages in (already validated), facts out. Pure: the time is the message's, never the clock's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

import structlog

from agent.model import Fact, Message, Value
from agent.world.masterdata import MasterData

log = structlog.get_logger(__name__)


class WorldState:
    """Current facts, keyed by `Fact.key`. `apply` returns the fact a message changed, if any."""

    def __init__(self, masterdata: MasterData) -> None:
        self._masterdata = masterdata
        self._facts: dict[str, Fact] = {}
        self._state_since: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._facts)

    def __iter__(self) -> Iterator[Fact]:
        return iter(self._facts.values())

    def get(self, key: str) -> Fact | None:
        return self._facts.get(key)

    def apply(self, message: Message) -> Fact | None:
        if message.kind == "stock":
            return self._replace(self._stock_fact(message))
        if message.kind == "telemetry":
            return self._replace(self._machine_fact(message))
        return None  # receipts and commands change actions, not facts (yet)

    def _replace(self, fact: Fact | None) -> Fact | None:
        if fact is not None:
            self._facts[fact.key] = fact
        return fact

    def _is_out_of_order(self, previous: Fact | None, message: Message) -> bool:
        """An older message must not overwrite a newer state (redeliveries, late gateways)."""
        if previous is None or message.ts >= previous.updated_at:
            return False
        log.debug(
            "message_out_of_order",
            topic=message.topic,
            ts=message.ts.isoformat(),
            fact_ts=previous.updated_at.isoformat(),
        )
        return True

    def _stock_fact(self, message: Message) -> Fact | None:
        key = f"stock/{message.site}/{message.subject}"
        if self._is_out_of_order(self._facts.get(key), message):
            return None
        payload = message.fields
        on_hand = payload["on_hand"]
        on_order = payload.get("on_order")
        if not isinstance(on_order, (int, float)):
            on_order = 0
        fields: dict[str, Value] = {
            **self._masterdata.item(message.subject),
            **payload,
            "kind": "stock",
            "site": message.site,
            "sku": message.subject,
            "on_order": on_order,
        }
        if isinstance(on_hand, (int, float)):
            fields["projected"] = on_hand + on_order
        return Fact("stock", message.site, message.subject, fields, message.ts)

    def _machine_fact(self, message: Message) -> Fact | None:
        key = f"machine/{message.site}/{message.subject}"
        previous = self._facts.get(key)
        if self._is_out_of_order(previous, message):
            return None
        # Telemetry often carries a few metrics at a time: keep the last known value of the rest.
        merged: dict[str, Value] = dict(previous.fields) if previous else {}
        merged.update(self._masterdata.machine(message.subject))
        merged.update(message.fields)
        merged.update({"kind": "machine", "site": message.site, "machine": message.subject})
        state = merged.get("state")
        old_state = previous.fields.get("state") if previous else None
        if key not in self._state_since or state != old_state:
            self._state_since[key] = message.ts
        since = self._state_since[key]
        merged["state_minutes"] = round((message.ts - since).total_seconds() / 60.0, 3)
        return Fact("machine", message.site, message.subject, merged, message.ts)

    def snapshot(self) -> Mapping[str, Fact]:
        return dict(self._facts)
