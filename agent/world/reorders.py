"""The open reorders the core knows of, per SKU, and what a receipt does to them.

Seeded from the store at start, grown by the reorders the rules open, shrunk by receipts. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

import structlog

from agent.model import AppliedReceipt, Message, OpenReorder, ReceiptDecision, ReceiptLine

log = structlog.get_logger(__name__)

# A receipt whose quantity is within this of a reorder's outstanding quantity closes it
# (float noise from decimal quantities such as litres).
_EPSILON = 1e-6


def receipt_key(message: Message) -> str:
    """One receipt's identity: the same message delivered twice is applied once."""
    reference = message.fields.get("reference") or ""
    quantity = message.fields.get("quantity")
    return f"{message.site}/{message.subject}/{message.ts.isoformat()}/{quantity}/{reference}"


class ReorderBook:
    """Open reorders per (site, SKU), oldest first, and the keys of receipts already applied."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], list[OpenReorder]] = {}
        self._receipts: set[str] = set()
        self._last_receipt: dict[tuple[str, str], datetime] = {}

    def seed(
        self, reorders: Iterable[OpenReorder], receipts: Iterable[AppliedReceipt] = ()
    ) -> None:
        """Replace what the book knows with the store's view (at start, or to resync)."""
        self._open = {}
        for reorder in sorted(reorders, key=lambda r: r.opened_at):
            self._open.setdefault((reorder.site, reorder.sku), []).append(reorder)
        for receipt in receipts:
            self._receipts.add(receipt.receipt_key)
            self._note_receipt(receipt.site, receipt.sku, receipt.at)

    def last_receipt(self, site: str, sku: str) -> datetime | None:
        """When goods last came in for the SKU: a count taken before that is out of date."""
        return self._last_receipt.get((site, sku))

    def _note_receipt(self, site: str, sku: str, at: datetime) -> None:
        known = self._last_receipt.get((site, sku))
        if known is None or at > known:
            self._last_receipt[(site, sku)] = at

    def open_for(self, site: str, sku: str) -> list[OpenReorder]:
        return list(self._open.get((site, sku), ()))

    def outstanding(self, site: str, sku: str) -> float:
        """What the agent's own open reorders still expect for the SKU."""
        return sum(reorder.outstanding for reorder in self._open.get((site, sku), ()))

    def opened(self, reorder: OpenReorder) -> bool:
        """Record a reorder a rule asked for; False when its key is open already (a repeat)."""
        existing = self._open.setdefault((reorder.site, reorder.sku), [])
        if any(r.dedup_key == reorder.dedup_key for r in existing):
            return False
        existing.append(reorder)
        return True

    def receive(self, message: Message) -> ReceiptDecision | None:
        """Apply a receipt to the SKU's open reorders, oldest first; None if applied before."""
        key = receipt_key(message)
        if key in self._receipts:
            log.info("receipt_repeated", key=key)
            return None
        self._receipts.add(key)
        self._note_receipt(message.site, message.subject, message.ts)
        quantity = message.fields.get("quantity")
        assert isinstance(quantity, int | float)  # the decoder requires a number > 0
        left = float(quantity)
        lines: list[ReceiptLine] = []
        still_open: list[OpenReorder] = []
        for reorder in self._open.get((message.site, message.subject), []):
            if left <= _EPSILON:
                still_open.append(reorder)
                continue
            taken = min(left, reorder.outstanding)
            left -= taken
            received = reorder.received + taken
            closes = reorder.quantity - received <= _EPSILON
            lines.append(ReceiptLine(reorder.dedup_key, taken, received, closes))
            if not closes:
                still_open.append(replace(reorder, received=received))
        self._open[(message.site, message.subject)] = still_open
        reference = message.fields.get("reference")
        return ReceiptDecision(
            receipt_key=key,
            site=message.site,
            subject=message.subject,
            quantity=float(quantity),
            reference=reference if isinstance(reference, str) else "",
            lines=tuple(lines),
            over_received=round(left, 6) if left > _EPSILON else 0.0,
            at=message.ts,
        )
