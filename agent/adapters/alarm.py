"""Alarms about the agent itself (database down, engine worker lost), sent where no database is
needed: an error event in the log and a QoS 1 message on `{prefix}/{site}/agent/alerts`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Publish = Callable[[str, bytes], None]
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def alarm_topic(topic_prefix: str, site: str) -> str:
    return f"{topic_prefix}/{site}/agent/alerts"


def raise_alarm(
    publish: Publish | None,
    topic: str,
    event: str,
    reason: str,
    *,
    level: str = "error",
    **context: Any,
) -> None:
    """Log `event` (an error unless `level` says otherwise) and publish it; a failed publish is
    logged, never raised."""
    log.log(_LEVELS.get(level, logging.ERROR), event, reason=reason, alarm=True, **context)
    if publish is None:
        return
    body = {
        "event": event,
        "reason": reason,
        "at": datetime.now(UTC).isoformat(),
        "source": "factory-agent",
        **context,
    }
    try:
        publish(topic, json.dumps(body, default=str).encode())
    except Exception as exc:  # an alarm must never take the agent down
        log.error("alarm_publish_failed", alarm_event=event, error=str(exc))
