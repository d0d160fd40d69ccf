"""Fixtures for the fault-injection suite: a private Mosquitto with persistence, and a rule set
in which every test message yields exactly one decision (an alert keyed by its SKU).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto

ONE_ALERT_PER_SKU = """\
rules:
  - id: counted
    description: Every stock message of the fault suite yields one alert, keyed by its SKU.
    when:
      stock: kind == "stock" and on_hand >= 0
    then:
      - alert:
          severity: info
          message: "{stock.sku} seen"
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(directory=tmp_path / "mosquitto") as running:
        yield running


@pytest.fixture
def counted_rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules" / "counted.yaml"
    path.parent.mkdir()
    path.write_text(ONE_ALERT_PER_SKU, encoding="utf-8")
    return path
