"""Stock facts: the latest count of an SKU merged with its item master data, and derived values.

Pure functions of the previous fact, the message and the master data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from agent.model import Fact, Message, Value


def stock_fact(previous: Fact | None, message: Message, item: Mapping[str, Value]) -> Fact:
    """The new fact for a stock message: message fields over master data, `projected` derived."""
    payload = message.fields
    on_order = payload.get("on_order")
    if not isinstance(on_order, (int, float)):
        on_order = 0
    fields: dict[str, Value] = {
        **item,
        **payload,
        "kind": "stock",
        "site": message.site,
        "sku": message.subject,
        "on_order": on_order,
    }
    on_hand = payload["on_hand"]
    if isinstance(on_hand, (int, float)):
        fields["projected"] = on_hand + on_order
    return Fact("stock", message.site, message.subject, fields, message.ts)


def refresh_stock(fact: Fact, now: datetime) -> Fact | None:
    """Time-derived values of a stock fact at `now`; None when nothing changed."""
    return None
