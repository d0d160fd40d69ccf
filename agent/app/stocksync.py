"""Between the store and the core: the inventory settings as a stock policy, and the open
reorders and applied receipts the core must know at start (and again now and then)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from agent.app.core import Core
from agent.config import InventorySettings
from agent.world.stock import StockPolicy

if TYPE_CHECKING:  # a type only: the pipeline and the runner use this module and import no store
    from agent.store.repository import Store

log = structlog.get_logger(__name__)

# Receipts older than this are not expected to be redelivered; their keys need not be loaded.
RECEIPT_MEMORY = timedelta(days=90)


def stock_policy(settings: InventorySettings) -> StockPolicy:
    return StockPolicy(
        on_order_source=settings.on_order_source,
        usage_half_life_days=settings.usage_half_life_days,
        usage_min_days=settings.usage_min_days,
        jump_share=settings.jump_share,
        max_reorder_factor=settings.max_reorder_factor,
    )


def seed_reorders(core: Core, store: Store, now: datetime | None) -> int:
    """Give the core the store's open reorders and recent receipt keys; return how many
    reorders are open. `now` None (replay of old recordings): every receipt key."""
    reorders = store.open_reorders()
    since = None if now is None else now - RECEIPT_MEMORY
    core.seed_reorders(reorders, store.applied_receipts(since))
    log.debug("reorders_seeded", open=len(reorders))
    return len(reorders)
