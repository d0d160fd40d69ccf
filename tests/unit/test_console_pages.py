"""The console's decision detail, dead letters, rules, supplier totals, MTBF/MTTR, receipt
markers and the trusted proxy header, without a socket (the live agent is in
tests/integration/test_console.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.app.deadletters import Resent
from agent.config import HttpSettings, HttpUser
from agent.http.web import plant, views
from agent.http.web.app import Request, Response
from agent.http.web.auth import hash_password
from agent.http.web.charts import Limit, Marker, Point, line_chart
from agent.http.web.routes import Console
from agent.http.web.rules import RulesState, problem
from agent.model import Fact
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources
from agent.rulebook.rules import Rule, RuleSet
from agent.world.history import Reading

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
RULES = """rules:
  - id: machine-down
    description: A machine reports itself down.
    when:
      m: kind == "machine" and state == "down"
    resolve_when: m.state == "running"
    then:
      - alert:
          severity: critical
          message: "{m.machine} is down (fault {m.fault})"
"""
RULESET = parse_rule_sources([("rules/maintenance.yaml", RULES)], build_schema())


def down(id: int, start_h: float, end_h: float | None, **extra: Any) -> dict[str, Any]:
    """A machine-down alert episode of press-01 from T0+start_h to T0+end_h (None: open)."""
    first = T0 + timedelta(hours=start_h)
    row = {
        "id": id,
        "dedup_key": "machine-down/plant1/press-01",
        "severity": "critical",
        "status": "resolved" if end_h is not None else "firing",
        "site": "plant1",
        "subject": "press-01",
        "rule_id": "machine-down",
        "rule_set_hash": RULESET.hash,
        "message": "press-01 is down (fault E17)",
        "count": 1,
        "first_seen": first,
        "last_seen": first,
        "resolved_at": T0 + timedelta(hours=end_h) if end_h is not None else None,
        "resolved_by": "olga" if end_h is not None else None,
        "matched": {"m": {"kind": "machine", "machine": "press-01", "state": "down",
                          "fault": "E17", "temp_c": 71.5}},
    }  # fmt: skip
    return {**row, **extra}


def reorder(id: int, supplier: str, quantity: float, cost: Any, status: str = "open") -> dict:
    return {
        "id": id,
        "kind": "reorder",
        "status": status,
        "site": "plant1",
        "subject": f"SKU-{id}",
        "rule_id": "reorder-point",
        "params": {"supplier": supplier, "quantity": quantity, "cost": cost},
        "count": 1,
        "created_at": T0,
        "updated_at": T0,
    }


class Data:
    """The console's data source with stored rows in memory."""

    def __init__(self) -> None:
        self.alert_rows = [down(3, 10, None), down(2, 5, 6), down(1, 0, 2)]
        self.action_rows: list[dict[str, Any]] = []
        self.letters: list[dict[str, Any]] = []
        self.receipt_rows: list[dict[str, Any]] = []
        self.reprocessed: list[list[int]] = []
        self.state = RulesState(RULESET, last_reload=(T0, "SIGHUP"))

    def alerts(self) -> list[dict[str, Any]]:
        return self.alert_rows

    def actions(self) -> list[dict[str, Any]]:
        return self.action_rows

    def open_alerts(self, rule_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alert_rows
            if a["status"] in ("firing", "acknowledged")
            and (not rule_ids or a["rule_id"] in rule_ids)
        ]

    def rule_alerts(self, rule_ids: Sequence[str]) -> list[dict[str, Any]]:
        return [a for a in self.alert_rows if a["rule_id"] in rule_ids]

    def apply(self, command: str, target: str, id: int, by: str) -> dict[str, Any]:
        raise AssertionError("no commands here")

    def facts(self) -> list[Fact]:
        return []

    def readings(self, kind: str, site: str, subject: str, since: datetime) -> list[Reading]:
        return []

    def find(self, table: str, id: int) -> dict[str, Any] | None:
        rows = self.alert_rows if table == "alert" else self.action_rows
        return next((r for r in rows if r["id"] == id), None)

    def rule(self, rule_id: str) -> Rule | None:
        return self.state.ruleset.by_id().get(rule_id)

    def rules(self) -> RulesState:
        return self.state

    def receipts(self) -> list[dict[str, Any]]:
        return self.receipt_rows

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.letters

    def reprocess(self, ids: list[int]) -> list[Resent]:
        self.reprocessed.append(ids)
        return [Resent(id, "t", 1, True) for id in ids]


USERS = [
    HttpUser(name="olga", role="operator", password_hash=hash_password("pw")),
    HttpUser(name="victor", role="viewer", password_hash=hash_password("pw")),
]


def app(**settings: Any) -> tuple[Console, Data]:
    data = Data()
    options = {"pages": True, "users": USERS, "session_secret": "s", **settings}
    return Console(HttpSettings(**options), data), data


def text(response: Response) -> str:
    return response.body.decode()


def logged_in(console: Console, name: str) -> tuple[str, str]:
    """(cookie, csrf token) of a session logged in as `name`."""
    first = console.handle(Request("GET", "/login"))
    jar = _cookie(first)
    form = {"csrf": [_token(first)], "name": [name], "password": ["pw"]}
    login = console.handle(Request("POST", "/login", form=form, cookie_header=jar))
    assert login.status == 303
    jar = _cookie(login)
    return jar, _token(console.handle(Request("GET", "/alerts", cookie_header=jar)))


def _cookie(response: Response) -> str:
    return next(v for k, v in response.headers if k == "Set-Cookie").split(";", 1)[0]


def _token(response: Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text(response))
    assert found
    return found[1]


def test_an_alerts_page_shows_what_explain_prints_and_its_episodes() -> None:
    console, _ = app()
    page = console.handle(Request("GET", "/alerts/2"))
    body = text(page)
    assert page.status == 200
    assert f'<code id="rule-set">{RULESET.hash}</code>' in body
    assert '<code id="rule-where">rules/maintenance.yaml:2</code>' in body
    assert "kind == &#34;machine&#34; and state == &#34;down&#34;" in body
    assert "resolve when <code>m.state == &#34;running&#34;</code>" in body
    # The fields the rule reads come first, in bold; the others after them.
    assert body.index("<strong>state</strong>") < body.index('<td data-label="field">temp_c')
    assert "press-01 is down (fault E17)" in body
    episodes = re.findall(r'<tr id="episode-(\d+)" class="st-(\w+)( here)?"', body)
    assert episodes == [("3", "firing", ""), ("2", "resolved", " here"), ("1", "resolved", "")]
    assert console.handle(Request("GET", "/alerts/99")).status == 404


def test_the_alert_and_action_rows_link_to_their_detail() -> None:
    console, data = app()
    data.action_rows = [reorder(7, "Acme", 10, 5.0)]
    assert 'href="/alerts/3"' in text(console.handle(Request("GET", "/alerts")))
    assert 'href="/actions/7"' in text(console.handle(Request("GET", "/actions")))
    detail = console.handle(Request("GET", "/actions/7"))
    assert detail.status == 200 and "supplier Acme" in text(detail)


def test_supplier_totals_add_up_open_reorders_only() -> None:
    rows = [
        reorder(1, "Acme", 10, 25.5),
        reorder(2, "Acme", 5, None),
        reorder(3, "Beta", 100, 300),
        reorder(4, "Acme", 1000, 9999, status="done"),
    ]
    totals = views.supplier_totals(views.actions(rows, views.Filters()))
    assert totals == [
        {"supplier": "Beta", "count": 1, "quantity": 100.0, "cost": 300.0, "uncosted": 0},
        {"supplier": "Acme", "count": 2, "quantity": 15.0, "cost": 25.5, "uncosted": 1},
    ]
    console, data = app()
    data.action_rows = rows
    body = text(console.handle(Request("GET", "/actions")))
    assert '<tr id="supplier-Beta">' in body and "(+1 without a cost)" in body


def test_mtbf_and_mttr_come_from_the_closed_down_episodes() -> None:
    # Down 0-2 h and 5-6 h, down again at 10 h: repairs 2 h and 1 h, up 3 h and 4 h between.
    found = plant.reliability([down(3, 10, None), down(2, 5, 6), down(1, 0, 2)])
    press = found[("plant1", "press-01")]
    assert (press["failures"], press["mttr_s"], press["mtbf_s"]) == (3, 5400.0, 12600.0)
    assert (press["mttr"], press["mtbf"]) == ("1 h 30 min", "3 h 30 min")
    other = down(4, 1, 2, rule_id="overheating")
    assert plant.reliability([other]) == {}
    assert plant.reliability([down(1, 0, None)])[("plant1", "press-01")]["mttr"] == ""


def test_receipts_are_markers_on_the_stock_chart() -> None:
    item = Fact("stock", "plant1", "BRG-6204", {"on_hand": 5, "reorder_point": 10}, T0)
    readings = [
        Reading("stock", "plant1", "BRG-6204", "on_hand", T0 - timedelta(hours=h),
                1, 5.0, 5.0, 5.0, 5.0, T0 - timedelta(hours=h))
        for h in (3, 2, 1)
    ]  # fmt: skip
    receipts = [
        {"site": "plant1", "subject": "BRG-6204", "quantity": 200.0,
         "received_at": T0 - timedelta(hours=2)},
        {"site": "plant1", "subject": "OTHER", "quantity": 1.0, "received_at": T0},
        {"site": "plant1", "subject": "BRG-6204", "quantity": 7.0,
         "received_at": T0 - timedelta(days=30)},
    ]  # fmt: skip
    svg = plant.stock_chart(item, readings, T0 - timedelta(hours=4), T0, receipts)
    assert 'data-markers="1"' in svg and ">+200</text>" in svg
    assert 'data-markers="0"' in line_chart(
        "x", [Point(T0, 1, 2, 1.5)], [Limit("l", 1)], T0 - timedelta(hours=1), T0
    )
    only = line_chart("x", [], [], T0 - timedelta(hours=1), T0, [Marker(T0, "+3")])
    assert 'data-markers="1"' in only


def letter(id: int, payload: bytes, reason: str = "bad JSON", topic: str = "factory/x") -> dict:
    return {"id": id, "topic": topic, "payload": payload, "reason": reason, "received_at": T0}


def test_dead_letters_show_payloads_escaped_and_cut_with_the_whole_on_their_page() -> None:
    console, data = app()
    data.letters = [
        letter(1, b"<script>alert(1)</script>" + b"x" * 500),
        letter(2, b"\xff\xfe\x00", reason="not UTF-8", topic="factory/plant1/stock/A"),
    ]
    body = text(console.handle(Request("GET", "/dead-letters")))
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)" in body
    assert "x" * 200 not in body and "…" in body
    assert "ff fe 00" in body
    filtered = text(console.handle(Request("GET", "/dead-letters", query={"reason": ["utf"]})))
    assert 'id="letter-2"' in filtered and 'id="letter-1"' not in filtered
    by_topic = text(console.handle(Request("GET", "/dead-letters", query={"topic": ["stock"]})))
    assert 'id="letter-2"' in by_topic and 'id="letter-1"' not in by_topic
    whole = text(console.handle(Request("GET", "/dead-letters/1")))
    assert "x" * 500 in whole and "&lt;script&gt;" in whole
    assert console.handle(Request("GET", "/dead-letters/9")).status == 404


def test_only_an_operator_reprocesses_and_only_with_the_token() -> None:
    console, data = app()
    data.letters = [letter(1, b"{}"), letter(2, b"{}")]
    jar, token = logged_in(console, "victor")
    assert "/dead-letters/reprocess" not in text(
        console.handle(Request("GET", "/dead-letters", cookie_header=jar))
    )
    form = {"csrf": [token], "id": ["1"]}
    refused = console.handle(
        Request("POST", "/dead-letters/reprocess", form=form, cookie_header=jar)
    )
    assert refused.status == 403 and "only operators may re-process" in text(refused)
    jar, token = logged_in(console, "olga")
    no_token = console.handle(
        Request("POST", "/dead-letters/reprocess", form={"id": ["1"]}, cookie_header=jar)
    )
    assert no_token.status == 403 and data.reprocessed == []
    form = {"csrf": [token], "id": ["2", "1", "x"], "back": ["/dead-letters?topic=factory"]}
    done = console.handle(Request("POST", "/dead-letters/reprocess", form=form, cookie_header=jar))
    assert done.status == 303 and data.reprocessed == [[1, 2]]
    location = dict(done.headers)["Location"]
    assert location.startswith("/dead-letters?topic=factory&done=re-sent+2+of+2")


def test_the_rules_page_shows_the_rule_set_the_last_reload_and_its_refusal() -> None:
    console, data = app()
    data.state = RulesState(RULESET, frozenset({"machine-down"}), (T0, "SIGHUP"))
    data.alert_rows = [
        {**down(8, 0, None), "rule_id": "rules-reload", "dedup_key": "agent/rules/reload-refused",
         "matched": {"problems": {"0": "rules/x.yaml:12: hot: unknown field tmp_c",
                                  "1": "rules/y.yaml: not YAML"}}},
        {**down(9, 0, None), "rule_id": "rule-disabled",
         "matched": {"disabled": {"rule": "machine-down", "reason": "no answer within 10 s"}}},
    ]  # fmt: skip
    body = text(console.handle(Request("GET", "/rules")))
    assert RULESET.hash in body and "2026-12-04 08:00:00 UTC (SIGHUP)" in body
    assert "<code>rules/maintenance.yaml:2</code>" in body
    assert '<td data-label="severity">critical</td>' in body  # its alert's, not the default
    assert "disabled</strong> no answer within 10 s" in body
    assert '<code>rules/x.yaml</code></td><td data-label="line">12</td>' in body
    assert "hot: unknown field tmp_c" in body and "not YAML" in body
    assert problem("a.yaml:3: b: c") == {"file": "a.yaml", "line": "3", "reason": "b: c"}


def test_a_proxy_header_is_the_user_only_from_a_trusted_address() -> None:
    settings = {"auth_header": "X-Forwarded-User", "trusted_proxies": ["10.0.0.0/24"]}
    console, _ = app(**settings)
    header = {"x-forwarded-user": "olga"}
    trusted = console.handle(Request("GET", "/alerts", client="10.0.0.5", headers=header))
    assert "olga (operator)" in text(trusted) and 'action="/alerts/3/ack"' in text(trusted)
    stranger = console.handle(Request("GET", "/alerts", client="10.0.1.5", headers=header))
    assert stranger.status == 200 and "olga" not in text(stranger)
    assert "/ack" not in text(stranger)
    # Someone the proxy names but `users` does not: the default role (viewer).
    anne = {"x-forwarded-user": "anne"}
    page = console.handle(Request("GET", "/alerts", client="10.0.0.5", headers=anne))
    assert "anne (viewer)" in text(page) and "/ack" not in text(page)
    # The proxy's user is never written into the cookie: the same cookie elsewhere is nobody.
    jar = _cookie(trusted)
    later = console.handle(Request("GET", "/alerts", client="10.0.1.5", cookie_header=jar))
    assert "olga" not in text(later)


def test_without_users_a_proxy_may_reach_the_pages_and_others_may_not() -> None:
    settings = {"users": [], "auth_header": "X-Forwarded-User", "trusted_proxies": ["10.0.0.1"]}
    settings["auth_header_role"] = "operator"
    console, _ = app(**settings)
    header = {"x-forwarded-user": "pat"}
    page = console.handle(Request("GET", "/alerts", client="10.0.0.1", headers=header))
    assert page.status == 200 and "pat (operator)" in text(page)
    assert (
        console.handle(Request("GET", "/alerts", client="10.0.0.2", headers=header)).status == 403
    )


def test_an_empty_ruleset_still_renders() -> None:
    console, data = app()
    data.state = RulesState(RuleSet((), "0" * 12, ()))
    assert console.handle(Request("GET", "/rules")).status == 200
    assert "none since the agent started" in text(console.handle(Request("GET", "/rules")))


def test_the_open_alerts_list_reads_only_the_open_rows() -> None:
    console, data = app()

    def whole_history() -> list[dict[str, Any]]:
        raise AssertionError("the whole alert table read for the open ones")

    data.alerts = whole_history  # type: ignore[method-assign]
    assert console.handle(Request("GET", "/api/alerts")).status == 200
    assert console.handle(Request("GET", "/alerts")).status == 200
    assert console.handle(Request("GET", "/api/machines")).status == 200
    assert console.handle(Request("GET", "/rules")).status == 200
