"""The outbox's policy without a database: which changes are news, where they go, and when."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.config import NotifySettings, RouteSettings
from agent.model import NotifyDecision, PublishDecision
from agent.notify.policy import Changed, Policy, Row, Told, told_from

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC


class Ledger:
    """The queue's answers as plain sets, and the questions asked."""

    def __init__(self, keys: Iterable[str] = (), sent: Iterable[tuple[int, str, str]] = ()) -> None:
        self.keys = set(keys)
        self.sent = set(sent)
        self.told: set[tuple[int, str, str]] = set(sent)
        self.groups: dict[tuple[str, str], datetime] = {}
        self.asked_keys: list[list[str]] = []

    def existing_keys(self, keys: list[str]) -> set[str]:
        self.asked_keys.append(keys)
        return self.keys & set(keys)

    def was_sent(self, alert_id: int, route: str, channel: str) -> bool:
        return (alert_id, route, channel) in self.sent

    def was_told(self, alert_id: int, route: str, channel: str) -> bool:
        return (alert_id, route, channel) in self.told

    def open_group(
        self, route: str, channel: str, now: datetime, window: timedelta
    ) -> datetime | None:
        at = self.groups.get((route, channel))
        return at if at is not None and now < at <= now + window else None


def policy(publish_mqtt: bool = False, **route: Any) -> Policy:
    route.setdefault("name", "ops")
    route.setdefault("channels", ["mail"])
    channels = {name: f"json://{name}.invalid" for name in route["channels"]}
    settings = NotifySettings(
        channels=channels, routes=[RouteSettings(**route)], publish_mqtt=publish_mqtt
    )
    return Policy(settings, "factory")


def alert(status: str = "firing", id: int = 12, first_seen: datetime = NOW, **more: Any) -> Changed:
    row = {
        "id": id,
        "severity": "critical",
        "status": status,
        "message": "press-01 at 91.5 °C",
        "site": "plant1",
        "subject": "press-01",
        "rule_id": "overheating",
        "matched": {},
        "first_seen": first_seen.isoformat(),
        "count": 1,
        **more,
    }
    return Changed("alert", id, status == "firing", row)


def keys(rows: list[Row]) -> list[str]:
    return [row["dedup_key"] for row in rows]


def test_a_firing_alert_is_told_once_per_channel_then_its_repeats_are_not_news() -> None:
    rules = policy(channels=["mail", "chat"])
    rows = rules.on_changes(Ledger(), [alert()], NOW)
    assert keys(rows) == ["ops/mail/alert/12/firing", "ops/chat/alert/12/firing"]
    assert rows[0]["title"].startswith("[CRITICAL] press-01")
    assert rows[0]["not_before"] == NOW and rows[0]["status"] == "pending"
    known = Ledger(keys=set(keys(rows)))
    assert rules.on_changes(known, [alert(count=2)], NOW) == []
    assert known.asked_keys == [keys(rows)]  # one question for the whole batch


def test_a_resolution_goes_only_where_the_firing_was_told_and_resolutions_are_wanted() -> None:
    resolved = alert("resolved", resolved_at=NOW.isoformat())
    told = Ledger(sent={(12, "ops", "mail")})
    assert keys(policy().on_changes(told, [resolved], NOW)) == ["ops/mail/alert/12/resolved"]
    assert policy().on_changes(Ledger(), [resolved], NOW) == []  # never told: nothing to undo
    assert policy(send_resolved=False).on_changes(told, [resolved], NOW) == []


def test_an_action_is_news_when_it_opens_not_when_it_is_updated() -> None:
    row = {"id": 7, "kind": "reorder", "status": "open", "site": "plant1", "subject": "BRG"}
    row |= {"rule_id": "reorder-point", "params": {}, "matched": {}}
    rules = policy()
    assert keys(rules.on_changes(Ledger(), [Changed("action", 7, True, row)], NOW)) == [
        "ops/mail/action/7/opened"
    ]
    assert rules.on_changes(Ledger(), [Changed("action", 7, False, row)], NOW) == []


def test_mqtt_publishes_each_status_a_row_reaches() -> None:
    rows = policy(publish_mqtt=True).on_changes(Ledger(), [alert()], NOW)
    assert keys(rows) == ["mqtt/alert/12/firing", "ops/mail/alert/12/firing"]
    assert rows[0]["topic"] == "factory/plant1/agent/alerts"


def test_a_late_firing_is_held_and_a_late_episode_becomes_one_summary_line() -> None:
    rules = policy()
    old = NOW - timedelta(hours=2)
    (held,) = rules.on_changes(Ledger(), [alert(first_seen=old)], NOW)
    assert held["not_before"] == NOW + timedelta(seconds=rules.settings.late_hold_s)
    over = [alert("resolved", id=id, first_seen=old, resolved_at=old.isoformat()) for id in (3, 5)]
    (summary,) = rules.on_changes(Ledger(), over, NOW)
    assert summary["event"] == "late" and summary["dedup_key"] == "ops/mail/late/3-5/2"
    assert summary["title"].startswith("2 episodes from late data")
    assert "#3 critical press-01" in summary["body"]
    # Paged routes tell late episodes as live ones; a firing already sent is resolved as usual.
    assert policy(late_episodes="page").on_changes(Ledger(), over, NOW) == []
    sent = Ledger(sent={(3, "ops", "mail")})
    assert keys(rules.on_changes(sent, over[:1], NOW)) == ["ops/mail/alert/3/resolved"]


def test_quiet_hours_delay_all_but_critical_and_a_group_window_gathers_rows() -> None:
    quiet = policy(quiet_hours="09:00-12:00")
    (critical,) = quiet.on_changes(Ledger(), [alert()], NOW)
    (warning,) = quiet.on_changes(Ledger(), [alert(severity="warning")], NOW)
    assert critical["not_before"] == NOW
    assert warning["not_before"] == NOW.replace(hour=12)
    grouped = policy(group_window_s=60)
    (first,) = grouped.on_changes(Ledger(), [alert()], NOW)
    assert first["not_before"] == NOW + timedelta(seconds=60)
    waiting = Ledger()
    waiting.groups[("ops", "mail")] = NOW + timedelta(seconds=20)
    (second,) = grouped.on_changes(waiting, [alert(id=13)], NOW)
    assert second["not_before"] == NOW + timedelta(seconds=20)


def test_repeats_are_due_after_repeat_s_unless_a_message_still_waits() -> None:
    told = told_from(
        [
            (12, "ops", "mail", "sent", NOW - timedelta(hours=2)),
            (12, "ops", "mail", "sent", NOW - timedelta(minutes=50)),
            (13, "ops", "mail", "pending", NOW - timedelta(hours=2)),
            (14, "ops", "mail", "sent", NOW - timedelta(minutes=10)),
        ]
    )
    assert told[(12, "ops", "mail")] == Told(NOW - timedelta(minutes=50), False, 2)
    alerts = [dict(alert(id=id).row, repeat_s=1800.0) for id in (12, 13, 14)]
    (repeat,) = policy().repeats(Ledger(), told, alerts, NOW)
    assert repeat["dedup_key"] == "ops/mail/alert/12/repeat/2"
    assert repeat["title"].endswith("(again)")


def test_rule_actions_publish_and_notify_their_route_and_an_unknown_route_is_dropped() -> None:
    publish = PublishDecision("factory/x", {"a": 1}, False, "r1", "h", NOW)
    notify = NotifyDecision(
        "ops", "warning", "oil low", "k", "plant1", "press-01", "r2", "h", {}, NOW
    )
    lost = NotifyDecision(
        "nobody", "warning", "oil low", "k", "plant1", "press-01", "r2", "h", {}, NOW
    )
    rows = policy(channels=["mail", "chat"]).on_decisions(Ledger(), [publish, notify, lost], NOW)
    assert [(row["channel"], row["event"]) for row in rows] == [
        ("mqtt", "publish"),
        ("mail", "notify"),
        ("chat", "notify"),
    ]
    assert rows[0]["body"] == '{"a": 1}'
    assert rows[1]["title"] == "[warning] press-01: r2"


def test_a_digest_is_one_row_per_channel_and_minute() -> None:
    rules = policy(channels=["mail", "chat"])
    rows = rules.digest(rules.routes["ops"], "Digest", "all quiet", NOW)
    assert keys(rows) == ["ops/mail/digest/2026-03-02T10:00", "ops/chat/digest/2026-03-02T10:00"]
