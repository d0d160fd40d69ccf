"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    """A test that runs the CLI in-process configures structlog (an info-level filter): put the
    defaults back after each test, so a later test's `capture_logs` sees every level."""
    yield
    structlog.reset_defaults()
