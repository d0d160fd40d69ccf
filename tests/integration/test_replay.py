"""`replay` on the settings the daemon runs with: the batch size does not change the answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.app.policy import Policy, load_policy
from agent.app.replay import replay_with
from agent.config import Settings
from agent.decisions.report import record
from agent.store.repository import Store
from tests.integration.test_cli import cli
from tests.support.agent_process import REPO


def settings(**sections: dict[str, Any]) -> Settings:
    paths = {
        "rules": {"path": str(REPO / "rules")},
        "masterdata": {
            "items": str(REPO / "config/items.yaml"),
            "machines": str(REPO / "config/machines.yaml"),
        },
    }
    for name, values in sections.items():
        paths[name] = {**paths.get(name, {}), **values}
    return Settings.model_validate(paths)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~3,000 messages of a simulated plant: stock, receipts, machines over a few days."""
    path = tmp_path_factory.mktemp("replay") / "plant.jsonl"
    result = cli(
        "simulate", "--offline", "--record", str(path), "--messages", "3000",
        "--speed", "3600", "--rate", "20", "--start", "2026-11-02T06:00:00+00:00", "--seed", "7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(settings())


def replayed(recording: Path, policy: Policy, config: Settings) -> list[dict[str, Any]]:
    with Store.open("sqlite://") as store:
        result = replay_with(recording, policy, store, config)
    assert result.dead_letters == 0
    return [{"created": c.created, **record(c.table, c.row)} for c in result.changes]


def test_one_message_batches_decide_as_a_thousand(recording: Path, policy: Policy) -> None:
    one = replayed(recording, policy, settings(ingest={"batch_size": 1}))
    many = replayed(recording, policy, settings(ingest={"batch_size": 1000}))
    assert sum(c["created"] for c in one) >= 10  # the stream decides something
    assert one == many
