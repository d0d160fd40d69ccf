"""The console without a socket: the alert order and filters, who may post what, the links in
notifications (pure parts; the live agent is in tests/integration/test_console*.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.config import HttpSettings, HttpUser
from agent.errors import TransitionError
from agent.http.web import views
from agent.http.web.app import Request, Response, safe_back
from agent.http.web.auth import COOKIE, hash_password
from agent.http.web.routes import Console
from agent.notify.message import render

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def alert(id: int, severity: str, status: str = "firing", minute: int = 0, **extra: Any) -> dict:
    row = {
        "id": id,
        "severity": severity,
        "status": status,
        "site": "plant1",
        "subject": "press-01",
        "rule_id": "machine-down",
        "message": f"alert {id}",
        "count": 1,
        "first_seen": T0.replace(minute=minute),
        "last_seen": T0.replace(minute=minute),
        "matched": {"m": {"kind": "machine", "machine": "press-01"}},
    }
    return {**row, **extra}


def test_open_alerts_come_first_by_severity_then_newest() -> None:
    rows = [
        alert(1, "critical", "resolved", minute=50),
        alert(2, "warning", minute=10),
        alert(3, "critical", minute=5),
        alert(4, "critical", "acknowledged", minute=20),
        alert(5, "info", minute=59),
    ]
    shown = views.alerts(rows, views.Filters(status="all"))
    assert [a["id"] for a in shown] == [4, 3, 2, 5, 1]
    assert [a["id"] for a in views.alerts(rows, views.Filters())] == [4, 3, 2, 5]
    assert [a["id"] for a in views.alerts(rows, views.Filters(status="closed"))] == [1]


def test_filters_tell_a_machine_from_an_sku() -> None:
    stock = alert(
        2,
        "warning",
        subject="BRG-6204",
        rule_id="low-stock",
        matched={"s": {"kind": "stock", "sku": "BRG-6204"}},
    )
    rows = [alert(1, "critical"), stock]
    query = {"machine": ["press-01"]}
    assert [a["id"] for a in views.alerts(rows, views.Filters.of(query))] == [1]
    assert [a["id"] for a in views.alerts(rows, views.Filters.of({"sku": ["BRG-6204"]}))] == [2]
    assert views.alerts(rows, views.Filters.of({"sku": ["press-01"]})) == []
    assert [a["id"] for a in views.alerts(rows, views.Filters.of({"rule": ["low-stock"]}))] == [2]
    assert views.alerts(rows, views.Filters.of({"severity": ["info"]})) == []
    assert views.Filters.of({"site": ["p1"], "status": ["open"]}).query() == "site=p1"


def test_an_acknowledged_alert_offers_resolve_only() -> None:
    (view,) = views.alerts([alert(1, "critical", "acknowledged")], views.Filters())
    assert view["commands"] == ["resolve"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/alerts?site=p1", "/alerts?site=p1"),
        ("//evil.example/x", "/alerts"),
        ("https://evil.example", "/alerts"),
        ("/\\evil", "/alerts"),
        (None, "/alerts"),
    ],
)
def test_a_form_goes_back_only_to_a_path_of_this_site(target: str | None, expected: str) -> None:
    assert safe_back(target, "/alerts") == expected


class FakeData:
    def __init__(self) -> None:
        self.applied: list[tuple[str, str, int, str]] = []

    def alerts(self) -> list[dict[str, Any]]:
        return [alert(1, "critical")]

    def actions(self) -> list[dict[str, Any]]:
        return []

    def open_alerts(self, rule_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alerts()
            if a["status"] in ("firing", "acknowledged")
            and (not rule_ids or a["rule_id"] in rule_ids)
        ]

    def rule_alerts(self, rule_ids: Sequence[str]) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["rule_id"] in rule_ids]

    def apply(self, command: str, target: str, id: int, by: str) -> dict[str, Any]:
        if id != 1:
            raise TransitionError(f"{target} {id} does not exist; cannot {command}")
        self.applied.append((command, target, id, by))
        return {"status": "acknowledged"}


def console(users: list[HttpUser]) -> tuple[Console, FakeData]:
    data = FakeData()
    return Console(HttpSettings(pages=True, users=users, session_secret="s"), data), data


def cookie_of(response: Response) -> str:
    value = next(v for k, v in response.headers if k == "Set-Cookie")
    return value.split(";", 1)[0]


def token_of(response: Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', response.body.decode())
    assert found
    return found[1]


def test_without_users_a_post_with_a_good_token_is_still_refused() -> None:
    app, data = console([])
    page = app.handle(Request("GET", "/login"))
    # Read-only pages show no form; take the session's token from the cookie's own session.
    session = app._sessions.read(cookie_of(page).split("=", 1)[1])
    assert session is not None
    answer = app.handle(
        Request(
            "POST", "/alerts/1/ack", form={"csrf": [session.csrf]}, cookie_header=cookie_of(page)
        )
    )
    assert answer.status == 403 and b"no users" in answer.body
    assert data.applied == []


def test_an_operator_post_applies_the_command_as_the_logged_in_user() -> None:
    users = [HttpUser(name="olga", role="operator", password_hash=hash_password("pw"))]
    app, data = console(users)
    first = app.handle(Request("GET", "/login"))
    jar = cookie_of(first)
    login = app.handle(
        Request(
            "POST",
            "/login",
            form={"csrf": [token_of(first)], "name": ["olga"], "password": ["pw"]},
            cookie_header=jar,
        )
    )
    assert login.status == 303
    jar = cookie_of(login)
    assert jar.startswith(f"{COOKIE}=")
    page = app.handle(Request("GET", "/alerts", cookie_header=jar))
    token = token_of(page)
    done = app.handle(Request("POST", "/alerts/1/ack", form={"csrf": [token]}, cookie_header=jar))
    assert done.status == 303 and data.applied == [("ack", "alert", 1, "olga")]
    missing = app.handle(
        Request("POST", "/alerts/9/ack", form={"csrf": [token]}, cookie_header=jar)
    )
    assert missing.status == 409
    # The token of the page before login does not work after it.
    stale = app.handle(
        Request("POST", "/alerts/1/ack", form={"csrf": [token_of(first)]}, cookie_header=jar)
    )
    assert stale.status == 403 and len(data.applied) == 1


def test_notifications_link_to_their_row_on_the_console_when_public_url_is_set() -> None:
    row = {**alert(12, "critical"), "first_seen": "2026-12-04T08:00:00+00:00"}
    _, body = render("alert", row, "firing", "factory", "https://agent.plant1.example/")
    assert body.splitlines()[-1] == "Open: https://agent.plant1.example/alerts/12"
    assert "Open:" not in render("alert", row, "firing", "factory")[1]


def test_without_users_only_this_machine_sees_the_pages() -> None:
    app, _ = console([])
    assert app.handle(Request("GET", "/alerts", client="10.0.0.7")).status == 403
    assert app.handle(Request("GET", "/alerts", client="127.0.0.1")).status == 200
    users = [HttpUser(name="olga", role="operator", password_hash=hash_password("pw"))]
    app, _ = console(users)
    assert app.handle(Request("GET", "/alerts", client="10.0.0.7")).status == 200
