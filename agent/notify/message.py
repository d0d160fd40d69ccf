"""The text people receive: a short title and a few phone-width lines per alert or action.

Each message names the machine or SKU, the value against its limit, the rule, and how to
acknowledge or close it (the command line and the MQTT command). Pure string work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

TITLE_MAX = 120

_KIND_WORDS = {"reorder": "Reorder", "work_order": "Work order", "idle_capacity": "Idle capacity"}
_DETAILS = ("priority", "supplier", "cost")
_SUBJECT_WORDS = {"reorder": "SKU", "work_order": "Machine", "idle_capacity": "Machine"}


def render(
    table: str, row: Mapping[str, Any], event: str, topic_prefix: str, public_url: str = ""
) -> tuple[str, str]:
    """(title, body) for one alert or action row and the event that is told (firing, ...);
    with the console's `public_url`, the body ends with a link to the row on its page."""
    title, body = (_alert if table == "alert" else _action)(row, event, topic_prefix)
    if public_url:
        body += f"\nOpen: {console_link(public_url, table, int(row['id']))}"
    return title, body


def console_link(public_url: str, table: str, id: int) -> str:
    """The row's own page on the console: what decided it, and for an alert its episodes."""
    return f"{public_url.rstrip('/')}/{table}s/{id}"


def render_group(items: Sequence[tuple[str, str]], route: str) -> tuple[str, str]:
    """Several notifications of one route as one message: every title, then every body."""
    title = _cut(f"{len(items)} notifications ({route})")
    titles = "\n".join(f"- {item_title}" for item_title, _ in items)
    bodies = "\n\n".join(f"{item_title}\n{body}" for item_title, body in items)
    return title, f"{titles}\n\n{bodies}"


def limits(matched: Mapping[str, Any]) -> list[str]:
    """`value vs limit` phrases from the matched facts: metrics beyond their max_/min_ limit
    (or all limited metrics if none is beyond), and stock against its reorder point."""
    crossed: list[str] = []
    other: list[str] = []
    for fields in matched.values():
        if not isinstance(fields, Mapping):
            continue
        for name, limit in fields.items():
            if not isinstance(limit, int | float) or isinstance(limit, bool):
                continue
            for prefix, beyond, sign in (("max_", _above, ">"), ("min_", _below, "<")):
                if not name.startswith(prefix):
                    continue
                metric = name[len(prefix) :]
                for shown in (f"{metric}_avg", metric):
                    value = fields.get(shown)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        over = beyond(value, limit)
                        phrase = (
                            f"{shown} {_num(value)} {sign if over else 'vs'} {name} {_num(limit)}"
                        )
                        (crossed if over else other).append(phrase)
                        break
        point = fields.get("reorder_point")
        if isinstance(point, int | float) and "on_hand" in fields:
            stock = f"on_hand {_num(fields['on_hand'])}"
            if "projected" in fields:
                stock += f", projected {_num(fields['projected'])}"
            crossed.append(f"{stock}, reorder_point {_num(point)}")
    return crossed or other


def ack_hint(table: str, id: int, site: str, topic_prefix: str, command: str) -> str:
    payload = json.dumps({"command": command, "type": table, "id": id, "by": "NAME"})
    return (
        f"{command.capitalize()}: factory-agent {command} {table} {id} --by NAME\n"
        f"or MQTT {topic_prefix}/{site}/agent/command {payload}"
    )


def _alert(row: Mapping[str, Any], event: str, topic_prefix: str) -> tuple[str, str]:
    id, site, subject = int(row["id"]), str(row["site"]), str(row["subject"])
    severity = str(row.get("severity", "")).upper()
    tag = "RESOLVED" if event == "resolved" else severity
    again = " (again)" if event == "repeat" else ""
    first = str(row.get("message", ""))
    latest = row.get("last_message") if event == "repeat" else None
    shown = str(latest) if latest else first  # a repeat tells what holds now, then how it began
    matched = (row.get("last_matched") if latest else None) or row.get("matched") or {}
    title = _cut(f"[{tag}] {subject}: {shown}{again}")
    lines = [f"{subject} at {site}: {shown}"]
    lines.extend(limits(matched))
    if shown != first:
        lines.append(f"First: {first}")
    count = int(row.get("count") or 1)
    seen = f", seen {count}×" if count > 1 else ""
    since = str(row.get("first_seen") or "")[:16].replace("T", " ")
    lines.append(f"Rule {row.get('rule_id')} · alert #{id} · since {since} UTC{seen}")
    if row.get("previous_id"):
        lines.append(f"Fired before as alert #{row['previous_id']}")
    if event == "resolved":
        by = row.get("resolved_by") or "the rules"
        lines.append(f"Resolved by {by}" + (f": {row['note']}" if row.get("note") else ""))
    else:
        lines.append(ack_hint("alert", id, site, topic_prefix, "ack"))
    return title, "\n".join(lines)


def _action(row: Mapping[str, Any], event: str, topic_prefix: str) -> tuple[str, str]:
    id, site, subject = int(row["id"]), str(row["site"]), str(row["subject"])
    kind = str(row.get("kind"))
    params: Mapping[str, Any] = row.get("params") or {}
    what = _KIND_WORDS.get(kind, kind)
    detail = ""
    if kind == "reorder":
        unit = f" {params['unit']}" if params.get("unit") else ""
        detail = f"order {_num(params.get('quantity'))}{unit}"
    elif kind == "work_order":
        detail = str(params.get("task") or "")
    status = "" if event == "opened" else f" {row.get('status')}"
    title = _cut(f"[{what.upper()}{status.upper()}] {subject}: {detail}".rstrip(": "))
    lines = [f"{_SUBJECT_WORDS.get(kind, 'Subject')} {subject} at {site}: {what.lower()} {detail}"]
    extras = [
        f"{name} {params[name]}" for name in ("priority", "supplier", "cost") if name in params
    ]
    if extras:
        lines.append(", ".join(extras))
    lines.extend(limits(row.get("matched") or {}))
    lines.append(f"Rule {row.get('rule_id')} · action #{id}")
    if row.get("status") in ("open", "acknowledged"):
        lines.append(ack_hint("action", id, site, topic_prefix, "done"))
    return title, "\n".join(lines)


def _above(value: float, limit: float) -> bool:
    return value > limit


def _below(value: float, limit: float) -> bool:
    return value < limit


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1] + "…"
