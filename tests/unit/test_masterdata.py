"""Master data: parsed from YAML text with every problem located as `file:line: subject: reason`."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import MasterDataError
from agent.world.masterdata import (
    ITEM_NUMBERS,
    ITEM_STRINGS,
    MasterData,
    load_masterdata,
    parse_items,
    parse_machines,
)

REPO = Path(__file__).resolve().parents[2]
ITEMS = REPO / "config" / "items.yaml"
MACHINES = REPO / "config" / "machines.yaml"

VALID_ITEMS = """\
items:
  BRG-6204:
    reorder_point: 40
    safety_stock: 15
    max_level: 150
    unit_cost: 4.8
    unit: pcs
    hazardous: false
    approved_suppliers: [Nordlager, Kugel AG]
  "0012":
    reorder_point: 5
"""
VALID_MACHINES = """\
machines:
  press-01:
    line: A
    max_temp_c: 80
    min_temp_c: -5
    max_idle_minutes: 20
    spare_parts: [BRG-6204, FLT-HYD10]
    cost_per_hour: 180
    cleanroom: true
"""


def problem(parse: object, text: str) -> str:
    assert callable(parse)
    with pytest.raises(MasterDataError) as caught:
        parse(text, "items.yaml")
    return str(caught.value)


def test_items_parse_into_typed_fields_per_sku() -> None:
    items = parse_items(VALID_ITEMS, "items.yaml")
    assert items["BRG-6204"] == {
        "reorder_point": 40,
        "safety_stock": 15,
        "max_level": 150,
        "unit_cost": 4.8,
        "unit": "pcs",
        "hazardous": False,
        "approved_suppliers": ["Nordlager", "Kugel AG"],
    }
    assert items["0012"] == {"reorder_point": 5}


def test_ids_are_kept_exactly_as_written_so_they_match_topics() -> None:
    items = parse_items("items:\n  0012: {reorder_point: 1}\n  1e3: {unit: kg}\n", "items.yaml")
    assert list(items) == ["0012", "1e3"]


def test_machines_parse_thresholds_lists_and_plant_fields() -> None:
    machines = parse_machines(VALID_MACHINES, "machines.yaml")
    assert machines["press-01"]["min_temp_c"] == -5
    assert machines["press-01"]["spare_parts"] == ["BRG-6204", "FLT-HYD10"]
    assert machines["press-01"]["cleanroom"] is True


def test_field_types_are_reported_for_the_rule_schema() -> None:
    data = MasterData(
        parse_items(VALID_ITEMS, "items.yaml"), parse_machines(VALID_MACHINES, "machines.yaml")
    )
    assert data.item_fields() == {
        "reorder_point": "number",
        "safety_stock": "number",
        "max_level": "number",
        "unit_cost": "number",
        "unit": "string",
        "hazardous": "bool",
        "approved_suppliers": "list",
    }
    assert data.machine_fields()["spare_parts"] == "list"
    assert data.machine_fields()["cleanroom"] == "bool"
    assert data.machine_fields()["max_temp_c"] == "number"


def test_mixed_types_built_by_hand_are_reported_as_any() -> None:
    data = MasterData({"A": {"x": 1, "y": None}, "B": {"x": "one"}})
    assert data.item_fields() == {"x": "any"}


def test_unknown_subjects_have_no_master_data() -> None:
    data = MasterData(parse_items(VALID_ITEMS, "items.yaml"), {})
    assert data.item("NOPE") == {}
    assert data.machine("press-99") == {}
    assert data.item("BRG-6204")["reorder_point"] == 40


def test_master_data_cannot_be_changed_after_loading() -> None:
    data = MasterData({"A": {"x": 1}}, {})
    with pytest.raises(TypeError):
        data.item("A")["x"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        data.items["B"] = {}  # type: ignore[index]


def test_an_empty_items_section_means_no_items() -> None:
    assert parse_items("items:\n", "items.yaml") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "items:\n  BRG-6204:\n    reorder_point: forty\n",
            "items.yaml:3: BRG-6204: reorder_point: expected a number, got 'forty'",
        ),
        (
            "items:\n  BRG-6204:\n    safety_stock: true\n",
            "items.yaml:3: BRG-6204: safety_stock: expected a number, got True",
        ),
        (
            "items:\n  BRG-6204:\n    lead_time_days: -2\n",
            "items.yaml:3: BRG-6204: lead_time_days: must be at least 0, got -2",
        ),
        (
            "items:\n  BRG-6204:\n    unit_cost: .nan\n",
            "items.yaml:3: BRG-6204: unit_cost: expected a finite number, got .nan",
        ),
        (
            "items:\n  BRG-6204:\n    supplier: 1234\n",
            "items.yaml:3: BRG-6204: supplier: expected text, got 1234 (quote it)",
        ),
        (
            "items:\n  BRG-6204:\n    unit: null\n",
            "items.yaml:3: BRG-6204: unit: expected text, got null",
        ),
        (
            "items:\n  A: {unit: kg}\n  BRG-6204:\n    last_audit: 2026-01-05\n",
            "items.yaml:4: BRG-6204: last_audit: dates are not supported: quote '2026-01-05'",
        ),
        (
            "items:\n  BRG-6204:\n    unit: !!python/object/apply:os.system [echo hi]\n",
            "items.yaml:3: BRG-6204: unit: tag !!python/object/apply:os.system is not allowed",
        ),
        (
            "items:\n  BRG-6204:\n    unit: !custom kg\n",
            "items.yaml:3: BRG-6204: unit: tag !custom is not allowed",
        ),
        (
            "items:\n  BRG-6204:\n    dims:\n      width: 3\n",
            "items.yaml:4: BRG-6204: dims: expected a value or a flat list of values",
        ),
        (
            "items:\n  BRG-6204:\n    tags: [a, [b]]\n",
            "items.yaml:3: BRG-6204: tags: expected a value or a flat list of values",
        ),
        (
            "items:\n  BRG-6204: {unit: pcs}\n  BRG-6204: {unit: kg}\n",
            "items.yaml:3: BRG-6204: listed twice (first at line 2)",
        ),
        (
            "items:\n  BRG-6204:\n    unit: pcs\n    unit: kg\n",
            "items.yaml:4: BRG-6204: field 'unit' set twice (first at line 3)",
        ),
        (
            "items:\n  BRG-6204:\n    projected: 3\n",
            "items.yaml:3: BRG-6204: 'projected' is set by the agent, not by master data",
        ),
        (
            "items:\n  BRG-6204:\n    unit cost: 3\n",
            "items.yaml:3: BRG-6204: field name 'unit cost' must be a word",
        ),
        (
            "items:\n  BRG/6204:\n    unit: pcs\n",
            "items.yaml:2: BRG/6204: an id cannot hold '/', '+', '#'",
        ),
        (
            "items:\n  BRG-6204: 40\n",
            "items.yaml:2: BRG-6204: expected a mapping of fields (name: value)",
        ),
        (
            "items:\n  BRG-6204:\n    reorder_point: 10\n    safety_stock: 15\n",
            "items.yaml:4: BRG-6204: safety_stock 15 is above reorder_point 10",
        ),
        (
            "items:\n  BRG-6204:\n    reorder_point: 40\n    max_level: 30\n",
            "items.yaml:4: BRG-6204: max_level 30 is below reorder_point 40",
        ),
        (
            "items:\n  A:\n    colour: red\n  B:\n    colour: 3\n",
            "items.yaml:5: B: colour: is a number here but a string for A (line 3)",
        ),
    ],
)
def test_item_problems_name_file_line_and_sku(text: str, expected: str) -> None:
    assert problem(parse_items, text).startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "machines:\n  press-01:\n    line: A\n    max_temp_c: hot\n",
            "items.yaml:4: press-01: max_temp_c: expected a number, got 'hot'",
        ),
        (
            "machines:\n  press-01:\n    spare_parts: BRG-6204\n",
            "items.yaml:3: press-01: spare_parts: expected a list of text, got 'BRG-6204'",
        ),
        (
            "machines:\n  press-01:\n    spare_parts: [BRG-6204, 6205]\n",
            "items.yaml:3: press-01: spare_parts: expected a list of text",
        ),
        (
            "machines:\n  press-01:\n    line: NO\n",
            "items.yaml:3: press-01: line: expected text, got False (quote it)",
        ),
        (
            "machines:\n  press-01:\n    min_temp_c: 90\n    max_temp_c: 80\n",
            "items.yaml:3: press-01: min_temp_c 90 is above max_temp_c 80",
        ),
        (
            "machines:\n  press-01:\n    service_interval_h: -1\n",
            "items.yaml:3: press-01: service_interval_h: must be at least 0",
        ),
    ],
)
def test_machine_problems_name_file_line_and_machine(text: str, expected: str) -> None:
    assert problem(parse_machines, text).startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "items.yaml:1: -: expected a mapping `items:` of entries"),
        ("- a\n- b\n", "items.yaml:1: -: expected a mapping `items:` of entries"),
        ("machines:\n  a: {}\n", "items.yaml:1: -: unknown top-level key 'machines'"),
        ("items:\n  - BRG-6204\n", "items.yaml:2: -: `items:` must be a mapping of id -> fields"),
        ("items:\n  BRG-6204:\n    unit: [pcs\n", "items.yaml:4: -: not valid YAML:"),
        ("items:\n  A: {unit: kg}\n\tB: 1\n", "items.yaml:3: -: not valid YAML:"),
    ],
)
def test_file_level_problems_name_file_and_line(text: str, expected: str) -> None:
    assert problem(parse_items, text).startswith(expected)


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = "items:\n  A:\n    reorder_point: x\n  B:\n    unit: 3\n"
    assert problem(parse_items, text).splitlines() == [
        "items.yaml:3: A: reorder_point: expected a number, got 'x'",
        "items.yaml:5: B: unit: expected text, got 3 (quote it)",
    ]


def test_yaml_anchors_and_merge_keys_share_common_values() -> None:
    text = (
        "machines:\n"
        "  press-01: &press\n    line: A\n    max_temp_c: 80\n"
        "  press-02:\n    <<: *press\n    line: B\n"
    )
    machines = parse_machines(text, "machines.yaml")
    assert machines["press-02"] == {"line": "B", "max_temp_c": 80}


def test_a_missing_file_names_the_path_and_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MasterDataError) as caught:
        load_masterdata(tmp_path / "items.yaml", MACHINES)
    assert str(caught.value) == f"{tmp_path}/items.yaml: file not found (set by masterdata.items)"
    with pytest.raises(MasterDataError) as caught:
        load_masterdata(ITEMS, tmp_path / "machines.yaml")
    assert str(caught.value).endswith("machines.yaml: file not found (set by masterdata.machines)")


def test_errors_from_files_name_the_file_path(tmp_path: Path) -> None:
    path = tmp_path / "machines.yaml"
    path.write_text("machines:\n  press-01:\n    max_temp_c: hot\n", encoding="utf-8")
    with pytest.raises(MasterDataError) as caught:
        load_masterdata(ITEMS, path)
    assert str(caught.value).startswith(f"{path}:3: press-01: max_temp_c:")


def test_the_shipped_sample_files_load_with_a_believable_policy() -> None:
    data = load_masterdata(ITEMS, MACHINES)
    assert set(data.items) == {
        "BRG-6204", "OIL-HLP46", "STL-2MM", "BLT-A42", "FLT-HYD10", "PPE-GLV-M",
    }  # fmt: skip
    for sku, item in data.items.items():
        assert set(item) == set(ITEM_NUMBERS) | set(ITEM_STRINGS), sku
        assert item["safety_stock"] < item["reorder_point"] < item["max_level"], sku  # type: ignore[operator]
        assert item["reorder_qty"] > 0, sku  # type: ignore[operator]
        assert item["reorder_qty"] % item["pack_size"] == 0, sku  # type: ignore[operator]
    assert set(data.machines) == {"press-01", "cnc-02", "weld-03"}
    press = data.machine("press-01")
    assert press["line"] == "A" and data.machine("weld-03")["line"] == "B"
    assert (press["max_temp_c"], press["max_vibration_mm_s"]) == (80, 7.1)
    assert (press["service_interval_h"], press["cost_per_hour"]) == (500, 180)
    assert press["spare_parts"] == ["BRG-6204", "FLT-HYD10"]
    assert data.machine("cnc-02")["max_temp_c"] == 70
    for machine, fields in data.machines.items():
        assert fields["max_idle_minutes"] == 20, machine
        assert set(fields["spare_parts"]) <= set(data.items), machine  # type: ignore[arg-type]
