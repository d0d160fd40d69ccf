"""Which subjects may grow the world: SKUs and machines in the master data always; others up to a
cap (`ingest.unknown_subjects_max`), or never (`ingest.unknown_subjects = "dead_letter"`). Sites
(topic level 2) likewise: up to `ingest.sites_max` of them, unless `mqtt.sites` lists the agent's
sites (its subscriptions then take no others).

Pure: messages in, a refusal reason (a dead letter) or None out, and the one alert that says the
cap was reached. A refused message is kept whole in the dead letters, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from agent.model import AlertDecision, AlertResolved, Decision, Fact, Message
from agent.world.masterdata import MasterData

if TYPE_CHECKING:
    from agent.config import IngestSettings

UnknownSubjects = Literal["accept", "dead_letter"]

# Justified in docs/design.md §3: about 2 KiB per subject (bench/unknown_subjects.py), so the
# world grows by a few MiB at most, while a plant that adds a SKU before its master data still
# gets its counts evaluated.
MAX_UNKNOWN: Final = 1000
ALERT_KEY: Final = "agent/ingest/unknown-subjects"
ALERT_RULE: Final = "unknown-subjects"
# A known SKU at a new site is a new fact too: a flood of site names grows the world like unknown
# SKUs. An agent serves a plant or a few (scale-out partitions by site): 100 is generous.
MAX_SITES: Final = 100
SITES_ALERT_KEY: Final = "agent/ingest/sites"
SITES_ALERT_RULE: Final = "sites"


@dataclass(frozen=True, slots=True)
class SubjectLimits:
    """What to do with messages about subjects the master data does not know."""

    unknown: UnknownSubjects = "accept"
    max_unknown: int = MAX_UNKNOWN
    max_sites: int = MAX_SITES
    # `mqtt.sites`: when it lists sites, the subscriptions restrict them and no cap applies.
    sites: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, ingest: IngestSettings, sites: Collection[str] = ()) -> SubjectLimits:
        return cls(
            ingest.unknown_subjects, ingest.unknown_subjects_max, ingest.sites_max, frozenset(sites)
        )


class SubjectGate:
    """Admits or refuses each message by its subject, counting the unknown subjects admitted."""

    __slots__ = (
        "_alerting",
        "_first_refused",
        "_first_site_refused",
        "_limits",
        "_masterdata",
        "_sites",
        "_sites_alerting",
        "_unknown",
    )

    def __init__(self, masterdata: MasterData, limits: SubjectLimits | None = None) -> None:
        self._masterdata = masterdata
        self._limits = limits or SubjectLimits()
        self._unknown: set[str] = set()  # fact keys, at most `max_unknown` of them
        # Whether the cap alert is open: None after a start, when it is not known yet.
        self._alerting: bool | None = None
        self._first_refused = ""
        self._sites: set[str] = set()  # sites of the world's facts, at most `max_sites`
        self._sites_alerting: bool | None = None
        self._first_site_refused = ""

    @property
    def count(self) -> int:
        """Unknown subjects in the world (the metric `factory_agent_unknown_subjects`)."""
        return len(self._unknown)

    @property
    def sites(self) -> int:
        """Sites in the world (the metric `factory_agent_sites`)."""
        return len(self._sites)

    def seed(self, facts: Iterable[Fact]) -> None:
        """Count the unknown subjects among facts restored at start (they stay, even over the
        cap: the cap refuses new ones)."""
        for fact in facts:
            self._sites.add(fact.site)
            if not self._known(fact.kind, fact.subject):
                self._unknown.add(fact.key)

    def admit(self, message: Message) -> str | None:
        """None when the message may change the world; else why it goes to the dead letters."""
        if message.kind == "command":
            return None
        refused = self._site_refused(message)
        if refused is not None:
            return refused
        refused = self._subject_refused(message)
        if refused is None:
            self._sites.add(message.site)
        return refused

    def _site_refused(self, message: Message) -> str | None:
        limits = self._limits
        if message.site in self._sites or limits.sites or len(self._sites) < limits.max_sites:
            return None
        if not self._first_site_refused:
            self._first_site_refused = message.topic
        return (
            f"site {_shorten(message.site)} is new and {len(self._sites)} sites are in the world "
            "already, the limit of ingest.sites_max: list the agent's sites in mqtt.sites, or "
            "raise the limit"
        )

    def _subject_refused(self, message: Message) -> str | None:
        kind = "machine" if message.kind == "telemetry" else "stock"
        if self._known(kind, message.subject):
            return None
        limits = self._limits
        what = _what(kind, message.subject)
        if limits.unknown == "dead_letter":
            return (
                f"{what} is not in the master data ({_file(kind)}) and ingest.unknown_subjects "
                "is 'dead_letter': add it there, then send again"
            )
        key = f"{kind}/{message.site}/{message.subject}"
        if key in self._unknown:
            return None
        if len(self._unknown) < limits.max_unknown:
            self._unknown.add(key)
            return None
        if not self._first_refused:
            self._first_refused = message.topic
        return (
            f"{what} is not in the master data ({_file(kind)}) and {len(self._unknown)} unknown "
            f"subjects are in the world already, the limit of ingest.unknown_subjects_max: add "
            "it to the master data, or raise the limit"
        )

    def alerts(self, at: datetime, rule_set_hash: str) -> list[Decision]:
        """The cap alerts when a cap is first reached (one, not one per message), their
        resolution when the world is back under it (after a restart with more master data, or a
        higher cap). Called after each batch."""
        return [*self._subject_alerts(at, rule_set_hash), *self._site_alerts(at, rule_set_hash)]

    def _site_alerts(self, at: datetime, rule_set_hash: str) -> list[Decision]:
        over = bool(self._first_site_refused)
        if over == self._sites_alerting:
            return []
        if not over:
            if self._sites_alerting is not None or len(self._sites) >= self._limits.max_sites:
                return []
            self._sites_alerting = False
            why = "sites under the limit"
            return [AlertResolved(SITES_ALERT_KEY, at, SITES_ALERT_RULE, rule_set_hash, why)]
        self._sites_alerting = True
        limit = self._limits.max_sites
        first = _shorten(self._first_site_refused)
        return [
            AlertDecision(
                dedup_key=SITES_ALERT_KEY,
                severity="warning",
                message=(
                    f"{len(self._sites)} sites in the world: the limit ingest.sites_max = "
                    f"{limit} is reached, messages for further sites go to the dead letters "
                    f"(first: {first}); mqtt.sites can list the agent's sites instead"
                ),
                site="agent",
                subject="ingest",
                rule_id=SITES_ALERT_RULE,
                rule_set_hash=rule_set_hash,
                matched={
                    "sites": {
                        "count": len(self._sites),
                        "limit": limit,
                        "first_refused": self._first_site_refused,
                    }
                },
                at=at,
            )
        ]

    def _subject_alerts(self, at: datetime, rule_set_hash: str) -> list[Decision]:
        over = bool(self._first_refused)
        if over == self._alerting:
            return []
        if not over and self._alerting is None and len(self._unknown) < self._limits.max_unknown:
            self._alerting = False
            return [
                AlertResolved(
                    ALERT_KEY, at, ALERT_RULE, rule_set_hash, "unknown subjects under the limit"
                )
            ]
        if not over:
            return []
        self._alerting = True
        limit = self._limits.max_unknown
        first = _shorten(self._first_refused)
        return [
            AlertDecision(
                dedup_key=ALERT_KEY,
                severity="warning",
                message=(
                    f"{len(self._unknown)} SKUs and machines not in the master data: the limit "
                    f"ingest.unknown_subjects_max = {limit} is reached, messages for further "
                    f"unknown subjects go to the dead letters (first: {first})"
                ),
                site="agent",
                subject="ingest",
                rule_id=ALERT_RULE,
                rule_set_hash=rule_set_hash,
                matched={
                    "unknown_subjects": {
                        "count": len(self._unknown),
                        "limit": limit,
                        "first_refused": self._first_refused,
                    }
                },
                at=at,
            )
        ]

    def _known(self, kind: str, subject: str) -> bool:
        table = self._masterdata.items if kind == "stock" else self._masterdata.machines
        return subject in table


def _what(kind: str, subject: str) -> str:
    return f"{'SKU' if kind == 'stock' else 'machine'} {_shorten(subject)}"


def _file(kind: str) -> str:
    return "items" if kind == "stock" else "machines"


def _shorten(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"
