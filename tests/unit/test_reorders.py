"""The book of open reorders: receipts go oldest first, partly or fully, and only once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.model import AppliedReceipt, Message, OpenReorder
from agent.world.reorders import ReorderBook, receipt_key

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def reorder(key: str, quantity: float, hours: float, received: float = 0) -> OpenReorder:
    return OpenReorder(key, "p", "BRG", quantity, received, T0 + timedelta(hours=hours))


def receipt(quantity: float, hours: float) -> Message:
    at = T0 + timedelta(hours=hours)
    return Message("receipt", "factory/p/receipt/BRG", "p", "BRG", {"quantity": quantity}, at, at)


def test_a_receipt_closes_the_oldest_reorder_first_and_reduces_the_next() -> None:
    book = ReorderBook()
    book.seed([reorder("newer", 50, 2), reorder("older", 100, 1, received=40)])
    assert book.outstanding("p", "BRG") == 110
    decision = book.receive(receipt(80, 3))
    assert decision is not None
    assert [
        (line.dedup_key, line.quantity, line.received, line.closes) for line in decision.lines
    ] == [
        ("older", 60, 100, True),
        ("newer", 20, 20, False),
    ]
    assert decision.over_received == 0
    assert [(r.dedup_key, r.outstanding) for r in book.open_for("p", "BRG")] == [("newer", 30)]


def test_what_no_reorder_asked_for_is_over_received() -> None:
    book = ReorderBook()
    book.seed([reorder("only", 100, 1)])
    decision = book.receive(receipt(130, 2))
    assert decision is not None and decision.over_received == 30
    assert book.outstanding("p", "BRG") == 0


def test_a_receipt_is_applied_once_even_after_a_reseed() -> None:
    message = receipt(10, 2)
    book = ReorderBook()
    book.seed([reorder("only", 100, 1)], [AppliedReceipt(receipt_key(message), "p", "BRG", T0)])
    assert book.receive(message) is None
    assert book.outstanding("p", "BRG") == 100
    assert book.last_receipt("p", "BRG") == T0


def test_a_repeat_of_an_open_key_is_not_a_second_reorder() -> None:
    book = ReorderBook()
    assert book.opened(reorder("reorder/p/BRG", 120, 1))
    assert not book.opened(reorder("reorder/p/BRG", 130, 2))
    assert book.outstanding("p", "BRG") == 120
