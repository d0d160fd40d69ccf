"""Reload the input mappings (`ingest.inputs_file`) between two batches, beside the rules.

An edit that does not load keeps the last good mappings and raises one alert with `file:line`;
so does one that needs a topic the agent is not subscribed to (subscriptions are made at start:
restart for a new topic pattern). The next edit that loads resolves the alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import structlog

from agent.ingest.mapping import InputMappings
from agent.ingest.mapping_load import InputsError, load_inputs
from agent.ingest.topics import TopicMap
from agent.model import AlertDecision, AlertResolved, Decision

log = structlog.get_logger(__name__)

INPUTS_ALERT_KEY: Final = "agent/inputs/reload-refused"
INPUTS_RULE: Final = "inputs-reload"
_SHOWN_PROBLEMS: Final = 20


class InputsFile:
    """The inputs file the agent runs with, and what its text was when it last loaded."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._digest = self._read_digest()
        self._refusing = False  # the refusal alert is open

    @property
    def paths(self) -> list[Path]:
        """What the file watcher looks at (the file may appear later)."""
        return [self.path] if self.path is not None else []

    def load(self) -> InputMappings | None:
        """At start: the mappings, or `InputsError` (the agent does not start with a bad file)."""
        self._digest = self._read_digest()
        return load_inputs(self.path)

    def reload(
        self,
        topics: TopicMap,
        subscribed: Callable[[TopicMap], Sequence[str]],
        running: Sequence[str],
        now: datetime,
        why: str,
        rule_set: str,
    ) -> list[Decision]:
        """Swap `topics.inputs` to the file as it is now, if its text changed and it loads with
        the subscriptions `running`; else keep them and say why (an alert)."""
        digest = self._read_digest()
        if digest == self._digest:  # as it runs: back to it after a refused edit resolves
            return self._resolved(now, rule_set) if self._refusing else []
        try:
            mappings = load_inputs(self.path)
        except InputsError as exc:
            problems = [str(problem) for problem in exc.problems]
            return [self._refused(problems, why, rule_set, now)]
        missing = [f for f in subscribed(TopicMap(topics.prefix, mappings)) if f not in running]
        if missing:
            reason = (
                f"{self.path}: new topic patterns need a restart to be subscribed: "
                f"{', '.join(missing)}"
            )
            return [self._refused([reason], why, rule_set, now)]
        self._digest = digest
        topics.inputs = mappings if mappings else None
        log.info("inputs_reloaded", file=str(self.path), mappings=len(mappings or ()), why=why)
        return self._resolved(now, rule_set)

    def _resolved(self, now: datetime, rule_set: str) -> list[Decision]:
        self._refusing = False
        what = "the input mappings load"
        return [AlertResolved(INPUTS_ALERT_KEY, now, INPUTS_RULE, rule_set, what)]

    def _read_digest(self) -> str:
        if self.path is None:
            return ""
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            return f"unreadable: {exc.strerror}"  # `load_inputs` reports it

    def _refused(
        self, problems: Sequence[str], why: str, rule_set: str, now: datetime
    ) -> AlertDecision:
        self._refusing = True
        log.error("inputs_reload_refused", why=why, problems=list(problems))
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return AlertDecision(
            dedup_key=INPUTS_ALERT_KEY,
            severity="critical",
            message=(
                f"input mapping change refused, the last good mappings stay: {problems[0]}{more}"
            ),
            site="agent",
            subject="inputs",
            rule_id=INPUTS_RULE,
            rule_set_hash=rule_set,
            matched={"problems": {str(i): p for i, p in enumerate(problems[:_SHOWN_PROBLEMS])}},
            at=now,
        )
