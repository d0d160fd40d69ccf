"""Fixtures for integration tests: real servers, private to each test.

`broker` is a Mosquitto on its own port and persistence directory, stopped even when a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(directory=tmp_path / "mosquitto") as running:
        yield running
