"""The outbox and its sender against real receivers (aiosmtpd, an HTTP server) and a real
database, on a simulated clock: what arrives, how often, and when."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from agent.app import commands
from agent.app.clock import SimulatedClock
from agent.config import NotifySettings, RouteSettings
from agent.http.metrics import Metrics
from agent.model import AlertDecision, AlertResolved, Outcome
from agent.notify.digest import DigestSchedule
from agent.notify.outbox import Outbox
from agent.notify.sender import Sender
from agent.store.repository import Store
from agent.store.tables import outbox_table
from tests.support.databases import DATABASES, database_url
from tests.support.notify_servers import SmtpSink, WebhookSink

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url, Store.open(url) as opened:
        yield opened


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()


class Rig:
    """A store, an outbox on a simulated clock and a sender: what the daemon wires together."""

    def __init__(self, store: Store, channels: dict[str, str], **route: Any) -> None:
        route.setdefault("name", "ops")
        route.setdefault("channels", list(channels))
        self.settings = NotifySettings(
            channels=channels,
            routes=[RouteSettings(**route)] if channels else [],
            publish_mqtt=False,
            retry_min_s=10,
            retry_max_s=60,
            max_attempts=4,
        )
        self.store = store
        self.clock = SimulatedClock(START)
        self.outbox = Outbox(self.settings, "factory", self.clock)
        self.metrics = Metrics()
        self.sender = Sender(store.engine, self.outbox, rng=random.Random(6), metrics=self.metrics)

    def fire(self, machine: str, severity: str = "critical", repeat_s: float | None = None) -> int:
        decision = AlertDecision(
            dedup_key=f"hot/plant1/{machine}",
            severity=severity,  # type: ignore[arg-type]
            message=f"{machine} at 91.5 °C",
            site="plant1",
            subject=machine,
            rule_id="machine-overheating",
            rule_set_hash="abc",
            matched={"m": {"machine": machine, "temp_c": 91.5, "max_temp_c": 80}},
            at=self.clock.now(),
            repeat_s=repeat_s,
        )
        (change,) = self.store.apply(Outcome([decision]), self.outbox.on_changes)
        return change.id

    def command(self, name: str, id: int, target: str = "alert") -> None:
        cmd = commands.command(name, id, "ann", "seen", target)
        commands.apply(self.store, cmd, self.clock.now(), self.outbox.on_changes)

    def later(self, seconds: float) -> int:
        """Move the clock on and let the sender make one pass; how many rows it tried."""
        self.clock.advance(timedelta(seconds=seconds))
        return self.sender.run_once()

    def rows(self) -> list[dict[str, Any]]:
        with self.store.engine.connect() as connection:
            found = connection.execute(select(outbox_table).order_by(outbox_table.c.id))
            return [dict(row) for row in found.mappings()]


def test_alert_fired_while_smtp_is_down_arrives_once_when_it_is_back(
    store: Store, smtp: SmtpSink
) -> None:
    rig = Rig(store, {"mail": smtp.url})
    smtp.stop()
    rig.fire("press-01")
    assert rig.later(0) == 1
    (row,) = rig.rows()
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "mail" in row["last_error"]
    assert rig.later(4) == 0  # not due yet: backing off (5-10 s after the first failure)
    smtp.start()
    assert rig.later(10) == 1
    (mail,) = smtp.received.wait_for(1, timeout=5)
    assert rig.later(3600) == 0
    assert len(smtp.messages) == 1
    assert rig.rows()[0]["status"] == "sent"
    assert "[CRITICAL] press-01: press-01 at 91.5 °C" in mail["Subject"]
    body = mail.get_body(preferencelist=("plain", "html")).get_content()
    assert "temp_c 91.5 > max_temp_c 80" in body
    assert "factory-agent ack alert 1 --by NAME" in body
    assert "factory/plant1/agent/command" in body


def test_each_pass_reports_the_outbox_backlog_and_failed_attempts(
    store: Store, webhook: WebhookSink
) -> None:
    rig = Rig(store, {"chat": webhook.url()})
    reg = rig.metrics.registry
    webhook.stop()
    rig.fire("press-01")
    rig.fire("press-02")
    assert rig.later(0) == 2
    assert reg.get_sample_value("factory_agent_outbox_backlog") == 2
    assert reg.get_sample_value("factory_agent_outbox_failures_total") == 2
    webhook.start()
    assert rig.later(120) == 2
    assert reg.get_sample_value("factory_agent_outbox_failures_total") == 2  # both went out
    assert rig.later(0) == 0
    assert reg.get_sample_value("factory_agent_outbox_backlog") == 0


def test_gives_up_after_max_attempts_with_the_reason(store: Store, webhook: WebhookSink) -> None:
    rig = Rig(store, {"chat": webhook.url()})
    webhook.stop()
    rig.fire("press-01")
    for _ in range(4):
        rig.later(120)
    (row,) = rig.rows()
    assert (row["status"], row["attempts"]) == ("failed", 4)
    assert row["last_error"].startswith("channel chat: ")
    webhook.start()
    assert rig.later(3600) == 0
    assert webhook.requests == []


def test_a_repeating_alert_is_re_sent_on_its_interval_until_acknowledged(
    store: Store, webhook: WebhookSink
) -> None:
    rig = Rig(store, {"chat": webhook.url()})
    alert = rig.fire("press-01", repeat_s=300)
    rig.later(0)
    assert rig.later(299) == 0
    assert rig.later(1) == 1  # 300 s after the first message
    assert rig.later(299) == 0
    assert rig.later(1) == 1
    rig.command("ack", alert)
    for _ in range(5):
        rig.later(300)
    titles = [r["body"]["title"] for r in webhook.received.wait_for(3, timeout=5)]
    assert len(webhook.requests) == 3
    assert titles[1].endswith("(again)") and titles[2].endswith("(again)")
    assert [r["event"] for r in rig.rows()] == ["firing", "repeat", "repeat"]


def test_an_acknowledged_alert_is_not_sent_even_if_its_message_still_waited(
    store: Store, webhook: WebhookSink
) -> None:
    rig = Rig(store, {"chat": webhook.url()}, severity=["warning"], quiet_hours="09:00-17:00")
    alert = rig.fire("press-01", severity="warning", repeat_s=60)
    rig.command("ack", alert)
    for _ in range(10):
        rig.later(3600)
    assert webhook.requests == []
    (row,) = rig.rows()
    assert (row["status"], row["last_error"]) == (
        "skipped",
        "alert acknowledged or resolved before",
    )


def test_resolving_sends_a_resolved_notice_once_and_a_new_episode_links_back(
    store: Store, webhook: WebhookSink
) -> None:
    rig = Rig(store, {"chat": webhook.url()})
    first = rig.fire("press-01")
    rig.later(0)
    rig.command("resolve", first)
    rig.later(0)
    second = rig.fire("press-01")
    rig.later(0)
    got = webhook.received.wait_for(3, timeout=5)
    assert [g["body"]["title"].split("]")[0] for g in got] == [
        "[CRITICAL",
        "[RESOLVED",
        "[CRITICAL",
    ]
    assert "Resolved by ann: seen" in got[1]["body"]["message"]
    assert second != first
    assert store.alerts()[0]["previous_id"] == first
    assert f"Fired before as alert #{first}" in got[2]["body"]["message"]


def test_quiet_hours_hold_warnings_but_not_critical_alerts(
    store: Store, webhook: WebhookSink
) -> None:
    rig = Rig(
        store,
        {"chat": webhook.url()},
        quiet_hours="09:00-12:00",
        timezone="Europe/Berlin",  # 10:00 UTC is 11:00 in Berlin: quiet until 12:00, 11:00 UTC
    )
    rig.fire("press-01", severity="warning")
    rig.fire("press-02", severity="critical")
    assert rig.later(0) == 1
    assert rig.later(3599) == 0
    assert rig.later(1) == 1
    got = webhook.received.wait_for(2, timeout=5)
    assert [g["body"]["title"][:19] for g in got] == ["[CRITICAL] press-02", "[WARNING] press-01:"]


def test_alerts_within_the_group_window_go_out_as_one_message(store: Store, smtp: SmtpSink) -> None:
    rig = Rig(store, {"mail": smtp.url}, group_window_s=60)
    rig.fire("press-01")
    rig.later(30)
    rig.fire("press-02")
    rig.later(20)
    rig.fire("press-03")
    assert rig.later(10) == 3  # 60 s after the first
    rig.fire("press-04")  # after the window: the next group
    assert rig.later(59) == 0
    assert rig.later(1) == 1
    (grouped, single) = smtp.received.wait_for(2, timeout=5)
    assert grouped["Subject"] == "3 notifications (ops)"
    assert single["Subject"].startswith("[CRITICAL] press-04")
    assert {r["status"] for r in rig.rows()} == {"sent"}


def test_an_alert_no_route_matches_writes_nothing_to_send(
    store: Store, webhook: WebhookSink
) -> None:
    rig = Rig(
        store, {"chat": webhook.url()}, severity=["critical"], site=["plant2"], kind=["alert"]
    )
    rig.fire("press-01")  # plant1: the route wants plant2
    rig.fire("press-02", severity="warning")
    assert rig.rows() == []


def test_the_digest_lists_open_alerts_and_goes_out_through_the_outbox(
    store: Store, webhook: WebhookSink
) -> None:
    rig = Rig(store, {"chat": webhook.url()}, digest_cron="0 7 * * *", kind=["reorder"])
    rig.fire("press-01")  # an alert: the route takes reorders only, so no message for it
    route = RouteSettings(name="ops", channels=["chat"], digest_cron="0 7 * * *")
    DigestSchedule(store, rig.outbox, lambda: None).send(route)
    assert rig.later(0) == 1
    (digest,) = webhook.received.wait_for(1, timeout=5)
    assert digest["body"]["title"] == "Digest (ops): 1 alerts, 0 actions open"
    assert "#1 critical press-01" in digest["body"]["message"]


def test_digests_are_scheduled_on_each_route_cron_in_its_timezone(store: Store) -> None:
    rig = Rig(
        store, {"chat": "json://127.0.0.1:9/x"}, digest_cron="30 6 * * 1-5", timezone="Asia/Tokyo"
    )
    schedule = DigestSchedule(store, rig.outbox, lambda: None)
    schedule.start()
    try:
        ((name, when),) = schedule.next_runs().items()
    finally:
        schedule.stop()
    assert name == "ops"
    local = when.astimezone(ZoneInfo("Asia/Tokyo"))
    assert (local.hour, local.minute, local.weekday() < 5) == (6, 30, True)


def test_unknown_ids_and_illegal_transitions_are_refused(store: Store) -> None:
    rig = Rig(store, {})
    alert = rig.fire("press-01")
    rig.command("resolve", alert)
    with pytest.raises(commands.TransitionError, match=f"alert {alert} is resolved; cannot ack"):
        rig.command("ack", alert)
    with pytest.raises(commands.TransitionError, match="alert 99 does not exist"):
        rig.command("ack", 99)
    with pytest.raises(commands.TransitionError, match="done applies to action"):
        rig.command("done", alert, target="alert")


def test_webhooks_carry_the_notification_id_for_receivers_to_drop_duplicates(
    store: Store, webhook: WebhookSink
) -> None:
    rig = Rig(store, {"chat": webhook.url() + "?+X-Token=s3cret"})
    rig.fire("press-01")
    rig.later(0)
    (got,) = webhook.received.wait_for(1, timeout=5)
    assert got["headers"]["X-Token"] == "s3cret"
    assert got["headers"]["X-Factory-Agent-Notification"] == "ops/chat/alert/1/firing"


def test_publications_wait_while_mqtt_is_down_without_using_up_attempts(store: Store) -> None:
    rig = Rig(store, {})
    settings = rig.settings.model_copy(update={"publish_mqtt": True})
    rig.outbox = Outbox(settings, "factory", rig.clock)
    broker_up: list[bool] = [False]
    published: list[tuple[str, dict[str, Any]]] = []

    def publish(messages: Sequence[tuple[str, bytes]]) -> list[bool | None]:
        if not broker_up[0]:
            return [None] * len(messages)
        published.extend((topic, json.loads(payload)) for topic, payload in messages)
        return [True] * len(messages)

    rig.sender = Sender(store.engine, rig.outbox, publish=publish)
    alert = rig.fire("press-01")
    for _ in range(20):
        rig.later(60)
    assert [(r["status"], r["attempts"]) for r in rig.rows()] == [("pending", 0)]
    broker_up[0] = True
    rig.command("ack", alert)
    rig.later(0)
    assert [(t, p["status"], p["id"]) for t, p in published] == [
        ("factory/plant1/agent/alerts", "firing", alert),
        ("factory/plant1/agent/alerts", "acknowledged", alert),
    ]
    assert {r["status"] for r in rig.rows()} == {"sent"}


def test_a_storm_that_resolves_asks_the_outbox_a_few_queries_not_one_per_alert(
    store: Store,
) -> None:
    """600 alerts resolved in one batch: a resolved notice for each whose firing was told, none
    for those never told, in a handful of queries (row by row it was 600 + 300)."""
    rig = Rig(store, {"chat": "json://127.0.0.1:9/hook"}, group_window_s=60)
    fired = [rig.fire(f"m-{n:03d}") for n in range(600)]
    untold = fired[1::2]  # e.g. fired before the route was configured
    with store.engine.begin() as connection:
        connection.execute(outbox_table.delete().where(outbox_table.c.ref_id.in_(untold)))
    queries: list[str] = []
    event.listen(
        store.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_a: queries.append(statement),
    )

    resolved = [
        AlertResolved(f"hot/plant1/m-{n:03d}", rig.clock.now(), "machine-overheating", "abc", "ok")
        for n in range(600)
    ]
    store.apply(Outcome(resolved), rig.outbox.on_changes)

    notices = [r for r in rig.rows() if r["event"] == "resolved"]
    assert sorted(r["ref_id"] for r in notices) == sorted(fired[0::2])
    outbox_reads = [q for q in queries if q.lstrip().upper().startswith("SELECT") and "outbox" in q]
    assert len(outbox_reads) <= 6
