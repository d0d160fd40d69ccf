"""What the dead-letters pages show, as pure functions: the rows a reason or topic filter keeps
(newest first), and each payload as text people can read without it running anywhere: UTF-8
text, or hex when it is not, cut to `PREVIEW_CHARS` in the list (the page escapes it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from agent.http.web.views import when

PREVIEW_CHARS = 120
LIST_LIMIT = 500
FULL_CHARS = 65_536  # the detail page shows this much of a payload


@dataclass(frozen=True, slots=True)
class LetterFilters:
    """`reason` and `topic`: parts of the text to find (case-insensitive); empty means any."""

    reason: str = ""
    topic: str = ""

    @classmethod
    def of(cls, query: Mapping[str, Sequence[str]]) -> LetterFilters:
        reason = (query.get("reason") or [""])[0].strip()
        topic = (query.get("topic") or [""])[0].strip()
        return cls(reason[:200], topic[:200])

    def query(self) -> str:
        return urlencode([(k, v) for k, v in (("reason", self.reason), ("topic", self.topic)) if v])

    def keeps(self, row: Mapping[str, Any]) -> bool:
        reason, topic = str(row.get("reason") or ""), str(row.get("topic") or "")
        return self.reason.lower() in reason.lower() and self.topic.lower() in topic.lower()


def letters(rows: Iterable[Mapping[str, Any]], filters: LetterFilters) -> list[dict[str, Any]]:
    kept = [row for row in rows if filters.keeps(row)]
    kept.sort(key=lambda row: -int(row.get("id") or 0))
    return [letter(row, PREVIEW_CHARS) for row in kept[:LIST_LIMIT]]


def letter(row: Mapping[str, Any], chars: int = FULL_CHARS) -> dict[str, Any]:
    payload = bytes(row.get("payload") or b"")
    text, encoding = readable(payload)
    return {
        "id": row.get("id"),
        "received": when(row.get("received_at")),
        "topic": str(row.get("topic") or ""),
        "reason": str(row.get("reason") or ""),
        "size": len(payload),
        "encoding": encoding,
        "payload": text[:chars],
        "cut": len(text) > chars,
    }


def readable(payload: bytes) -> tuple[str, str]:
    """(the payload as text, "text" or "hex")."""
    try:
        return payload.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return payload.hex(" ", 1), "hex"


def ids_of(values: Sequence[str]) -> list[int]:
    """The form's `id` fields as ids; anything else is left out."""
    return sorted({int(v) for v in values if v.isdigit() and len(v) <= 18})
