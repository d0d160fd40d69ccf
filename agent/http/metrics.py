"""The agent's Prometheus metrics, on a registry of its own, and the setters the daemon calls.

One `Metrics` per daemon (no module-level registry): tests and two agents in one process never
share counters. `/metrics` in `agent/http/server.py` renders `registry`.
"""

from __future__ import annotations

import time
from collections import Counter as Counter_
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent.ingest.topics import TopicMap

# Seconds: a batch's rules take micro- to milliseconds, a commit milliseconds to seconds.
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """Counters, gauges and histograms of one agent; every method is safe from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self.started_at = clock()
        self.last_message_at: float | None = None
        r = self.registry
        self.messages = Counter(
            "factory_agent_messages",
            "MQTT messages handled, by kind (stock, receipt, telemetry, command, unknown) "
            "and outcome (accepted, rejected).",
            ["kind", "outcome"],
            registry=r,
        )
        self.input_mappings = Counter(
            "factory_agent_input_mapping_messages",
            "Messages on the topics of an input mapping (config/inputs.yaml), by mapping and "
            "outcome (taken, refused: a dead letter naming the mapping and the reason).",
            ["mapping", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "factory_agent_dead_letters", "Messages kept as dead letters.", registry=r
        )
        self.decisions = Counter(
            "factory_agent_decisions",
            "Decisions stored, by kind (reorder, work_order, idle_capacity, alert) and result "
            "(opened: a new row; repeated: the open row's count went up).",
            ["kind", "result"],
            registry=r,
        )
        self.rule_evaluation = Histogram(
            "factory_agent_rule_evaluation_seconds",
            "Time to decode a batch and evaluate the rules on it.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit = Histogram(
            "factory_agent_commit_seconds",
            "Time to commit a batch's decisions and dead letters (retries included).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "factory_agent_queue_depth",
            "Messages received from the broker and waiting for ingest.",
            registry=r,
        )
        self.unknown_subjects = Gauge(
            "factory_agent_unknown_subjects",
            "SKUs and machines in the world state that are not in the master data (capped by "
            "ingest.unknown_subjects_max).",
            registry=r,
        )
        self.sites = Gauge(
            "factory_agent_sites",
            "Sites (topic level 2) in the world state (capped by ingest.sites_max unless "
            "mqtt.sites lists them).",
            registry=r,
        )
        self.rules_disabled = Gauge(
            "factory_agent_rules_disabled",
            "Rules taken out of the engine because the engine worker hung or died on them "
            "(each with a critical alert agent/rules/rule-disabled/<id>; back when a reload "
            "changes the rule).",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "factory_agent_outbox_backlog",
            "Notifications written to the outbox and not yet sent.",
            registry=r,
        )
        self.outbox_failures = Counter(
            "factory_agent_outbox_failures",
            "Failed delivery attempts of outbox rows (retried later, or given up as failed).",
            registry=r,
        )
        self.ready = Gauge(
            "factory_agent_ready",
            "1 while every readiness check of /readyz passes, else 0 (with [http] enabled).",
            registry=r,
        )
        self.rule_set_generation = Gauge(
            "factory_agent_rule_set_generation",
            "How many rule sets were loaded since start (1 after start, +1 per reload).",
            registry=r,
        )
        self.engine_worker_restarts = Counter(
            "factory_agent_engine_worker_restarts",
            "Times the rule engine worker was restarted after it died or hung.",
            registry=r,
        )
        self.sparkplug = Counter(
            "factory_agent_sparkplug_events",
            "Sparkplug B host events: seq_gap (a node's sequence number skipped), unknown_alias "
            "(a metric alias no BIRTH named), rebirth_requested (an NCMD Node Control/Rebirth "
            "published), stale_death (an NDEATH of an older session, ignored).",
            ["event"],
            registry=r,
        )
        self.out_of_order = Counter(
            "factory_agent_out_of_order_readings",
            "Readings older than their subject's latest (redeliveries, late gateways): not taken "
            "for the current state, but counted as arrivals (the subject is not silent).",
            registry=r,
        )
        self.last_message_age = Gauge(
            "factory_agent_last_message_age_seconds",
            "Seconds since the last message (since start while none came).",
            registry=r,
        )
        self.last_message_age.set_function(self.message_age_s)

    # -- what the daemon reports ----------------------------------------------------------------

    def message(self, kind: str, outcome: str, count: int = 1) -> None:
        self.messages.labels(kind=kind, outcome=outcome).inc(count)
        self.last_message_at = self._clock()

    def dead_letter(self, count: int = 1) -> None:
        self.dead_letters.inc(count)

    def decision(self, kind: str, created: bool) -> None:
        self.decisions.labels(kind=kind, result="opened" if created else "repeated").inc()

    def set_outbox_backlog(self, backlog: int) -> None:
        self.outbox_backlog.set(backlog)

    def outbox_failed(self, count: int = 1) -> None:
        self.outbox_failures.inc(count)

    def set_rule_set_generation(self, generation: int) -> None:
        self.rule_set_generation.set(generation)

    def engine_worker_restarted(self) -> None:
        self.engine_worker_restarts.inc()

    # -- what readiness reads -------------------------------------------------------------------

    def message_age_s(self) -> float:
        since = self.started_at if self.last_message_at is None else self.last_message_at
        return max(0.0, self._clock() - since)


def count_messages(
    metrics: Metrics, topics: TopicMap, received: Sequence[str], rejected: Sequence[str]
) -> None:
    """Count a batch's messages by kind and outcome; `rejected` lists the dead-lettered topics."""
    left = Counter_(rejected)
    tally: Counter_[tuple[str, str]] = Counter_()
    mapped: Counter_[tuple[str, str]] = Counter_()
    for topic in received:
        match = topics.match(topic)
        kind: str = match.kind if match is not None else "unknown"
        refused = left[topic] > 0
        if refused:
            left[topic] -= 1
        tally[kind, "rejected" if refused else "accepted"] += 1
        if match is not None and match.mapping:
            mapped[match.mapping, "refused" if refused else "taken"] += 1
    for (kind, outcome), count in tally.items():
        metrics.message(kind, outcome, count)
    for (mapping, outcome), count in mapped.items():
        metrics.input_mappings.labels(mapping=mapping, outcome=outcome).inc(count)
