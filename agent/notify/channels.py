"""Sending one message to one channel through apprise (email, Slack, Teams, ntfy, JSON, ...).

apprise does not retry and reports failure as a bool: the reason comes from its log, and the
outbox decides about retries. URLs may carry `${NAME}` placeholders, read from the environment.
apprise (its plugins: 4 MB, 45 ms) is imported at the first send, so an agent whose routes send
nothing but MQTT never loads it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Schemes that post to a web server we can hand an id header to (`+Header=value` in apprise).
_HEADER_SCHEMES = ("json", "jsons", "form", "forms", "xml", "xmls")
ID_HEADER = "X-Factory-Agent-Notification"


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one send went: `permanent` failures are not worth retrying (the URL is unusable)."""

    ok: bool
    error: str = ""
    permanent: bool = False


def expand(url: str, environ: Mapping[str, str] | None = None) -> str:
    """`${NAME}` replaced by the variable's value (URL-quoted); KeyError names a missing one."""
    env = os.environ if environ is None else environ

    def value(found: re.Match[str]) -> str:
        return quote(env[found[1]], safe="")

    return _PLACEHOLDER.sub(value, url)


def with_id_header(url: str, notification_id: str) -> str:
    """Web-hook URLs get a header carrying the notification's id, so receivers can drop the
    (rare) duplicate that a crash between sending and recording can cause."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _HEADER_SCHEMES:
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}+{ID_HEADER}={quote(notification_id, safe='')}"


def send(channel: str, url: str, title: str, body: str, notification_id: str) -> Delivery:
    """Send through apprise; never raises for a delivery problem, never logs the URL."""
    try:
        target = with_id_header(expand(url), notification_id)
    except KeyError as exc:
        return Delivery(False, f"channel {channel}: environment variable {exc.args[0]} is not set")
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(target):
        return Delivery(
            False, f"channel {channel}: apprise does not understand its URL", permanent=True
        )
    with apprise.LogCapture(level=logging.WARNING) as captured:
        try:
            result = notifier.notify(title=title, body=body)
        except Exception as exc:  # a plugin's bug must cost one attempt, not the sender
            return Delivery(False, f"channel {channel}: {type(exc).__name__}: {exc}")
    if result:
        return Delivery(True)
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    reason = lines[-1].split(" - ", 2)[-1] if lines else "apprise reported a failure"
    return Delivery(False, f"channel {channel}: {reason}")
