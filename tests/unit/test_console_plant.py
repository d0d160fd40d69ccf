"""The machine and stock pages and their server-drawn charts, without a socket or a browser."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.config import HttpSettings
from agent.http.web.app import Request
from agent.http.web.charts import Limit, Point, line_chart
from agent.http.web.plant import machines, stock
from agent.http.web.routes import Console
from agent.model import Fact
from agent.world.history import Reading

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def press(state: str = "running", **extra: Any) -> Fact:
    fields = {
        "state": state,
        "state_since": (NOW - timedelta(minutes=95)).isoformat(),
        "utilization_pct": 87.5,
        "open_work_orders": 1,
        "max_temp_c": 85.0,
        **extra,
    }
    return Fact("machine", "plant1", "press-01", fields, NOW)


def bearing() -> Fact:
    fields = {"on_hand": 12, "on_order": 40, "projected": 52, "days_of_cover": 3.5,
              "reorder_point": 60, "dynamic_reorder_point": 48.0}  # fmt: skip
    return Fact("stock", "plant1", "BRG-6204", fields, NOW)


def temps(minutes: int) -> list[Reading]:
    return [
        Reading("machine", "plant1", "press-01", "temp_c", NOW - timedelta(minutes=m),
                2, 60.0 + m, 62.0 + m, 61.0 + m, 61.0 + m, NOW - timedelta(minutes=m))
        for m in range(minutes, 0, -1)
    ]  # fmt: skip


class PlantData:
    def __init__(self, facts: list[Fact], readings: list[Reading]) -> None:
        self._facts = facts
        self._readings = readings
        self.asked: list[tuple[str, str, str, datetime]] = []

    def alerts(self) -> list[dict[str, Any]]:
        return []

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
        raise AssertionError("no commands here")

    def receipts(self) -> list[dict[str, Any]]:
        return []

    def facts(self) -> list[Fact]:
        return self._facts

    def readings(self, kind: str, site: str, subject: str, since: datetime) -> list[Reading]:
        self.asked.append((kind, site, subject, since))
        return [r for r in self._readings if r.kind == kind and r.subject == subject]


def get(data: PlantData, path: str, **query: str) -> tuple[int, str]:
    console = Console(HttpSettings(pages=True), data)
    assert console.handles(path)
    response = console.handle(Request("GET", path, {k: [v] for k, v in query.items()}))
    return response.status, response.body.decode()


def test_a_chart_has_a_dot_per_bucket_and_its_limit_drawn() -> None:
    points = [Point(NOW + timedelta(minutes=m), 1.0 * m, 2.0 * m, 1.5 * m) for m in range(5)]
    svg = line_chart("temp_c", points, [Limit("max_temp_c", 9.0)])
    assert svg.count('class="point"') == 5
    assert 'class="limit"' in svg and "max_temp_c 9" in svg
    assert 'data-points="5"' in svg and "style=" not in svg  # the CSP allows no inline style
    assert "no readings" in line_chart("temp_c", [])


def test_a_chart_escapes_what_it_shows() -> None:
    svg = line_chart("<b>", [Point(NOW, 1, 1, 1)], [Limit('"x"', 2.0)])
    assert "<b>" not in svg and '"x"' not in svg


def test_machines_sort_down_first_and_say_how_long_in_state() -> None:
    idle = Fact(
        "machine", "plant1", "mill-02", {"state": "down", "state_since": NOW.isoformat()}, NOW
    )
    rows = machines([press(), idle, bearing()], NOW)
    assert [row["machine"] for row in rows] == ["mill-02", "press-01"]
    assert rows[1]["in_state"] == "1 h 35 min"
    assert rows[1]["utilization_pct"] == 87.5


def test_stock_rows_show_cover_and_flag_a_projection_at_the_reorder_point() -> None:
    (row,) = stock([bearing(), press()])
    assert (row["on_hand"], row["projected"], row["days_of_cover"]) == (12, 52, 3.5)
    assert row["low"] is True and row["learned_reorder_point"] == 48.0


def test_the_machines_page_lists_each_machine_with_a_link_to_its_charts() -> None:
    status, body = get(PlantData([press()], []), "/machines")
    assert status == 200
    assert 'href="/machines/plant1/press-01"' in body and "87.5 %" in body


def test_the_machine_page_draws_a_chart_per_metric_over_the_hours_asked() -> None:
    data = PlantData([press()], temps(30))
    status, body = get(data, "/machines/plant1/press-01", hours="2")
    assert status == 200
    assert len(re.findall(r'<circle class="point"', body)) == 30
    assert 'id="chart-temp_c"' in body and "max_temp_c 85" in body
    (_, _, _, since) = data.asked[0]
    assert timedelta(hours=1.9) < datetime.now(UTC) - since < timedelta(hours=2.1)


def test_the_stock_page_and_an_items_chart_with_its_reorder_points() -> None:
    counts = [
        Reading("stock", "plant1", "BRG-6204", "on_hand", NOW - timedelta(hours=h),
                1, 12.0 + h, 12.0 + h, 12.0 + h, 12.0 + h, NOW)
        for h in (48, 24, 1)
    ]  # fmt: skip
    data = PlantData([bearing()], counts)
    status, body = get(data, "/stock")
    assert status == 200 and 'href="/stock/plant1/BRG-6204"' in body
    status, body = get(data, "/stock/plant1/BRG-6204")
    assert status == 200
    assert body.count('<circle class="point"') == 3
    assert "reorder point 60" in body and "learned 48" in body


def test_an_unknown_machine_is_not_found_and_live_rows_come_as_json() -> None:
    data = PlantData([press()], [])
    assert get(data, "/machines/plant1/nope")[0] == 404
    status, body = get(data, "/api/machines")
    assert status == 200 and '"html"' in body and "press-01" in body
