"""Episodes from late data (issue 20): a gateway's backfill can hold an alert that fired and
resolved an hour ago. By default nobody is paged for what is over: one summary message per
batch instead; an episode still open at the end is told (after a short hold); a route with
`late_episodes = "page"` is told everything as live. Real database and webhook receiver."""

from __future__ import annotations

from datetime import timedelta

from agent.model import AlertDecision, AlertResolved, Decision, Outcome
from agent.store.repository import Store
from tests.integration.test_notify import Rig, store, webhook  # noqa: F401  (fixtures)
from tests.support.notify_servers import WebhookSink


def alert(rig: Rig, machine: str, ago: timedelta) -> AlertDecision:
    return AlertDecision(
        dedup_key=f"hot/plant1/{machine}",
        severity="warning",
        message=f"{machine} at 85.0 °C on average",
        site="plant1",
        subject=machine,
        rule_id="overheating",
        rule_set_hash="abc",
        matched={"m": {"machine": machine, "temp_c_avg": 85.0}},
        at=rig.clock.now() - ago,
    )


def resolved(rig: Rig, machine: str, ago: timedelta) -> AlertResolved:
    at = rig.clock.now() - ago
    return AlertResolved(f"hot/plant1/{machine}", at, "overheating", "abc", "resolve_when")


def apply(rig: Rig, *decisions: Decision) -> None:
    rig.store.apply(Outcome(list(decisions)), rig.outbox.on_changes)


def titles(sink: WebhookSink) -> list[str]:
    return [r["body"]["title"] for r in sink.requests]


HOUR = timedelta(hours=1)


def test_an_episode_over_inside_a_backfill_is_one_summary_line_not_a_page(
    store: Store,  # noqa: F811
    webhook: WebhookSink,  # noqa: F811
) -> None:
    rig = Rig(store, {"chat": webhook.url()})
    apply(rig, alert(rig, "cnc-02", HOUR), alert(rig, "press-01", HOUR))
    assert rig.later(0) == 0  # late firings are held
    apply(rig, resolved(rig, "cnc-02", HOUR - timedelta(minutes=15)))
    apply(rig, resolved(rig, "press-01", HOUR - timedelta(minutes=12)))
    rig.later(60)
    webhook.received.wait_for(2, timeout=5)
    assert rig.later(3600) == 0
    # One summary per batch the backfill came in (here two), no firing, no resolved message.
    assert [t.split(" from")[0] for t in titles(webhook)] == ["1 episode", "1 episode"]
    body = webhook.requests[0]["body"]["message"]
    assert "cnc-02" in body and "09:00-09:15 UTC" in body
    assert {r["status"] for r in rig.rows() if r["event"] == "firing"} == {"skipped"}


def test_a_late_alert_still_firing_after_the_backfill_is_told_after_the_hold(
    store: Store,  # noqa: F811
    webhook: WebhookSink,  # noqa: F811
) -> None:
    rig = Rig(store, {"chat": webhook.url()})
    apply(rig, alert(rig, "cnc-02", HOUR))
    assert rig.later(10) == 0
    assert rig.later(25) == 1  # the hold (30 s) is over: it still fires, so it is told
    (request,) = webhook.received.wait_for(1, timeout=5)
    assert "cnc-02" in request["body"]["title"]


def test_a_route_that_pages_late_episodes_tells_each_firing_and_resolution(
    store: Store,  # noqa: F811
    webhook: WebhookSink,  # noqa: F811
) -> None:
    rig = Rig(store, {"chat": webhook.url()}, late_episodes="page")
    apply(rig, alert(rig, "cnc-02", HOUR))
    assert rig.later(0) == 1
    apply(rig, resolved(rig, "cnc-02", HOUR - timedelta(minutes=15)))
    assert rig.later(0) == 1
    assert len(webhook.received.wait_for(2, timeout=5)) == 2


def test_a_live_alert_that_a_backfill_ends_is_resolved_as_usual(
    store: Store,  # noqa: F811
    webhook: WebhookSink,  # noqa: F811
) -> None:
    rig = Rig(store, {"chat": webhook.url()})
    apply(rig, alert(rig, "cnc-02", timedelta(seconds=5)))  # live: told at once
    assert rig.later(0) == 1
    rig.clock.advance(2 * HOUR)
    apply(rig, resolved(rig, "cnc-02", timedelta(0)))  # the first buffered reading arrived
    assert rig.later(0) == 1
    assert len(webhook.received.wait_for(2, timeout=5)) == 2
    assert "RESOLVED" in titles(webhook)[1].upper()
