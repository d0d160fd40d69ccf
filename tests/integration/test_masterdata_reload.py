"""Master data reload with the real daemon: an edit of items.yaml takes effect without a restart
(at once where it changes what a rule says about a known stock, on the next message otherwise),
a broken edit raises an alert naming file, line and reason while the last good data keeps
working, and an edit of the rules made together with one of the master data applies both."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.store.repository import Store
from tests.support.agent_process import REPO, AgentProcess, write_config
from tests.support.live import STOCK, Publisher, poll
from tests.support.mosquitto import Mosquitto, free_port

OIL = "factory/plant1/stock/OIL-HLP46"
GLOVES = "factory/plant1/stock/PPE-GLV-M"


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    shutil.copytree(REPO / "rules", folder / "rules", ignore=shutil.ignore_patterns("tests"))
    for name in ("items.yaml", "machines.yaml"):
        shutil.copy(REPO / "config" / name, folder / name)
    return folder


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def agent(
    broker: Mosquitto, tmp_path: Path, policy: Path, http_port: int
) -> Iterator[AgentProcess]:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        rules=policy / "rules",
        masterdata=policy,
        extra=f"\n[http]\nenabled = true\nport = {http_port}\n",
    )
    process = AgentProcess(config, cwd=tmp_path)
    process.start()
    process.wait_for("mqtt_subscribed", timeout=15)
    yield process
    process.kill()


def edit(path: Path, *changes: tuple[str, str]) -> None:
    """Replace each (old, new) once, written in one go (as an editor saves)."""
    text = path.read_text(encoding="utf-8")
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def masterdata_check(port: int) -> dict[str, Any]:
    """The master-data check of /readyz (ready or not: the broker may lag in a test)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    check: dict[str, Any] = json.loads(body)["checks"]["masterdata"]
    return check


def reorders(store: Store, sku: str) -> list[dict[str, Any]]:
    return [a for a in store.actions("open") if a["kind"] == "reorder" and a["subject"] == sku]


def refusals(store: Store) -> list[dict[str, Any]]:
    return [a for a in store.alerts("firing") if a["rule_id"] == "masterdata-reload"]


def test_an_edited_item_applies_without_restart_and_a_broken_edit_keeps_the_last_good_data(
    agent: AgentProcess, store: Store, publisher: Publisher, policy: Path, http_port: int
) -> None:
    items = policy / "items.yaml"
    publisher.send(STOCK, {"on_hand": 50})  # BRG-6204: reorder point 40: nothing to do
    publisher.send(GLOVES, {"on_hand": 100})  # reorder point 120: a reorder, the marker
    poll(lambda: reorders(store, "PPE-GLV-M"), 5.0, "the reorder that marks the count handled")
    assert reorders(store, "BRG-6204") == []

    # Raised above the stock counted: the reorder is asked at once, no message needed; the new
    # pack size rounds it (120 = 3 packs of 40; 12 packs of 10 before).
    started = time.monotonic()
    edit(
        items,
        ("    reorder_point: 40\n", "    reorder_point: 60\n"),
        ("    pack_size: 10\n", "    pack_size: 40\n"),
        ("    reorder_qty: 100\n", "    reorder_qty: 120\n"),
        ("    reorder_point: 416\n", "    reorder_point: 250\n"),  # OIL-HLP46, not counted yet
    )
    (reorder,) = poll(lambda: reorders(store, "BRG-6204"), 5.0, "a reorder under the new data")
    latency_s = time.monotonic() - started
    assert reorder["params"]["quantity"] == 120 and reorder["params"]["packs"] == 3
    reloaded = agent.wait_for("masterdata_reloaded", timeout=1)
    assert reloaded["items_changed"] == 2 and reloaded["items_added"] == 0
    assert reloaded["items_removed"] == 0 and reloaded["machines_changed"] == 0
    assert [r["loaded_by"] for r in store.rule_sets()] == ["start"]  # the rules did not change

    # The next message is judged on the new data: 300 l was at the old reorder point (416).
    publisher.send(OIL, {"on_hand": 300})
    publisher.send(GLOVES.replace("PPE-GLV-M", "BLT-A42"), {"on_hand": 2})  # the marker
    poll(lambda: reorders(store, "BLT-A42"), 5.0, "the marker's reorder")
    assert reorders(store, "OIL-HLP46") == []

    # A broken edit is refused with file, line and reason; the last good data keeps working.
    edit(items, ("    safety_stock: 208\n", "    safety_stock: 300\n"))  # above reorder_point 250
    line = line_of(items, "safety_stock: 300")
    (alert,) = poll(lambda: refusals(store), 5.0, "an alert about the refused edit")
    assert alert["severity"] == "critical"
    where = f"items.yaml:{line}: OIL-HLP46: safety_stock 300 is above reorder_point 250"
    assert where in alert["message"]
    refused = agent.wait_for("masterdata_reload_refused", timeout=1)
    assert (refused["file"], refused["line"]) == (str(items), line)
    assert refused["reason"] == "OIL-HLP46: safety_stock 300 is above reorder_point 250"
    check = masterdata_check(http_port)
    assert (
        check["ok"] is True and "a change was refused, the last good data runs" in check["detail"]
    )
    assert where in check["detail"]
    publisher.send(OIL, {"on_hand": 240})  # at or below the reorder point of 250
    (oil,) = poll(lambda: reorders(store, "OIL-HLP46"), 5.0, "a reorder under the last good data")
    assert oil["params"]["quantity"] == 1248  # max(1040, 1456 - 240) in packs of 208

    # Fixed together with a rule edit: both apply, the rule set is recorded, the alert resolves.
    edit(items, ("    safety_stock: 300\n", "    safety_stock: 200\n"))
    edit(policy / "rules" / "inventory.yaml", ("purchase requested", "purchase asked for"))
    poll(lambda: not refusals(store), 5.0, "the refusal resolved: the master data loads again")
    rules = agent.wait_for("rules_reloaded", timeout=5)
    newest, first = poll(lambda: len(store.rule_sets()) == 2 and store.rule_sets(), 3.0, "recorded")
    assert "inventory.yaml" in newest["loaded_by"] and first["loaded_by"] == "start"
    assert (first["hash"], newest["hash"]) == (rules["previous"], rules["rule_set"])
    assert agent.wait_for("masterdata_reloaded", timeout=1, count=2)["items_changed"] == 1
    (resolved,) = [a for a in store.alerts("resolved") if a["rule_id"] == "masterdata-reload"]
    assert resolved["subject"] == "masterdata"
    assert masterdata_check(http_port)["detail"] == "6 items, 3 machines"
    print(f"master data reload latency (edit to reorder): {latency_s * 1000:.0f} ms")
