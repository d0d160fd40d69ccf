"""Rule test files (`rules/tests/*.yaml`): timed messages in, expected decisions out.

Parsed and checked here, with `file:line: test: reason` for anything wrong; run by
`agent/ruletest/run.py`. The format is documented in docs/rules.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from agent.errors import ConfigError, RuleProblem
from agent.rulebook.timing import parse_duration
from agent.rulebook.yamlsrc import LineList, LineMap, YamlProblem, load_yaml
from agent.ruletest.settings import check_overrides

DEFAULT_START: Final = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday, start of a shift
FILE_KEYS: Final = frozenset({"rules", "masterdata", "settings", "start", "tick", "tests"})
TEST_KEYS: Final = frozenset({"name", "input", "expect", "absent", "until", "tick"})
EXPECT_KEYS: Final = frozenset({"actions", "alerts", "published", "notified"})
INPUT_KEYS: Final = frozenset({"at", "topic", "payload"})
TIME_KEYS: Final = frozenset({"at", "resolved_at"})  # durations after `start` in expectations


@dataclass(frozen=True, slots=True)
class Input:
    at_s: float
    topic: str
    payload: bytes
    line: int


@dataclass(frozen=True, slots=True)
class Expected:
    """One expected (or forbidden) decision: any subset of its fields; `at` in seconds."""

    fields: Mapping[str, Any]
    line: int


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    inputs: tuple[Input, ...]
    expect: Mapping[str, tuple[Expected, ...]]
    absent: Mapping[str, tuple[Expected, ...]]
    until_s: float
    line: int
    tick_s: float | None = None  # this test's own scheduler tick (default: the file's)


@dataclass(frozen=True, slots=True)
class TestFile:
    path: Path
    rule_paths: tuple[Path, ...]  # empty: the configured rules folder
    masterdata: Mapping[str, Mapping[str, Mapping[str, Any]]]
    start: datetime
    tick_s: float | None  # None: the settings' `rules.tick_s`, as the daemon ticks
    tests: tuple[RuleTest, ...]
    # `settings:` keys over the settings `rules test` runs on (or over the file it names)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    settings_file: Path | None = None


@dataclass
class _Problems:
    file: str
    found: list[RuleProblem] = field(default_factory=list)

    def add(self, line: int, test: str, reason: str, hint: str = "") -> None:
        self.found.append(RuleProblem(self.file, line, test, reason, hint))


def parse_test_file(path: Path, text: str) -> tuple[TestFile | None, list[RuleProblem]]:
    """The test file, or the problems that stop it from running (all of them)."""
    problems = _Problems(str(path))
    try:
        document = load_yaml(text)
    except YamlProblem as exc:
        problems.add(exc.line, "", exc.reason)
        return None, problems.found
    if not isinstance(document, LineMap) or not isinstance(document.get("tests"), LineList):
        problems.add(1, "", "a rule test file is a mapping with a `tests:` list")
        return None, problems.found
    for key in document:
        if key not in FILE_KEYS:
            problems.add(document.lines[key], "", f"unknown key {key!r}", _known(FILE_KEYS))
    rule_paths = _rule_paths(path, document, problems)
    masterdata = _masterdata(document, problems)
    start = _start(document, problems)
    tick_s = _duration(document, "tick", 0.0, "", problems) if "tick" in document else None
    if tick_s is not None and tick_s <= 0:
        problems.add(document.lines["tick"], "", "tick must be longer than 0s")
    tests: list[RuleTest] = []
    names: set[str] = set()
    entries: LineList = document["tests"]
    for line, entry in zip(entries.lines, entries, strict=True):
        test = _test(entry, line, problems)
        if test is None:
            continue
        if test.name in names:
            problems.add(line, test.name, "duplicate test name")
        names.add(test.name)
        tests.append(test)
    settings_file, overrides = _settings(path, document, problems)
    if problems.found:
        return None, problems.found
    assert start is not None
    found = TestFile(
        path, rule_paths, masterdata, start, tick_s, tuple(tests), overrides, settings_file
    )
    return found, []


def _known(keys: frozenset[str]) -> str:
    return "known keys: " + ", ".join(sorted(keys))


def _rule_paths(path: Path, document: LineMap, problems: _Problems) -> tuple[Path, ...]:
    value = document.get("rules")
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        problems.add(document.lines["rules"], "", "rules: a list of rule files or folders")
        return ()
    return tuple((path.parent / item).resolve() for item in items)


def _masterdata(document: LineMap, problems: _Problems) -> dict[str, dict[str, dict[str, Any]]]:
    value = document.get("masterdata") or {}
    out: dict[str, dict[str, dict[str, Any]]] = {"items": {}, "machines": {}, "calendars": {}}
    if not isinstance(value, dict):
        problems.add(document.lines["masterdata"], "", "masterdata: a mapping of items, machines")
        return out
    for table, subjects in value.items():
        line = value.lines[table] if isinstance(value, LineMap) else 1
        if table not in out:
            problems.add(
                line, "", f"masterdata: unknown table {table!r}", "items, machines or calendars"
            )
            continue
        if not isinstance(subjects, dict) or not all(
            isinstance(fields, dict) for fields in subjects.values()
        ):
            problems.add(line, "", f"masterdata.{table}: a mapping of id -> fields")
            continue
        out[table] = {str(k): dict(v) for k, v in (subjects or {}).items()}
    return out


def _settings(
    path: Path, document: LineMap, problems: _Problems
) -> tuple[Path | None, Mapping[str, Mapping[str, Any]]]:
    """`settings:` a settings file (relative to the test file), or a mapping of sections to keys
    (`inventory: {on_order_source: agent}`), with the file under `file:` if any."""
    value = document.get("settings")
    if value is None:
        return None, {}
    line = document.lines["settings"]
    if isinstance(value, str):
        return (path.parent / value).resolve(), {}
    shape = "settings: a settings file, or a mapping of sections ([inventory], ...) to keys"
    if not isinstance(value, dict):
        problems.add(line, "", shape)
        return None, {}
    file = value.get("file")
    if file is not None and not isinstance(file, str):
        problems.add(line, "", "settings.file: the path of a settings file (TOML)")
        file = None
    sections = {k: v for k, v in value.items() if k != "file"}
    if not all(isinstance(table, dict) for table in sections.values()):
        problems.add(line, "", shape)
        return None, {}
    try:
        check_overrides(sections)
    except ConfigError as exc:
        problems.add(line, "", f"settings: {exc}")
    return ((path.parent / file).resolve() if file else None), {
        str(k): dict(v) for k, v in sections.items()
    }


def _start(document: LineMap, problems: _Problems) -> datetime | None:
    value = document.get("start", DEFAULT_START)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.add(document.lines["start"], "", f"start: not an ISO 8601 time: {value!r}")
            return None
    if not isinstance(value, datetime):
        problems.add(document.lines["start"], "", "start: an ISO 8601 time")
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _duration(
    entry: LineMap, key: str, default: float, test: str, problems: _Problems
) -> float | None:
    if key not in entry:
        return default
    try:
        return parse_duration(entry[key])
    except ValueError as exc:
        problems.add(entry.lines[key], test, f"{key}: {exc}")
        return None


def _test(entry: Any, line: int, problems: _Problems) -> RuleTest | None:
    if not isinstance(entry, LineMap) or not isinstance(entry.get("name"), str):
        problems.add(line, "", "each test is a mapping with a `name`")
        return None
    name = entry["name"]
    before = len(problems.found)
    for key in entry:
        if key not in TEST_KEYS:
            problems.add(entry.lines[key], name, f"unknown key {key!r}", _known(TEST_KEYS))
    inputs = _inputs(entry, name, problems)
    expect = _expectations(entry, "expect", name, problems)
    absent = _expectations(entry, "absent", name, problems)
    last = max((i.at_s for i in inputs), default=0.0)
    until = _duration(entry, "until", last, name, problems)
    tick = _duration(entry, "tick", 0.0, name, problems)
    if "tick" in entry and tick is not None and tick <= 0:
        problems.add(entry.lines["tick"], name, "tick must be longer than 0s")
    if len(problems.found) != before or until is None:
        return None
    return RuleTest(name, tuple(inputs), expect, absent, max(until, last), line, tick or None)


def _inputs(entry: LineMap, name: str, problems: _Problems) -> list[Input]:
    raw = entry.get("input", [])
    if not isinstance(raw, LineList):
        problems.add(entry.lines.get("input", entry.line), name, "input: a list of messages")
        return []
    inputs: list[Input] = []
    for line, item in zip(raw.lines, raw, strict=True):
        if not isinstance(item, LineMap) or not isinstance(item.get("topic"), str):
            problems.add(line, name, "input: each message is {at, topic, payload}")
            continue
        for key in item:
            if key not in INPUT_KEYS:
                problems.add(line, name, f"input: unknown key {key!r}", _known(INPUT_KEYS))
        at = _duration(item, "at", 0.0, name, problems)
        payload = item.get("payload", {})
        if isinstance(payload, str):
            body = payload.encode()
        else:
            body = json.dumps(payload, default=str).encode()
        if at is not None:
            inputs.append(Input(at, item["topic"], body, line))
    inputs.sort(key=lambda i: i.at_s)
    return inputs


def _expectations(
    entry: LineMap, key: str, name: str, problems: _Problems
) -> dict[str, tuple[Expected, ...]]:
    block = entry.get(key)
    if block is None:
        return {}
    if not isinstance(block, LineMap):
        problems.add(entry.lines[key], name, f"{key}: a mapping of actions / alerts lists")
        return {}
    out: dict[str, tuple[Expected, ...]] = {}
    for table, items in block.items():
        line = block.lines[table]
        if table not in EXPECT_KEYS:
            problems.add(line, name, f"{key}: unknown list {table!r}", _known(EXPECT_KEYS))
            continue
        if not isinstance(items, LineList) or not all(isinstance(i, LineMap) for i in items):
            problems.add(line, name, f"{key}.{table}: a list of field mappings")
            continue
        expected: list[Expected] = []
        for item_line, item in zip(items.lines, items, strict=True):
            fields = dict(item)
            try:
                for time_key in TIME_KEYS & fields.keys():
                    fields[time_key] = parse_duration(fields[time_key])
            except ValueError as exc:
                problems.add(item_line, name, f"{key}.{table}: {exc}")
                continue
            expected.append(Expected(fields, item_line))
        out[str(table)] = tuple(expected)
    return out
