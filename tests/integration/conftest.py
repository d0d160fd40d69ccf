"""Fixtures for integration tests: real servers, private to each test.

`broker` is a Mosquitto on its own port and persistence directory, stopped even when a test fails;
`store` opens the test's SQLite file (`tmp_path/agent.db`, where the agent under test writes);
`publisher` publishes to the broker like a gateway (QoS 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.support.live import Publisher
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(directory=tmp_path / "mosquitto") as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/agent.db")
    yield opened
    opened.close()


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[Publisher]:
    sender = Publisher(broker)
    yield sender
    sender.close()
