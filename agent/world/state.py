"""The world as rules see it: one current fact per SKU and per machine, with derived values.

Messages in (already validated), facts out; `refresh(now)` recomputes what time alone changes.
Pure: the time is the message's or the caller's, never the clock's. The per-kind logic lives in
`stock.py` and `machine.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

import structlog

from agent.model import Fact, Message
from agent.world.machine import machine_fact, refresh_machine
from agent.world.masterdata import MasterData
from agent.world.stock import refresh_stock, stock_fact

log = structlog.get_logger(__name__)


class WorldState:
    """Current facts, keyed by `Fact.key`. `apply` returns the fact a message changed, if any."""

    def __init__(self, masterdata: MasterData) -> None:
        self._masterdata = masterdata
        self._facts: dict[str, Fact] = {}

    def __len__(self) -> int:
        return len(self._facts)

    def __iter__(self) -> Iterator[Fact]:
        return iter(self._facts.values())

    def get(self, key: str) -> Fact | None:
        return self._facts.get(key)

    def apply(self, message: Message) -> Fact | None:
        if message.kind == "stock":
            key = f"stock/{message.site}/{message.subject}"
            previous = self._facts.get(key)
            if self._is_out_of_order(previous, message):
                return None
            return self._replace(
                stock_fact(previous, message, self._masterdata.item(message.subject))
            )
        if message.kind == "telemetry":
            key = f"machine/{message.site}/{message.subject}"
            previous = self._facts.get(key)
            if self._is_out_of_order(previous, message):
                return None
            return self._replace(
                machine_fact(previous, message, self._masterdata.machine(message.subject))
            )
        return None  # receipts and commands change actions, not facts (yet)

    def refresh(self, now: datetime) -> list[Fact]:
        """Recompute time-derived values (state minutes, ...) at `now`; return changed facts."""
        changed: list[Fact] = []
        for fact in list(self._facts.values()):
            fresh = refresh_stock(fact, now) if fact.kind == "stock" else refresh_machine(fact, now)
            if fresh is not None:
                changed.append(self._replace(fresh))
        return changed

    def restore(self, fact: Fact) -> Fact:
        """Put back a saved fact as it was (a restart reading the snapshot)."""
        return self._replace(fact)

    def _replace(self, fact: Fact) -> Fact:
        self._facts[fact.key] = fact
        return fact

    @staticmethod
    def _is_out_of_order(previous: Fact | None, message: Message) -> bool:
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

    def snapshot(self) -> Mapping[str, Fact]:
        return dict(self._facts)
