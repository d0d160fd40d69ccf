"""The console's pages against a real agent on a real broker: what each person may do, CSRF,
and a button applied by the ingest thread as the MQTT command would be."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.integration.test_http import get
from tests.support.agent_process import AgentProcess
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
