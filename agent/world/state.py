"""The world as rules see it: one current fact per SKU and per machine, with derived values.

Messages in (already validated), facts out; `refresh(now)` recomputes what time alone changes.
Pure: the time is the message's or the caller's, never the clock's. The per-kind logic lives in
`stock.py` and `machine.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime

import structlog

from agent.model import AppliedReceipt, Fact, Message, OpenReorder, ReceiptDecision
from agent.world.arrival import LAG_S, lag_between, plant_now
from agent.world.factstore import FactStore
from agent.world.machine import (
    MetricWindows,
    machine_fact,
    refresh_machine,
    serviced,
    with_machine,
    with_work_orders,
)
from agent.world.masterdata import MasterData
from agent.world.reorders import ReorderBook
from agent.world.stock import (
    StockPolicy,
    receipt_fact,
    refresh_stock,
    stock_fact,
    with_item,
    with_own_orders,
)

log = structlog.get_logger(__name__)


class WorldState:
    """Current facts, keyed by `Fact.key`. `apply` returns the fact a message changed, if any."""

    def __init__(self, masterdata: MasterData, stock_policy: StockPolicy | None = None) -> None:
        self._masterdata = masterdata
        self._facts = FactStore()
        self.out_of_order = 0  # messages older than their subject's state, since the start
        self._stock_policy = stock_policy or StockPolicy()
        self.reorders = ReorderBook()
        self._windows: dict[str, MetricWindows] = {}
        # Open work orders per machine fact key: dedup keys (idle capacity is not idle then).
        self._work_orders: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._facts)

    @property
    def masterdata(self) -> MasterData:
        return self._masterdata

    def __iter__(self) -> Iterator[Fact]:
        return iter(self._facts)

    def get(self, key: str) -> Fact | None:
        return self._facts.get(key)

    def windows_of(self, key: str) -> MetricWindows:
        """The metric windows of a machine fact (new ones if none): refilled at start."""
        windows = self._windows.get(key)
        if windows is None:
            windows = self._windows[key] = MetricWindows()
        return windows

    def apply(self, message: Message) -> Fact | None:
        if message.kind == "stock":
            key = f"stock/{message.site}/{message.subject}"
            previous = self._facts.get(key)
            if self._is_out_of_order(previous, message) or self._before_receipt(message):
                return None
            own = self.reorders.outstanding(message.site, message.subject)
            count = len(self.reorders.open_for(message.site, message.subject))
            item = self._masterdata.item(message.subject)
            return self._replace(
                stock_fact(previous, message, item, own, count, self._stock_policy)
            )
        if message.kind == "telemetry":
            key = f"machine/{message.site}/{message.subject}"
            previous = self._facts.get(key)
            if self._is_out_of_order(previous, message):
                return None
            return self._replace(
                machine_fact(
                    previous,
                    message,
                    self._masterdata.machine(message.subject),
                    self._masterdata.calendar(message.subject),
                    self.windows_of(key),
                    len(self._work_orders.get(key, ())),
                )
            )
        return None  # receipts go through `receive`; commands change actions, not facts

    def receive(self, message: Message) -> tuple[ReceiptDecision | None, Fact | None]:
        """Apply a receipt to the open reorders and to the SKU's fact; (None, None) if this
        receipt was applied before (a redelivery)."""
        receipt = self.reorders.receive(message)
        if receipt is None:
            return None, None
        key = f"stock/{message.site}/{message.subject}"
        fact = receipt_fact(
            self._facts.get(key),
            message,
            self._masterdata.item(message.subject),
            self.reorders.outstanding(message.site, message.subject),
            len(self.reorders.open_for(message.site, message.subject)),
            receipt.over_received,
            self._stock_policy,
        )
        return receipt, self._replace(fact)

    def reorder_opened(self, reorder: OpenReorder) -> Fact | None:
        """Book a reorder a rule asked for; the SKU's fact if its `on_order` changed."""
        if not self.reorders.opened(reorder):
            return None
        return self._rederive(reorder.site, reorder.sku)

    def reapply(self, message: Message, before: Fact | None) -> tuple[Fact | None, Fact | None]:
        """A stock count applied again on its fact as it was before it, with the reorders booked
        since: (that fact, the new fact). A count changes nothing but its fact, so this is the
        state of applying it after the booking."""
        assert message.kind == "stock"
        key = self.key_of(message)
        if before is None:
            self._facts.pop(key)
        else:
            self._replace(before)
            before = self._rederive(message.site, message.subject) or before
        return before, self.apply(message)

    def seed_reorders(
        self, reorders: Iterable[OpenReorder], receipts: Iterable[AppliedReceipt] = ()
    ) -> list[Fact]:
        """Take the store's open reorders (at start, or to resync); return facts that changed."""
        self.reorders.seed(reorders, receipts)
        changed = []
        for fact in self._facts:
            if fact.kind == "stock":
                fresh = self._rederive(fact.site, fact.subject)
                if fresh is not None:
                    changed.append(fresh)
        return changed

    def _rederive(self, site: str, sku: str) -> Fact | None:
        fact = self._facts.get(f"stock/{site}/{sku}")
        if fact is None:
            return None
        fresh = with_own_orders(
            fact,
            self.reorders.outstanding(site, sku),
            len(self.reorders.open_for(site, sku)),
            self._stock_policy,
        )
        return None if fresh is None else self._replace(fresh)

    def key_of(self, message: Message) -> str:
        """The key of the fact a message changes (a receipt changes its SKU's stock fact)."""
        kind = "machine" if message.kind == "telemetry" else "stock"
        return f"{kind}/{message.site}/{message.subject}"

    def refresh(self, now: datetime) -> list[tuple[Fact, Fact]]:
        """Recompute time-derived values (state minutes, ...) at `now`; return the facts that
        changed, before and after."""
        changed: list[tuple[Fact, Fact]] = []
        for fact, packed in self._facts.at_rest():  # most stock facts change nothing: read in place
            at = plant_now(fact, now)  # a subject whose readings arrive late is judged on them
            if fact.kind == "stock":
                fresh = refresh_stock(fact, at)
            else:
                calendar = self._masterdata.calendar(fact.subject)
                fresh = refresh_machine(fact, at, calendar, self._windows.get(fact.key))
            if fresh is not None:
                before = self._facts.get(fact.key) if packed else fact
                assert before is not None
                changed.append((before, self._replace(fresh)))
        return changed

    def swap_masterdata(self, masterdata: MasterData, now: datetime) -> list[tuple[Fact, Fact]]:
        """Use new master data from now on (a reload); return the facts it changed, before and
        after: those of subjects whose fields or shift calendar changed, derived again at `now`.

        A subject no longer in master data keeps its fact, without master-data fields: it is an
        unknown subject, as one never listed (its messages are still taken).
        """
        old, self._masterdata = self._masterdata, masterdata
        changed: list[tuple[Fact, Fact]] = []
        for fact in self._facts:
            fresh: Fact | None
            if fact.kind == "stock":
                before, after = old.item(fact.subject), masterdata.item(fact.subject)
                if before == after:
                    continue
                fresh = with_item(fact, before, after, now, self._stock_policy)
            else:
                machine, calendar = (
                    masterdata.machine(fact.subject),
                    masterdata.calendar(fact.subject),
                )
                was, was_calendar = old.machine(fact.subject), old.calendar(fact.subject)
                if machine == was and calendar == was_calendar:
                    continue
                windows = self._windows.get(fact.key)
                fresh = with_machine(fact, was, machine, was_calendar, calendar, now, windows)
            if fresh is not None:
                changed.append((fact, self._replace(fresh)))
        return changed

    def work_order_opened(self, site: str, machine: str, dedup_key: str) -> Fact | None:
        """Book a work order a rule opened; the machine's fact if its count changed."""
        key = f"machine/{site}/{machine}"
        self._work_orders.setdefault(key, set()).add(dedup_key)
        return self._recount(key)

    def work_order_closed(self, site: str, machine: str, dedup_key: str) -> Fact | None:
        key = f"machine/{site}/{machine}"
        self._work_orders.get(key, set()).discard(dedup_key)
        return self._recount(key)

    def seed_work_orders(self, open_orders: Iterable[tuple[str, str, str]]) -> list[Fact]:
        """The store's open work orders as (site, machine, dedup key); return changed facts."""
        self._work_orders = {}
        for site, machine, dedup_key in open_orders:
            self._work_orders.setdefault(f"machine/{site}/{machine}", set()).add(dedup_key)
        changed = [self._recount(f.key) for f in self._facts if f.kind == "machine"]
        return [fact for fact in changed if fact is not None]

    def service_done(self, site: str, machine: str, at: datetime) -> Fact | None:
        """A service (preventive maintenance) was done: `hours_since_service` restarts at 0."""
        fact = self._facts.get(f"machine/{site}/{machine}")
        if fact is None:
            return None
        last = fact.fields.get("last_service")
        if isinstance(last, str) and datetime.fromisoformat(last) >= at:
            return None  # this service (or a later one) is booked already: a resync
        return self._replace(serviced(fact, at, self._masterdata.calendar(machine)))

    def _recount(self, key: str) -> Fact | None:
        fact = self._facts.get(key)
        if fact is None:
            return None
        fresh = with_work_orders(fact, len(self._work_orders.get(key, ())))
        return None if fresh is None else self._replace(fresh)

    def _before_receipt(self, message: Message) -> bool:
        """A count older than goods already booked in (e.g. redelivered after a restart) would
        show stock without them: out of date, like any older message."""
        last = self.reorders.last_receipt(message.site, message.subject)
        if last is None or message.ts >= last:
            return False
        log.debug("count_before_receipt", topic=message.topic, ts=message.ts.isoformat())
        return True

    def restore(self, fact: Fact) -> Fact:
        """Put back a saved fact as it was (a restart reading the snapshot)."""
        return self._replace(fact)

    def _replace(self, fact: Fact) -> Fact:
        return self._facts.put(fact.key, fact)

    def _is_out_of_order(self, previous: Fact | None, message: Message) -> bool:
        """An older message must not overwrite a newer state (redeliveries, late gateways).
        It still arrived: the subject is not silent (its `lag_s` now dates the newest reading
        at this arrival), and it is counted in `out_of_order`."""
        if previous is None or message.ts >= previous.updated_at:
            return False
        self.out_of_order += 1
        lag = lag_between(previous.updated_at, message.received_at)
        if previous.fields.get(LAG_S, 0.0) != lag:
            fields = {**previous.fields, LAG_S: lag}
            self._replace(replace(previous, fields=fields))
        log.debug(
            "message_out_of_order",
            topic=message.topic,
            ts=message.ts.isoformat(),
            fact_ts=previous.updated_at.isoformat(),
        )
        return True

    def snapshot(self) -> Mapping[str, Fact]:
        return {fact.key: fact for fact in self._facts}
