"""Between the store and the core for machines: the work orders people close (`done`, `cancel`,
by MQTT or CLI) reach the machine facts: the open count, and a service done restarts the hours."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from agent.app.core import Core
from agent.model import Decision

if TYPE_CHECKING:  # only a type: the runner, which uses this module, imports no store
    from agent.store.repository import Store

log = structlog.get_logger(__name__)


def is_service(row: Mapping[str, Any]) -> bool:
    """A work order that is a service (preventive maintenance): its rule said `service: true`."""
    params = row.get("params") or {}
    return row.get("kind") == "work_order" and params.get("service") is True


def work_order_closed(core: Core, row: Mapping[str, Any], at: datetime) -> list[Decision]:
    """Tell the core about one action row a command changed; the decisions that follow."""
    if row.get("kind") != "work_order" or row.get("status") not in ("done", "cancelled"):
        return []
    done = row.get("status") == "done" and is_service(row)
    closed = row.get("closed_at")
    when = datetime.fromisoformat(closed) if isinstance(closed, str) else at
    log.info("work_order_closed", machine=row.get("subject"), service=done, id=row.get("id"))
    return core.work_order_closed(
        str(row.get("site")), str(row.get("subject")), str(row.get("dedup_key")), done, when
    )


def sync_work_orders(
    core: Core, store: Store, closed_since: datetime | None, now: datetime
) -> list[Decision]:
    """Learn the store's open work orders and the services closed since `closed_since` (e.g.
    by `factory-agent done` from another process); return the decisions that follow."""
    rows = store.work_orders(closed_since)
    open_rows = [r for r in rows if r.get("status") in ("open", "acknowledged")]
    core.seed_work_orders(
        (str(r["site"]), str(r["subject"]), str(r["dedup_key"])) for r in open_rows
    )
    decisions: list[Decision] = []
    for row in rows:
        if row.get("status") == "done" and is_service(row):
            decisions.extend(work_order_closed(core, row, now))
    return decisions
