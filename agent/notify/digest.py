"""The daily digest: open alerts and actions and the spend on open reorders, per route, on a cron.

`summary` is pure (rows in, text out); `DigestSchedule` runs it with APScheduler 3.x.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy.exc import SQLAlchemyError

from agent.config import RouteSettings
from agent.errors import StoreError
from agent.notify.outbox import Outbox
from agent.notify.routes import matches, subject_of
from agent.rulebook.timing import Cron, parse_cron
from agent.store.repository import Store

log = structlog.get_logger(__name__)

SHOWN = 10


def summary(
    route: RouteSettings,
    alerts: Sequence[Mapping[str, Any]],
    actions: Sequence[Mapping[str, Any]],
) -> tuple[str, str]:
    """(title, body) for the open alerts and actions the route's filters let through."""
    alerts = [a for a in alerts if matches(route, subject_of("alert", a))]
    actions = [a for a in actions if matches(route, subject_of("action", a))]
    severities = Counter(str(a["severity"]) for a in alerts)
    kinds = Counter(str(a["kind"]) for a in actions)
    spend = sum(
        float(a["params"]["cost"])
        for a in actions
        if a["kind"] == "reorder" and isinstance((a.get("params") or {}).get("cost"), int | float)
    )
    down = sorted({str(a["subject"]) for a in actions if a["kind"] == "work_order"})
    title = f"Digest ({route.name}): {len(alerts)} alerts, {len(actions)} actions open"
    lines = [f"Alerts open: {len(alerts)} " + _counts(severities)]
    lines += [
        f"- #{a['id']} {a['severity']} {a['subject']}: {a['message']}" for a in alerts[:SHOWN]
    ]
    lines.append(f"Actions open: {len(actions)} " + _counts(kinds))
    lines += [f"- #{a['id']} {a['kind']} {a['subject']}" for a in actions[:SHOWN]]
    lines.append(f"Spend on open reorders: {spend:.2f}")
    if down:
        lines.append("Machines with open work orders: " + ", ".join(down))
    return title, "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return "(" + ", ".join(f"{k} {n}" for k, n in sorted(counter.items())) + ")" if counter else ""


class CronSchedule(BaseTrigger):  # type: ignore[misc]
    """An APScheduler 3 trigger that fires on a `Cron` (so with its DST rules), for jobs such as
    the route digests."""

    def __init__(self, cron: Cron) -> None:
        self.cron = cron

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            return self.cron.next_after(previous_fire_time)
        return self.cron.next_at(now)

    def __str__(self) -> str:
        return f"cron[{self.cron.text!r}, {self.cron.zone or 'UTC'}]"


class DigestSchedule:
    """One cron job per route with `digest_cron`; each writes the digest into the outbox."""

    def __init__(self, store: Store, outbox: Outbox, wake: Callable[[], None]) -> None:
        self.store = store
        self.outbox = outbox
        self.wake = wake
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        routes = [route for route in self.outbox.settings.routes if route.digest_cron]
        if not routes:
            return
        scheduler = BackgroundScheduler(timezone="UTC")
        for route in routes:
            assert route.digest_cron is not None
            trigger = CronSchedule(parse_cron(route.digest_cron, route.timezone))
            scheduler.add_job(self.send, trigger, args=[route], id=f"digest-{route.name}")
        scheduler.start()
        self._scheduler = scheduler
        log.info("digest_scheduled", routes=[route.name for route in routes])

    def next_runs(self) -> dict[str, datetime]:
        """When each route's next digest is due (empty when not started)."""
        if self._scheduler is None:
            return {}
        return {
            job.id.removeprefix("digest-"): job.next_run_time for job in self._scheduler.get_jobs()
        }

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def send(self, route: RouteSettings) -> None:
        """Write one digest for `route` into the outbox (the sender delivers it)."""
        try:
            alerts = self.store.alerts("firing") + self.store.alerts("acknowledged")
            actions = self.store.actions("open") + self.store.actions("acknowledged")
            title, body = summary(route, alerts, actions)
            with self.store.engine.begin() as connection:
                self.outbox.digest(connection, route, title, body)
        except (StoreError, SQLAlchemyError) as exc:
            log.error("digest_failed", route=route.name, error=str(exc).splitlines()[0])
            return
        log.info("digest_written", route=route.name, alerts=len(alerts), actions=len(actions))
        self.wake()
