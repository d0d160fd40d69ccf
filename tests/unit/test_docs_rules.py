"""docs/rules.md cannot rot: its examples load, the ones taken from the shipped rules are still
there, and every option, action and function of the language is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.rulebook import expr
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import ACTIONS, RULE_KEYS, parse_rule_sources
from agent.ruletest.testfile import parse_test_file
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC, re.S)
MASTER = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
SCHEMA = build_schema(MASTER.item_fields(), MASTER.machine_fields())


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.startswith("# from ")])
def test_examples_from_the_shipped_rules_are_still_in_them(block: str) -> None:
    source, body = block.split("\n", 1)
    path = ROOT / source.removeprefix("# from ").strip()
    assert body.rstrip() in path.read_text(encoding="utf-8"), f"{path} no longer says this"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.startswith("rules:")])
def test_rule_examples_load(block: str) -> None:
    assert parse_rule_sources([("docs/rules.md", block)], SCHEMA).rules is not None


def test_the_rule_test_example_parses() -> None:
    (block,) = [b for b in BLOCKS if b.startswith("# rule test")]
    parsed, problems = parse_test_file(ROOT / "rules" / "tests" / "doc.yaml", block)
    assert problems == [] and parsed is not None and len(parsed.tests) == 1


@pytest.mark.parametrize("word", sorted(RULE_KEYS) + sorted(ACTIONS) + sorted(expr.FUNCTIONS))
def test_every_option_action_and_function_is_documented(word: str) -> None:
    assert f"`{word}" in DOC


def test_the_rule_test_example_passes(tmp_path: Path) -> None:
    from agent.ruletest.run import report, run_tests

    (block,) = [b for b in BLOCKS if b.startswith("# rule test")]
    path = tmp_path / "doc_test.yaml"
    path.write_text(block.replace("../inventory.yaml", str(ROOT / "rules" / "inventory.yaml")))
    run = run_tests([path], [], MASTER)
    assert run.ok, "\n".join(report(run))
