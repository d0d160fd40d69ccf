"""A catastrophic-backtracking rule, live (issue 16): with `matches(sku, "(a+)+$")` loaded, a flood
of SKUs that would backtrack for hours in Python's `re` leaves the other rules deciding, `/healthz`
answering and SIGTERM exiting within `daemon.stop_timeout_s`."""

from __future__ import annotations

import shutil
import threading
import time
import urllib.request
from pathlib import Path

from agent.store.repository import Store
from tests.support.agent_process import REPO, AgentProcess, write_config
from tests.support.live import poll, publish_burst
from tests.support.mosquitto import Mosquitto
from tests.support.notify_servers import free_port

HOSTILE_SKU = "a" * 39 + "b"  # `(a+)+$` backtracks 2^39 times on it in Python's `re`
MATCHING_SKU = "aaaa"
STOP_TIMEOUT_S = 5.0
FLOOD = 3000

HOSTILE_RULE = """\
rules:
  - id: odd-sku
    description: SKUs made of a's only (a pattern that backtracks badly in Python's re)
    when:
      s: kind == "stock" and matches(sku, "(a+)+$")
    then:
      - alert: {severity: info, message: "odd SKU {{s.sku}}"}
"""

ITEM = """\
  {sku}:
    description: a hostile SKU
    supplier: Nobody
    unit: pcs
    reorder_point: 0
    safety_stock: 0
    lead_time_days: 1
    reorder_qty: 1
    max_level: 1
    unit_cost: 1
    pack_size: 1
"""


def healthz(port: int) -> float:
    """Seconds `/healthz` took to answer 200."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        assert response.status == 200
    return time.perf_counter() - started


def test_a_redos_rule_under_a_flood_of_hostile_skus_hurts_nothing(
    broker: Mosquitto, store: Store, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    (rules / "hostile.yaml").write_text(HOSTILE_RULE)
    masterdata = tmp_path / "masterdata"
    masterdata.mkdir()
    shutil.copy(REPO / "config/machines.yaml", masterdata)
    (masterdata / "items.yaml").write_text(
        (REPO / "config/items.yaml").read_text()
        + "".join(ITEM.format(sku=sku) for sku in (HOSTILE_SKU, MATCHING_SKU))
    )
    http_port = free_port()
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-redos",
        rules=rules,
        masterdata=masterdata,
        extra=(
            f"[daemon]\nstop_timeout_s = {STOP_TIMEOUT_S}\n"
            f'[http]\nenabled = true\nhost = "127.0.0.1"\nport = {http_port}\n'
        ),
    )
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    try:
        agent.wait_for("mqtt_subscribed", timeout=30)
        flood = [
            (f"factory/plant1/stock/{HOSTILE_SKU}", b'{"on_hand": %d}' % (10 + i % 50))
            for i in range(FLOOD)
        ]
        middle = FLOOD // 2
        flood[middle:middle] = [
            ("factory/plant1/stock/BRG-6204", b'{"on_hand": 12}'),
            (f"factory/plant1/stock/{MATCHING_SKU}", b'{"on_hand": 3}'),
        ]
        publisher = threading.Thread(
            target=publish_burst, args=(broker, flood, "redos-flood"), daemon=True
        )
        publisher.start()
        slowest = 0.0
        while publisher.is_alive():
            slowest = max(slowest, healthz(http_port))
        publisher.join()
        slowest = max(slowest, healthz(http_port))
        assert slowest < 1.0, f"/healthz took {slowest:.2f} s during the flood"

        reorders = poll(
            lambda: [a for a in store.actions() if a["kind"] == "reorder"] or None,
            30,
            "the other rules' reorder for BRG-6204",
        )
        assert [r["subject"] for r in reorders] == ["BRG-6204"]
        odd = poll(
            lambda: [a for a in store.alerts() if a["rule_id"] == "odd-sku"],
            30,
            "the hostile rule's own alert for the SKU it matches",
        )
        assert [a["subject"] for a in odd] == [MATCHING_SKU]

        started = time.monotonic()
        code = agent.stop(timeout=STOP_TIMEOUT_S + 5)
        took = time.monotonic() - started
        assert code == 0
        assert took < STOP_TIMEOUT_S, f"SIGTERM took {took:.1f} s"
    finally:
        agent.kill()
