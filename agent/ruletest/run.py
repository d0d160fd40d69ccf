"""`factory-agent rules test`: run rule test files on a simulated clock and compare decisions.

Each test gets a fresh core and an in-memory store (the daemon's own dedup and lifecycle), its
messages at their simulated times and scheduler ticks in between; a failure prints expected vs got.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.app.pipeline import Pipeline, Raw
from agent.app.replay import StoreWork
from agent.app.runner import Runner
from agent.app.ticks import TickSchedule
from agent.config import Settings
from agent.decisions.report import record
from agent.errors import ConfigError, MasterDataError, RuleError, RuleProblem
from agent.model import Decision, NotifyDecision, PublishDecision
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.rulebook.rules import RuleSet
from agent.ruletest.settings import resolve_settings
from agent.ruletest.testfile import Expected, RuleTest, TestFile, parse_test_file
from agent.store.repository import Store, json_friendly
from agent.world.masterdata import MasterData
from agent.world.shifts import parse_calendars


@dataclass
class TestResult:
    file: str
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Run:
    results: list[TestResult] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.results)


def test_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in path.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
        else:
            found.append(path)
    return sorted(set(found))


def run_tests(
    paths: Sequence[Path],
    default_rules: Sequence[Path],
    masterdata: MasterData,
    settings: Settings | None = None,
) -> Run:
    """Run every test of every file on `settings` (default: the defaults) with each file's
    `settings:` over them; problems in a file (or its rules) are reported, not raised."""
    base = settings or Settings()
    run = Run()
    started = time.perf_counter()
    files = test_files(paths)
    if not files:
        shown = ", ".join(str(p) for p in paths)
        run.problems.append(RuleProblem(shown, 0, "", "no rule test files (*.yaml) found"))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            run.problems.append(RuleProblem(str(path), 0, "", f"cannot read the file: {exc}"))
            continue
        parsed, problems = parse_test_file(path, text)
        run.problems.extend(problems)
        if parsed is None:
            continue
        try:
            used = resolve_settings(base, parsed.settings_file, parsed.settings)
        except ConfigError as exc:
            run.problems.append(RuleProblem(str(path), 0, "", f"settings: {exc}"))
            continue
        try:
            data = _merged(masterdata, parsed.masterdata, str(path))
        except MasterDataError as exc:
            run.problems.append(RuleProblem(str(path), 0, "", str(exc)))
            continue
        schema = build_schema(data.item_fields(), data.machine_fields())
        try:
            ruleset = load_rules(list(parsed.rule_paths or default_rules), schema)
        except RuleError as exc:  # once, though several test files use the broken rule file
            run.problems.extend(p for p in exc.problems if p not in run.problems)
            continue
        for test in parsed.tests:
            run.results.append(run_test(parsed, test, ruleset, data, used))
    run.seconds = time.perf_counter() - started
    return run


def _merged(
    base: MasterData, extra: Mapping[str, Mapping[str, Mapping[str, Any]]], source: str = ""
) -> MasterData:
    items = {k: dict(v) for k, v in base.items.items()}
    machines = {k: dict(v) for k, v in base.machines.items()}
    for table, target in (("items", items), ("machines", machines)):
        for subject, fields in extra.get(table, {}).items():
            target.setdefault(subject, {}).update(fields)
    calendars = {**base.calendars, **parse_calendars(extra.get("calendars") or None, source)}
    return MasterData(items, machines, calendars)


def run_test(
    file: TestFile,
    test: RuleTest,
    ruleset: RuleSet,
    masterdata: MasterData,
    settings: Settings | None = None,
) -> TestResult:
    """One test: its messages and the ticks between them, then its expectations checked."""
    result = TestResult(str(file.path), test.name)
    settings = settings or Settings()
    pipeline = Pipeline.of(ruleset, masterdata, settings)
    extra: list[Decision] = []
    end = file.start + timedelta(seconds=test.until_s)
    with Store.open("sqlite://") as store:
        runner = Runner(
            pipeline,
            StoreWork(store, settings.ingest.dedup_window),
            TickSchedule(test.tick_s or file.tick_s or settings.rules.tick_s, file.start),
            settings.commands.allowed_by,
        )
        try:
            for item in test.inputs:
                at = file.start + timedelta(seconds=item.at_s)
                fed = runner.feed([Raw(item.topic, item.payload, at)])
                assert fed is not None  # the store here never asks to stop: it raises
                for rejected in fed.rejected + fed.refused:
                    reason = rejected.reason
                    result.failures.append(f"input at line {item.line} was refused: {reason}")
                extra.extend(fed.decisions)
            fed = runner.tick_until(end)
            assert fed is not None
            extra.extend(fed.decisions)
        finally:
            pipeline.core.close()
        got = {
            "actions": [_record("action", row, file.start) for row in reversed(store.actions())],
            "alerts": [_record("alert", row, file.start) for row in reversed(store.alerts())],
            "published": [_extra(d, file.start) for d in extra if isinstance(d, PublishDecision)],
            "notified": [_extra(d, file.start) for d in extra if isinstance(d, NotifyDecision)],
        }
    for table, expected in test.expect.items():
        result.failures.extend(_compare(table, expected, got[table]))
    for table, forbidden in test.absent.items():
        for entry in forbidden:
            hits = [g for g in got[table] if _matches(entry.fields, g)]
            if hits:
                result.failures.append(
                    f"absent.{table} (line {entry.line}): {_show(entry.fields)}\n"
                    f"    but got: {_show(_narrow(hits[0], entry.fields))}"
                )
    return result


def _record(table: str, row: dict[str, Any], start: datetime) -> dict[str, Any]:
    rec = record(table, json_friendly(row))
    rec["at"] = _seconds(rec.get("at"), start)
    rec["subject"] = row.get("subject")
    if table == "alert":
        rec["resolved_at"] = _seconds(json_friendly(row).get("resolved_at"), start)
        # An alert names its subjects too, so `{rule: ..., sku: ...}` can be expected.
        for fields in (row.get("matched") or {}).values():
            for name in ("sku", "machine"):
                if name in fields:
                    rec.setdefault(name, fields[name])
    return rec


def _extra(decision: PublishDecision | NotifyDecision, start: datetime) -> dict[str, Any]:
    rec: dict[str, Any] = {"rule": decision.rule_id, "at": (decision.at - start).total_seconds()}
    if isinstance(decision, PublishDecision):
        rec.update(topic=decision.topic, payload=dict(decision.payload), retain=decision.retain)
        rec.update(decision.payload)
    else:
        rec.update(
            route=decision.route,
            severity=decision.severity,
            message=decision.message,
            key=decision.dedup_key,
        )
    return rec


def _seconds(value: Any, start: datetime) -> float | None:
    if not isinstance(value, str):
        return None
    return (datetime.fromisoformat(value) - start).total_seconds()


def _compare(table: str, expected: Sequence[Expected], got: list[dict[str, Any]]) -> list[str]:
    unused = list(range(len(got)))
    missing: list[Expected] = []
    for entry in expected:
        hit = next((i for i in unused if _matches(entry.fields, got[i])), None)
        if hit is None:
            missing.append(entry)
        else:
            unused.remove(hit)
    if not missing and len(expected) == len(got):
        return []
    keys = sorted({k for entry in expected for k in entry.fields}) or ["kind", "rule", "at"]
    lines = [f"{table}: expected {len(expected)}, got {len(got)}"]
    lines += [f"  - expected (line {e.line}): {_show(e.fields)}" for e in missing]
    lines += [f"  + got (unexpected):  {_show(_narrow(got[i], keys))}" for i in unused]
    if missing and got:
        lines.append("  all got:")
        lines += [f"      {_show(_narrow(g, keys))}" for g in got]
    return ["\n".join(lines)]


def _matches(fields: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    return all(_same(value, got.get(name)) for name, value in fields.items())


def _same(want: Any, have: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return math.isclose(want, have, rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(want, datetime) and isinstance(have, str):
        return want.isoformat() == have
    return bool(want == have)


def _narrow(got: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: got.get(k) for k in keys}


def _show(fields: Mapping[str, Any]) -> str:
    shown = {k: _duration(v) if k in ("at", "resolved_at") else v for k, v in fields.items()}
    return json.dumps(shown, default=str, ensure_ascii=False)


def _duration(seconds: Any) -> Any:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return seconds
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def report(run: Run) -> list[str]:
    """Readable lines: problems, each failed test with its diff, and a summary."""
    lines = [str(problem) for problem in run.problems]
    for result in run.results:
        if result.ok:
            lines.append(f"ok    {result.name}  ({result.file})")
            continue
        lines.append(f"FAIL  {result.name}  ({result.file})")
        lines += ["    " + f.replace("\n", "\n    ") for f in result.failures]
    failed = sum(not r.ok for r in run.results)
    lines.append(
        f"{len(run.results)} tests, {failed} failed, {len(run.problems)} problems "
        f"in {run.seconds:.2f} s"
    )
    return lines
