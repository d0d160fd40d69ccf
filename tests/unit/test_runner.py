"""The runner's loop on a fake unit of work: parts split at tick instants, stopping honoured."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.app.commands import Command
from agent.app.pipeline import Pipeline, Raw
from agent.app.runner import Runner
from agent.app.ticks import TickSchedule
from agent.config import Settings
from agent.model import Fact, Outcome, TrackChanges
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.store.repository import StoredChange
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
PRESS = "factory/plant1/machine/press-01/telemetry"
HOT = """\
rules:
  - id: hot
    when:
      m: kind == "machine" and temp_c > max_temp_c
    for: 1m
    then:
      - alert: {message: "{m.machine} hot"}
"""


class Work:
    """Records each commit; answers None (stopping) from commit number `stop_at` on."""

    def __init__(self, stop_at: int = 10**9) -> None:
        self.commits: list[tuple[int, int]] = []  # ("hot" decisions, digests) per commit
        self.taken: list[list[float]] = []  # the temp_c of the messages each commit took
        self.stop_at = stop_at

    def commit(
        self,
        outcome: Outcome,
        facts: Sequence[Fact],
        tracks: TrackChanges,
        processed: Sequence[str],
    ) -> list[StoredChange] | None:
        if len(self.commits) >= self.stop_at:
            return None
        hot = [d for d in outcome.decisions if getattr(d, "rule_id", "") == "hot"]
        self.commits.append((len(hot), len(processed)))
        self.taken.append([float(str(m.fields["temp_c"])) for m in outcome.taken])
        return []

    def transition(self, command: Command, at: datetime) -> dict[str, Any] | None:
        raise AssertionError("no commands here")


def runner(tmp_path: Path, work: Work) -> Runner:
    masterdata = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    (tmp_path / "hot.yaml").write_text(HOT, encoding="utf-8")
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    ruleset = load_rules([tmp_path / "hot.yaml"], schema)
    pipeline = Pipeline.of(ruleset, masterdata, Settings())
    return Runner(pipeline, work, TickSchedule(30, T0))


def raw(seconds: float, temp_c: float) -> Raw:
    payload = json.dumps({"temp_c": temp_c}).encode()
    return Raw(PRESS, payload, T0 + timedelta(seconds=seconds))


def test_a_batch_across_a_tick_instant_is_committed_in_parts_around_the_tick(
    tmp_path: Path,
) -> None:
    work = Work()
    # hot from 0 s: the `for: 1m` is due at the tick at 60 s, before the message at 60 s
    batch = [raw(0, 90), raw(20, 91), raw(60, 92), raw(70, 93)]
    fed = runner(tmp_path, work).feed(batch, ["a", "b", "c", "d"])
    assert fed is not None
    # part [0 s, 20 s] (pending); the tick at 30 s changes nothing, no commit; the tick at 60 s
    # fires; part [60 s, 70 s] repeats the firing alert twice, with its two digests
    assert work.commits == [(0, 2), (1, 0), (2, 2)]
    fired = [d for d in fed.decisions if getattr(d, "rule_id", "") == "hot"]
    assert [d.at for d in fired] == [T0 + timedelta(seconds=s) for s in (60, 60, 70)]


def test_a_unit_of_work_that_is_stopping_ends_the_batch_unfinished(tmp_path: Path) -> None:
    work = Work(stop_at=1)
    fed = runner(tmp_path, work).feed([raw(0, 90), raw(40, 91), raw(80, 92)])
    assert fed is None
    assert work.commits == [(0, 0)]  # the first part only: the rest is not acknowledged


def test_each_commit_carries_the_messages_its_own_part_took(tmp_path: Path) -> None:
    """What the daemon's readings history is made of is committed with its part, not later;
    a tick's commit carries no message, and a dead letter is not taken."""
    work = Work()
    garbage = Raw(PRESS, b"not json", T0 + timedelta(seconds=10))
    fed = runner(tmp_path, work).feed([raw(0, 90), garbage, raw(20, 91), raw(60, 92)])
    assert fed is not None and len(fed.rejected) == 1
    assert work.taken == [[90.0, 91.0], [], [92.0]]
