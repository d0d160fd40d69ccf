"""The rule watcher on a real folder: edits, new and deleted files are noticed; tests/ is not."""

from __future__ import annotations

import queue
from pathlib import Path

from agent.adapters.rulewatch import RuleWatcher, snapshot


def test_an_edit_a_new_file_and_a_deletion_are_each_reported_once(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "tests").mkdir(parents=True)
    (rules / "a.yaml").write_text("rules: []\n", encoding="utf-8")
    seen: queue.Queue[str] = queue.Queue()
    watcher = RuleWatcher([rules], 0.05, seen.put)
    watcher.start()
    try:
        (rules / "a.yaml").write_text("rules: [] # edited\n", encoding="utf-8")
        assert seen.get(timeout=5) == "file change: a.yaml"
        (rules / "b.yml").write_text("rules: []\n", encoding="utf-8")
        assert seen.get(timeout=5) == "file change: b.yml"
        (rules / "a.yaml").unlink()
        assert seen.get(timeout=5) == "file change: a.yaml"
        assert seen.empty()
    finally:
        watcher.stop()


def test_rule_tests_and_other_files_are_not_rule_files(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text("tests: []\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    assert snapshot([tmp_path]) == frozenset()
    assert snapshot([tmp_path / "missing"]) == frozenset()
