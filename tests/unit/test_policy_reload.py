"""`reload_policy` on real files: rule files and master data validated whole, swapped when they
load, refused with a located alert (the running ones stay) when they do not."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.app.core import Core
from agent.app.policy import Policy
from agent.app.reload import MASTERDATA_ALERT_KEY, RULES_ALERT_KEY, PolicyFiles, reload_policy
from agent.model import ActionDecision, AlertDecision, AlertResolved, Decision, Message
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
OWN_RULE = """\
rules:
  - id: a-class-low
    when:
      s: kind == "stock" and abc_class == "A" and on_hand < 5
    then:
      - alert: {severity: warning, message: "{s.sku} low"}
"""


@pytest.fixture
def files(tmp_path: Path) -> PolicyFiles:
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    for name in ("items.yaml", "machines.yaml"):
        shutil.copy(ROOT / "config" / name, tmp_path / name)
    return PolicyFiles(tmp_path / "rules", tmp_path / "items.yaml", tmp_path / "machines.yaml")


def start(files: PolicyFiles) -> tuple[Core, Policy]:
    masterdata = load_masterdata(files.items, files.machines)
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    policy = Policy(masterdata, schema, load_rules([files.rules], schema))
    return Core(policy.ruleset, masterdata), policy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def stock(sku: str, on_hand: float) -> Message:
    return Message("stock", f"f/plant1/stock/{sku}", "plant1", sku, {"on_hand": on_hand}, T0, T0)


def alerts(decisions: list[Decision], key: str) -> list[AlertDecision]:
    return [d for d in decisions if isinstance(d, AlertDecision) and d.dedup_key == key]


def resolutions(decisions: list[Decision], key: str) -> list[AlertResolved]:
    return [d for d in decisions if isinstance(d, AlertResolved) and d.dedup_key == key]


def test_an_edited_item_is_swapped_in_and_logged_with_counts(files: PolicyFiles) -> None:
    core, policy = start(files)
    core.process([stock("BRG-6204", 50)])
    edit(files.items, "reorder_point: 40", "reorder_point: 60")
    with capture_logs() as logs:
        reloaded = reload_policy(core, policy, files, T0 + timedelta(minutes=1), "file change")
    assert reloaded.masterdata_changed and not reloaded.rules_changed
    assert [d.kind for d in reloaded.decisions if isinstance(d, ActionDecision)] == ["reorder"]
    assert resolutions(reloaded.decisions, MASTERDATA_ALERT_KEY)
    assert reloaded.policy.masterdata.items["BRG-6204"]["reorder_point"] == 60
    assert core.world.masterdata is reloaded.policy.masterdata
    (event,) = [e for e in logs if e["event"] == "masterdata_reloaded"]
    assert event["items_changed"] == 1 and event["items_added"] == 0
    assert event["machines_changed"] == 0 and event["items_removed"] == 0


def test_a_broken_item_is_refused_with_file_and_line_and_the_old_data_keeps_working(
    files: PolicyFiles,
) -> None:
    core, policy = start(files)
    running = core.world.masterdata
    edit(files.items, "safety_stock: 15", "safety_stock: 55")  # above reorder_point 40
    line = line_of(files.items, "safety_stock: 55")
    with capture_logs() as logs:
        reloaded = reload_policy(core, policy, files, T0, "file change")
    (alert,) = alerts(reloaded.decisions, MASTERDATA_ALERT_KEY)
    assert alert.severity == "critical"
    assert (
        f"items.yaml:{line}: BRG-6204: safety_stock 55 is above reorder_point 40" in alert.message
    )
    assert alert.message.startswith("master data change refused, the running master data stays")
    assert core.world.masterdata is running and reloaded.policy is not None
    assert reloaded.policy.masterdata is running and not reloaded.masterdata_changed
    (event,) = [e for e in logs if e["event"] == "masterdata_reload_refused"]
    assert event["file"] == str(files.items) and event["line"] == line
    assert event["reason"] == "BRG-6204: safety_stock 55 is above reorder_point 40"
    assert resolutions(reloaded.decisions, RULES_ALERT_KEY)  # the rules load: not theirs
    # The old data keeps working: 30 is at or below the running reorder point of 40.
    assert [d for d in core.process([stock("BRG-6204", 30)]) if isinstance(d, ActionDecision)]

    edit(files.items, "safety_stock: 55", "safety_stock: 15")  # back as it runs
    again = reload_policy(core, reloaded.policy, files, T0, "file change")
    assert resolutions(again.decisions, MASTERDATA_ALERT_KEY)
    assert not alerts(again.decisions, MASTERDATA_ALERT_KEY) and not again.masterdata_changed


def test_a_bad_time_zone_in_a_calendar_is_refused(files: PolicyFiles) -> None:
    core, policy = start(files)
    edit(files.machines, "  two-shift:\n", '  two-shift:\n    timezone: "Mars/Olympus"\n')
    reloaded = reload_policy(core, policy, files, T0, "file change")
    line = line_of(files.machines, "Mars/Olympus")
    (alert,) = alerts(reloaded.decisions, MASTERDATA_ALERT_KEY)
    where = f"machines.yaml:{line}: calendars.two-shift.timezone: unknown time zone 'Mars/Olympus'"
    assert where in alert.message
    assert core.world.masterdata is policy.masterdata


def test_a_machine_naming_an_unknown_calendar_is_refused_at_its_line(files: PolicyFiles) -> None:
    core, policy = start(files)
    edit(files.machines, "shift_calendar: two-shift", "shift_calendar: four-shift")
    line = line_of(files.machines, "four-shift")
    reloaded = reload_policy(core, policy, files, T0, "file change")
    (alert,) = alerts(reloaded.decisions, MASTERDATA_ALERT_KEY)
    assert f"machines.yaml:{line}: press-01: shift_calendar 'four-shift' is not in" in alert.message


def test_master_data_the_running_rules_no_longer_check_against_is_refused_naming_the_rule(
    files: PolicyFiles,
) -> None:
    edit(files.items, "    pack_size: 10\n", "    pack_size: 10\n    abc_class: A\n")
    (files.rules / "own.yaml").write_text(OWN_RULE, encoding="utf-8")
    core, policy = start(files)
    edit(files.items, "    abc_class: A\n", "")  # the only item with the field
    reloaded = reload_policy(core, policy, files, T0, "file change")
    (alert,) = alerts(reloaded.decisions, MASTERDATA_ALERT_KEY)
    assert "own.yaml:4: the rules no longer check against it: a-class-low: " in alert.message
    assert "abc_class" in alert.message
    assert reloaded.policy.masterdata is policy.masterdata
    assert not alerts(reloaded.decisions, RULES_ALERT_KEY)

    (files.rules / "own.yaml").unlink()  # both fixed together: both swap
    both = reload_policy(core, reloaded.policy, files, T0, "file change")
    assert both.rules_changed and both.masterdata_changed
    assert "abc_class" not in both.policy.masterdata.items["BRG-6204"]
    assert resolutions(both.decisions, MASTERDATA_ALERT_KEY)


def test_a_rule_edit_and_an_item_edit_together_both_apply(files: PolicyFiles) -> None:
    core, policy = start(files)
    edit(files.items, "reorder_point: 40", "reorder_point: 45")
    edit(files.rules / "inventory.yaml", "on_hand < safety_stock", "on_hand <= safety_stock")
    reloaded = reload_policy(core, policy, files, T0, "file change")
    assert reloaded.rules_changed and reloaded.masterdata_changed
    assert core.ruleset.hash == reloaded.policy.ruleset.hash != policy.ruleset.hash
    assert core.world.masterdata.items["BRG-6204"]["reorder_point"] == 45


def test_broken_rules_with_an_item_edit_keep_both_running(files: PolicyFiles) -> None:
    core, policy = start(files)
    edit(files.items, "reorder_point: 40", "reorder_point: 45")
    edit(files.rules / "inventory.yaml", "on_hand < safety_stock", "on_hand < safety")
    reloaded = reload_policy(core, policy, files, T0, "file change")
    assert alerts(reloaded.decisions, RULES_ALERT_KEY)
    (alert,) = alerts(reloaded.decisions, MASTERDATA_ALERT_KEY)
    assert "not checked: the rule files do not load" in alert.message
    assert core.ruleset.hash == policy.ruleset.hash
    assert core.world.masterdata is policy.masterdata


def test_nothing_changed_swaps_nothing_and_resolves_both_alerts(files: PolicyFiles) -> None:
    core, policy = start(files)
    with capture_logs() as logs:
        reloaded = reload_policy(core, policy, files, T0, "SIGHUP")
    assert not reloaded.rules_changed and not reloaded.masterdata_changed
    assert [type(d) for d in reloaded.decisions] == [AlertResolved, AlertResolved]
    assert not [e for e in logs if e["event"] == "masterdata_loaded"]  # not even parsed
