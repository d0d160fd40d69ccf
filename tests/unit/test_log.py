"""Logging: JSON lines off a terminal, readable lines on one, filtered by level, reconfigurable."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from agent.errors import ConfigError
from agent.log import configure_logging


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_mode_writes_one_parseable_object_per_line_with_the_fields() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    log = structlog.get_logger("agent.app.daemon")
    log.info("reorder_opened", sku="BRG-6204", quantity=100)
    log.warning("dead_letter", topic="factory/p1/stock/X", reason="not JSON")
    first, second = lines(stream)
    assert first["event"] == "reorder_opened"
    assert (first["level"], first["logger"]) == ("info", "agent.app.daemon")
    assert (first["sku"], first["quantity"]) == ("BRG-6204", 100)
    stamp = datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert (second["event"], second["level"]) == ("dead_letter", "warning")


def test_events_below_the_level_are_dropped() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    log = structlog.get_logger("agent.x")
    log.debug("noise")
    log.info("noise")
    log.error("store_failed", error="disk full")
    assert [line["event"] for line in lines(stream)] == ["store_failed"]


def test_auto_writes_json_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream)
    structlog.get_logger("agent.x").info("agent_starting", rules=7)
    assert lines(stream)[0]["rules"] == 7


def test_auto_writes_readable_lines_on_a_terminal() -> None:
    stream = Terminal()
    configure_logging("info", "auto", stream)
    structlog.get_logger("agent.x").info("agent_starting", rules=7)
    text = stream.getvalue()
    assert "agent_starting" in text and "rules" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_console_format_is_readable_even_off_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("debug", "console", stream)
    structlog.get_logger("agent.x").debug("message_out_of_order", topic="t")
    text = stream.getvalue()
    assert "message_out_of_order" in text and "topic=t" in text
    assert "\x1b[" not in text  # no colour codes into a file


def test_configuring_again_switches_stream_level_and_format() -> None:
    first, second = io.StringIO(), io.StringIO()
    log = structlog.get_logger("agent.x")  # bound before both calls, as module loggers are
    configure_logging("info", "json", first)
    log.info("one")
    configure_logging("debug", "json", second)
    log.debug("two")
    assert [line["event"] for line in lines(first)] == ["one"]
    assert [line["event"] for line in lines(second)] == ["two"]


def test_standard_library_warnings_share_the_format_and_info_is_left_out() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    configure_logging("info", "json", stream)  # twice: still one handler, one line per record
    library = logging.getLogger("paho.mqtt.client")
    library.info("chatter")
    library.warning("connection lost: %s", "timeout")
    assert lines(stream) == [
        {
            "event": "connection lost: timeout",
            "level": "warning",
            "logger": "paho.mqtt.client",
            "timestamp": lines(stream)[0]["timestamp"],
        }
    ]


def test_exceptions_are_logged_without_local_variables() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    password = "hunter2"
    try:
        raise RuntimeError("broker refused")
    except RuntimeError:
        structlog.get_logger("agent.x").exception("connect_failed")
    [line] = lines(stream)
    assert line["exception"][0]["exc_value"] == "broker refused"
    assert password not in stream.getvalue()


def test_an_unknown_level_or_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"log\.level"):
        configure_logging("verbose", "json", io.StringIO())
    with pytest.raises(ConfigError, match=r"log\.format"):
        configure_logging("info", "xml", io.StringIO())
