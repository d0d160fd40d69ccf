"""Notification logic without servers: route filters, quiet hours, message text, back-off,
commands, channel URLs and the [notify] settings."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.app import commands
from agent.config import NotifySettings, RouteSettings, load_settings
from agent.errors import ConfigError, TransitionError
from agent.notify.channels import expand, with_id_header
from agent.notify.message import limits, render, render_group
from agent.notify.routes import Subject, matches, quiet_until, subject_of

ALERT: dict[str, Any] = {
    "id": 12,
    "severity": "critical",
    "status": "firing",
    "message": "press-01 at 91.5 °C",
    "site": "plant1",
    "subject": "press-01",
    "rule_id": "overheating",
    "matched": {"m": {"machine": "press-01", "temp_c": 91.5, "max_temp_c": 80, "tags": ["hyd"]}},
    "first_seen": "2026-03-02T10:00:00+00:00",
    "count": 3,
}
REORDER: dict[str, Any] = {
    "id": 7,
    "kind": "reorder",
    "status": "open",
    "site": "plant1",
    "subject": "BRG-6204",
    "rule_id": "reorder-point",
    "params": {"sku": "BRG-6204", "quantity": 300, "unit": "pcs", "supplier": "SKF", "cost": 12},
    "matched": {"stock": {"sku": "BRG-6204", "on_hand": 12, "projected": 12, "reorder_point": 40}},
}


def route(**options: Any) -> RouteSettings:
    return RouteSettings(name="r", channels=["c"], **options)


def test_an_alert_row_as_route_filters_see_it() -> None:
    assert subject_of("alert", ALERT) == Subject(
        "alert", "critical", "plant1", "overheating", frozenset({"hyd"})
    )
    assert subject_of("action", REORDER).kind == "reorder"
    assert subject_of("action", REORDER).severity is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, True),
        ({"severity": ["critical"]}, True),
        ({"severity": ["warning", "info"]}, False),
        ({"kind": ["alert", "work_order"]}, True),
        ({"kind": ["reorder"]}, False),
        ({"site": ["plant2"]}, False),
        ({"rule": ["overheating"], "site": ["plant1"]}, True),
        ({"rule": ["bearing-wear"]}, False),
        ({"tags": ["hyd", "cnc"]}, True),
        ({"tags": ["cnc"]}, False),
    ],
)
def test_every_non_empty_filter_of_a_route_must_hold(
    options: dict[str, Any], expected: bool
) -> None:
    assert matches(route(**options), subject_of("alert", ALERT)) is expected


def test_actions_have_no_severity_so_a_severity_filter_passes_none() -> None:
    assert not matches(route(severity=["info"]), subject_of("action", REORDER))
    assert matches(route(kind=["reorder"]), subject_of("action", REORDER))


@pytest.mark.parametrize(
    ("now", "spec", "zone", "until"),
    [
        ("2026-03-02T23:30", "22:00-06:00", "UTC", "2026-03-03T06:00"),
        ("2026-03-03T05:59", "22:00-06:00", "UTC", "2026-03-03T06:00"),
        ("2026-03-03T06:00", "22:00-06:00", "UTC", None),
        ("2026-03-02T21:59", "22:00-06:00", "UTC", None),
        ("2026-03-02T12:30", "12:00-13:00", "UTC", "2026-03-02T13:00"),
        ("2026-03-02T13:30", "12:00-13:00", "UTC", None),
        # 21:30 UTC is 22:30 in Berlin (CET): quiet until 06:00 CET, which is 05:00 UTC.
        ("2026-03-02T21:30", "22:00-06:00", "Europe/Berlin", "2026-03-03T05:00"),
    ],
)
def test_quiet_hours_hold_until_their_end_in_the_route_timezone(
    now: str, spec: str, zone: str, until: str | None
) -> None:
    at = datetime.fromisoformat(now).replace(tzinfo=UTC)
    expected = None if until is None else datetime.fromisoformat(until).replace(tzinfo=UTC)
    assert quiet_until(route(quiet_hours=spec, timezone=zone), at) == expected


def test_an_alert_message_names_machine_value_limit_rule_and_how_to_acknowledge() -> None:
    title, body = render("alert", ALERT, "firing", "factory")
    assert title == "[CRITICAL] press-01: press-01 at 91.5 °C"
    assert body.splitlines() == [
        "press-01 at plant1: press-01 at 91.5 °C",
        "temp_c 91.5 > max_temp_c 80",
        "Rule overheating · alert #12 · since 2026-03-02 10:00 UTC, seen 3×",
        "Ack: factory-agent ack alert 12 --by NAME",
        'or MQTT factory/plant1/agent/command {"command": "ack", "type": "alert", "id": 12, '
        '"by": "NAME"}',
    ]
    assert all(len(line) <= 100 for line in body.splitlines()[:-1])


def test_resolved_and_repeated_alerts_say_so() -> None:
    resolved = {**ALERT, "status": "resolved", "resolved_by": "ann", "note": "fan replaced"}
    title, body = render("alert", resolved, "resolved", "factory")
    assert title.startswith("[RESOLVED] press-01")
    assert body.splitlines()[-1] == "Resolved by ann: fan replaced"
    assert render("alert", ALERT, "repeat", "factory")[0].endswith("(again)")


def test_a_reorder_message_names_sku_quantity_stock_and_how_to_close() -> None:
    title, body = render("action", REORDER, "opened", "factory")
    assert title == "[REORDER] BRG-6204: order 300 pcs"
    assert "priority" not in body and "supplier SKF, cost 12" in body
    assert "on_hand 12, projected 12, reorder_point 40" in body
    assert "Done: factory-agent done action 7 --by NAME" in body


def test_limits_prefer_crossed_ones_and_averages() -> None:
    matched = {
        "m": {
            "temp_c": 60,
            "max_temp_c": 80,
            "vibration_mm_s_avg": 9.5,
            "vibration_mm_s": 3.0,
            "max_vibration_mm_s": 7.1,
        }
    }
    assert limits(matched) == ["vibration_mm_s_avg 9.5 > max_vibration_mm_s 7.1"]
    assert limits({"m": {"temp_c": 60, "max_temp_c": 80}}) == ["temp_c 60 vs max_temp_c 80"]


def test_a_group_lists_every_title_first() -> None:
    title, body = render_group([("[WARNING] a: x", "a body"), ("[CRITICAL] b: y", "b body")], "ops")
    assert title == "2 notifications (ops)"
    assert body.startswith("- [WARNING] a: x\n- [CRITICAL] b: y\n\n")


def test_backoff_doubles_with_jitter_in_the_upper_half_up_to_the_maximum() -> None:
    from agent.notify.outbox import Outbox
    from agent.notify.sender import Sender

    settings = NotifySettings(retry_min_s=10, retry_max_s=60)
    sender = Sender(None, Outbox(settings, "factory", None), rng=random.Random(1))  # type: ignore[arg-type]
    for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60), (5000, 60)]:
        waits = [sender.backoff(attempts) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling
        assert max(waits) - min(waits) > ceiling / 4  # jitter: not in step


def test_commands_default_their_target_and_refuse_the_wrong_one() -> None:
    assert commands.command("ack", 3, "ann").target == "alert"
    assert commands.command("ack", 3, "ann", target="action").target == "action"
    assert commands.command("cancel", 3, "ann").target == "action"
    with pytest.raises(TransitionError, match="resolve applies to alert, not to action 3"):
        commands.command("resolve", 3, "ann", target="action")
    with pytest.raises(TransitionError, match="unknown command 'close'"):
        commands.command("close", 3, "ann")


def test_channel_urls_read_secrets_from_the_environment_and_webhooks_get_an_id() -> None:
    url = "json://hooks.example.com/x?+X-Token=${TOKEN}"
    assert expand(url, {"TOKEN": "s3/cret"}) == "json://hooks.example.com/x?+X-Token=s3%2Fcret"
    with pytest.raises(KeyError):
        expand(url, {})
    assert with_id_header("json://h/x", "r/c/alert/1/firing") == (
        "json://h/x?+X-Factory-Agent-Notification=r%2Fc%2Falert%2F1%2Ffiring"
    )
    assert with_id_header("mailto://h?to=a@b", "k") == "mailto://h?to=a@b"


def test_notify_settings_refuse_unknown_channels_bad_quiet_hours_and_cron(tmp_path: Path) -> None:
    def problem(toml: str) -> str:
        path = tmp_path / "agent.toml"
        path.write_text(toml, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings(path, {})
        return str(caught.value)

    assert "unknown channel 'sms'" in problem(
        '[notify]\nchannels = {mail = "mailto://x"}\n'
        '[[notify.routes]]\nname = "a"\nchannels = ["sms"]\n'
    )
    assert "HH:MM-HH:MM" in problem(
        '[notify]\nchannels = {m = "mailto://x"}\n'
        '[[notify.routes]]\nname = "a"\nchannels = ["m"]\nquiet_hours = "10pm-6am"\n'
    )
    assert "crontab" in problem(
        '[notify]\nchannels = {m = "mailto://x"}\n'
        '[[notify.routes]]\nname = "a"\nchannels = ["m"]\ndigest_cron = "daily"\n'
    )
    assert "unknown time zone" in problem(
        '[notify]\nchannels = {m = "mailto://x"}\n'
        '[[notify.routes]]\nname = "a"\nchannels = ["m"]\ntimezone = "Mars/Base"\n'
    )


def test_channels_routes_and_allowed_names_can_come_from_the_environment() -> None:
    settings = load_settings(
        None,
        {
            "AGENT_NOTIFY__CHANNELS": '{"ops": "mailto://${SMTP}"}',
            "AGENT_NOTIFY__ROUTES": '[{"name": "all", "channels": ["ops"]}]',
            "AGENT_COMMANDS__ALLOWED_BY": "ann, bob",
        },
    )
    assert settings.notify.channels == {"ops": "mailto://${SMTP}"}
    assert [r.name for r in settings.notify.routes] == ["all"]
    assert settings.commands.allowed_by == ["ann", "bob"]
