"""The console's pages against a real agent on a real broker: what each person may do, CSRF,
and a button applied by the ingest thread as the MQTT command would be."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.store.repository import Store
from tests.integration.test_http import get
from tests.support.agent_process import REPO, AgentProcess
from tests.support.console import Client, start_console
from tests.support.live import PRESS, STOCK, Publisher, poll
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def console(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[AgentProcess, int]]:
    process, port = start_console(broker, tmp_path)
    yield process, port
    process.stop()


def fire_press_down(publisher: Publisher, port: int) -> int:
    """Publish a machine going down; the id of the alert the machine-down rule fires."""
    publisher.send(PRESS, {"state": "down", "fault": "E17"})

    def alert_id() -> int | None:
        status, body = get(port, "/api/alerts?rule=machine-down")
        ids = json.loads(body)["ids"] if status == 200 else []
        return ids[0] if ids else None

    found: int = poll(alert_id, 15, "the machine-down alert on /api/alerts")
    return found


def stored_alert(tmp_path: Path, id: int) -> dict[str, object]:
    with Store.open(f"sqlite:///{tmp_path}/agent.db") as store:
        return next(row for row in store.alerts() if row["id"] == id)


def test_pages_stay_off_by_default_and_health_keeps_its_paths(
    broker: Mosquitto, tmp_path: Path
) -> None:
    process, port = start_console(broker, tmp_path, pages=False)
    try:
        assert get(port, "/alerts")[0] == 404
        assert get(port, "/healthz")[0] == 200
        assert "factory_agent_ready" in get(port, "/metrics")[1]
    finally:
        process.stop()


def test_an_operator_acknowledges_from_the_page_as_the_mqtt_command_would(
    console: tuple[AgentProcess, int], publisher: Publisher, tmp_path: Path
) -> None:
    process, port = console
    id = fire_press_down(publisher, port)
    client = Client(port)
    client.login("olga")
    status, page = client.get("/alerts")
    assert status == 200 and f'action="/alerts/{id}/ack"' in page
    assert "press-01" in page and "olga (operator)" in page

    status, _, location = client.post(
        f"/alerts/{id}/ack", {"csrf": client.csrf(), "back": "/alerts?rule=machine-down"}
    )
    assert (status, location) == (303, "/alerts?rule=machine-down")
    row = stored_alert(tmp_path, id)
    assert (row["status"], row["acknowledged_by"]) == ("acknowledged", "olga")
    applied = process.wait_for("command_applied")
    assert (applied["source"], applied["by"], applied["id"]) == ("console", "olga", id)

    again = client.post(f"/alerts/{id}/ack", {"csrf": client.csrf()})
    assert again[0] == 409 and "acknowledged; cannot ack" in again[1]


def test_a_work_order_is_closed_from_the_actions_page(
    console: tuple[AgentProcess, int], publisher: Publisher, tmp_path: Path
) -> None:
    _, port = console
    publisher.send(STOCK, {"on_hand": 3})
    fire_press_down(publisher, port)
    client = Client(port)
    client.login("olga")
    status, body = client.get("/api/actions?machine=press-01")
    assert status == 200
    (id,) = json.loads(body)["ids"]
    assert "repair" in json.loads(body)["html"]
    reorders = json.loads(client.get("/api/actions?sku=BRG-6204")[1])
    assert len(reorders["ids"]) == 1 and "order" in reorders["html"]

    assert client.post(f"/actions/{id}/done", {"csrf": client.csrf()})[0] == 303
    with Store.open(f"sqlite:///{tmp_path}/agent.db") as store:
        row = next(r for r in store.actions() if r["id"] == id)
    assert (row["status"], row["closed_by"]) == ("done", "olga")


def test_a_post_without_the_csrf_token_is_refused(
    console: tuple[AgentProcess, int], publisher: Publisher, tmp_path: Path
) -> None:
    _, port = console
    id = fire_press_down(publisher, port)
    client = Client(port)
    client.login("olga")
    assert client.post(f"/alerts/{id}/ack", {})[0] == 403
    assert client.post(f"/alerts/{id}/ack", {"csrf": "forged"})[0] == 403
    stranger = Client(port)  # another browser: its own session, so the token is not its
    assert stranger.post(f"/alerts/{id}/ack", {"csrf": client.csrf()})[0] == 403
    assert client.post("/login", {"name": "olga", "password": "olga-operator-pw"})[0] == 403
    assert stored_alert(tmp_path, id)["status"] == "firing"


def test_a_viewer_sees_no_button_and_a_forged_post_is_refused(
    console: tuple[AgentProcess, int], publisher: Publisher, tmp_path: Path
) -> None:
    _, port = console
    id = fire_press_down(publisher, port)
    client = Client(port)
    client.login("victor")
    status, page = client.get("/alerts")
    assert status == 200 and "press-01" in page and "victor (viewer)" in page
    assert "/ack" not in page
    status, body, _ = client.post(f"/alerts/{id}/ack", {"csrf": client.csrf()})
    assert status == 403 and "only operators" in body
    assert stored_alert(tmp_path, id)["status"] == "firing"


def test_a_wrong_password_is_refused(console: tuple[AgentProcess, int]) -> None:
    _, port = console
    client = Client(port)
    status, body, _ = client.post(
        "/login", {"csrf": client.csrf("/login"), "name": "olga", "password": "guess"}
    )
    assert status == 401 and "wrong name or password" in body
    assert "olga (operator)" not in client.get("/alerts")[1]


def test_without_users_the_pages_are_read_only(
    broker: Mosquitto, publisher: Publisher, tmp_path: Path
) -> None:
    process, port = start_console(broker, tmp_path, users=False)
    try:
        id = fire_press_down(publisher, port)
        client = Client(port)
        status, page = client.get("/alerts")
        assert status == 200 and "read-only" in page
        assert "/ack" not in page and 'name="csrf"' not in page  # no form at all
        assert client.post(f"/alerts/{id}/ack", {"csrf": "any"})[0] == 403
        assert client.get("/login")[1].count("No users are configured") == 1
        assert stored_alert(tmp_path, id)["status"] == "firing"
    finally:
        process.stop()


def test_an_alerts_own_page_explains_it_and_lists_its_episodes(
    console: tuple[AgentProcess, int], publisher: Publisher, tmp_path: Path
) -> None:
    _, port = console
    first = fire_press_down(publisher, port)
    publisher.send(PRESS, {"state": "running"})  # resolve_when: the first episode ends
    poll(lambda: stored_alert(tmp_path, first)["status"] == "resolved", 15, "resolved")
    second = fire_press_down(publisher, port)
    assert second != first
    client = Client(port)
    client.login("olga")
    status, page = client.get(f"/alerts/{second}")
    assert status == 200
    with Store.open(f"sqlite:///{tmp_path}/agent.db") as store:
        (load,) = store.rule_sets()
    assert f'<code id="rule-set">{load["hash"]}</code>' in page
    assert re.search(r'<code id="rule-where">[^<]*rules/maintenance\.yaml:60</code>', page)
    assert '<strong>state</strong></td><td data-label="value">down</td>' in page
    assert "press-01 is down" in page
    episodes = re.findall(r'<tr id="episode-(\d+)" class="st-(\w+)', page)
    assert episodes == [(str(second), "firing"), (str(first), "resolved")]
    assert f'action="/alerts/{second}/ack"' in page
    status, _, location = client.post(
        f"/alerts/{second}/ack", {"csrf": client.csrf(), "back": f"/alerts/{second}"}
    )
    assert (status, location) == (303, f"/alerts/{second}")
    assert "acknowledged" in client.get(f"/alerts/{second}")[1]
    assert client.get("/alerts/999999")[0] == 404


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    with Store.open(f"sqlite:///{tmp_path}/agent.db") as store:
        return store.dead_letters()


def dead_letter_ids(tmp_path: Path) -> list[int]:
    return sorted(int(row["id"]) for row in dead_letters(tmp_path))


def test_dead_letters_are_listed_and_an_operator_reprocesses_one(
    console: tuple[AgentProcess, int], publisher: Publisher, tmp_path: Path
) -> None:
    _, port = console
    publisher.send(PRESS, b"<b>not json</b>")
    (first,) = poll(lambda: dead_letters(tmp_path), 15, "a dead letter")
    id = int(first["id"])
    viewer = Client(port)
    viewer.login("victor")
    status, page = viewer.get("/dead-letters?topic=press-01")
    assert status == 200 and f'id="letter-{id}"' in page
    assert "&lt;b&gt;not json&lt;/b&gt;" in page and "<b>not json" not in page
    assert "/dead-letters/reprocess" not in page
    assert f'id="letter-{id}"' not in viewer.get("/dead-letters?topic=stock")[1]
    refused = viewer.post("/dead-letters/reprocess", {"csrf": viewer.csrf(), "id": str(id)})
    assert refused[0] == 403 and "only operators" in refused[1]

    operator = Client(port)
    operator.login("olga")
    assert operator.post("/dead-letters/reprocess", {"id": str(id)})[0] == 403
    assert dead_letter_ids(tmp_path) == [id]
    detail = operator.get(f"/dead-letters/{id}")[1]
    assert PRESS in detail and "&lt;b&gt;not json&lt;/b&gt;" in detail
    status, _, location = operator.post(
        "/dead-letters/reprocess", {"csrf": operator.csrf(), "id": str(id)}
    )
    assert status == 303 and location.startswith("/dead-letters?done=re-sent+1+of+1")

    # Re-sent to its topic and its row deleted; still not JSON, so the agent keeps it again
    # (SQLite may give the new row the freed id: told apart by when it was received).
    def received_again() -> list[dict[str, Any]]:
        return [r for r in dead_letters(tmp_path) if r["received_at"] > first["received_at"]]

    (again,) = poll(received_again, 15, "the re-sent message dead-lettered again")
    assert (again["topic"], bytes(again["payload"])) == (PRESS, b"<b>not json</b>")
    assert len(dead_letters(tmp_path)) == 1


def test_the_actions_page_totals_open_reorders_per_supplier(
    console: tuple[AgentProcess, int], publisher: Publisher
) -> None:
    _, port = console
    publisher.send(STOCK, {"on_hand": 3})
    reorders = poll(
        lambda: json.loads(get(port, "/api/actions?sku=BRG-6204")[1])["ids"], 15, "a reorder"
    )
    page = get(port, "/actions")[1]
    found = re.search(
        r'<tr id="supplier-([^"]+)">.*?class="count">(\d+)</td>.*?class="quantity">([\d.]+)',
        page,
        re.DOTALL,
    )
    assert found is not None and int(found[2]) == len(reorders) == 1
    assert float(found[3]) > 0


def test_the_machines_pages_show_mtbf_and_mttr_of_the_down_alerts(
    console: tuple[AgentProcess, int], publisher: Publisher, tmp_path: Path
) -> None:
    _, port = console
    for _ in range(2):
        id = fire_press_down(publisher, port)
        publisher.send(PRESS, {"state": "running"})
        poll(lambda id=id: stored_alert(tmp_path, id)["status"] == "resolved", 15, "resolved")
    page = get(port, "/machines/plant1/press-01")[1]
    assert '<dd id="failures">2</dd>' in page
    assert re.search(r'<dd id="mttr">\d+ min</dd>', page)
    assert re.search(r'<dd id="mtbf">\d+ min</dd>', page)
    assert "machine-down" in page  # the help text names the alerts it counts
    assert re.search(r'class="mttr">\d+ min</td>', get(port, "/machines")[1])


def test_the_rules_page_shows_the_loaded_rules_and_a_refused_reload(
    broker: Mosquitto, tmp_path: Path
) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(REPO / "rules", folder, ignore=shutil.ignore_patterns("tests"))
    process, port = start_console(broker, tmp_path, rules=folder)
    try:
        page = get(port, "/rules")[1]
        assert re.search(r'<tr id="rule-machine-down" class="">', page)
        assert re.search(r"<code>[^<]*maintenance\.yaml:60</code>", page)
        assert "none since the agent started" in page
        capacity = folder / "capacity.yaml"
        text = capacity.read_text(encoding="utf-8")
        broken = text.replace("idle_minutes >= max_idle_minutes", "idle_minutes >= max_idle")
        capacity.write_text(broken, encoding="utf-8")

        def refused() -> str | None:
            body = get(port, "/rules")[1]
            return body if 'class="refused"' in body else None

        page = poll(refused, 15, "the refused reload on /rules")
        assert re.search(r'<code>[^<]*capacity\.yaml</code></td><td data-label="line">7</td>', page)
        assert "unknown field &#39;max_idle&#39;" in page
        assert "(watch)" in page or "UTC (" in page  # the last reload's time and why
    finally:
        process.stop()


def test_a_proxy_header_names_the_user_only_from_a_trusted_address(
    broker: Mosquitto, publisher: Publisher, tmp_path: Path
) -> None:
    trusted = 'auth_header = "X-Forwarded-User"\ntrusted_proxies = ["127.0.0.1"]\n'
    process, port = start_console(broker, tmp_path, http_extra=trusted)
    try:
        id = fire_press_down(publisher, port)
        client = Client(port)
        status, page = client.get("/alerts", {"X-Forwarded-User": "olga"})
        assert status == 200 and "olga (operator)" in page and f"/alerts/{id}/ack" in page
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found is not None
        as_olga = {"X-Forwarded-User": "olga"}
        answer = client.post(f"/alerts/{id}/ack", {"csrf": found[1]}, as_olga)
        assert answer[0] == 303
        assert stored_alert(tmp_path, id)["acknowledged_by"] == "olga"
    finally:
        process.stop()
    untrusted = 'auth_header = "X-Forwarded-User"\ntrusted_proxies = ["10.9.9.9"]\n'
    other = tmp_path / "other"
    other.mkdir()
    process, port = start_console(broker, other, http_extra=untrusted)
    try:
        status, page = Client(port).get("/alerts", {"X-Forwarded-User": "olga"})
        assert status == 200 and "olga" not in page and "Log in" in page
    finally:
        process.stop()
