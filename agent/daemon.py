"""The daemon's wiring and lifecycle: MQTT in, the pipeline, the store, acknowledgements out.

One ingest thread (the caller's) owns the engine. A batch is acknowledged to the broker only after
its decisions and dead letters are committed; a failed commit is retried, never skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import structlog

from agent.adapters.mqtt import Inbound, MqttSource
from agent.config import Settings
from agent.core import Core
from agent.errors import StoreError
from agent.ingest.topics import TopicMap
from agent.metrics import Metrics, count_messages
from agent.model import Outcome
from agent.partition import parse_sites, partition_filters
from agent.pipeline import Pipeline, Raw
from agent.policy import Policy
from agent.report import record
from agent.store.repository import Store, StoredChange

log = structlog.get_logger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
_OPENED = {
    "reorder": "reorder_opened",
    "work_order": "work_order_opened",
    "idle_capacity": "idle_capacity_opened",
}


class Daemon:
    def __init__(
        self, settings: Settings, policy: Policy, store: Store, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.store = store
        self.topics = TopicMap(settings.mqtt.topic_prefix)
        self.pipeline = Pipeline(
            Core(policy.ruleset, policy.masterdata),
            self.topics,
            settings.ingest.max_payload_bytes,
        )
        mqtt = settings.mqtt
        self.source = MqttSource(
            host=mqtt.host,
            port=mqtt.port,
            client_id=mqtt.client_id,
            subscriptions=partition_filters(self.topics, parse_sites(settings.mqtt.sites)),
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            keepalive_s=mqtt.keepalive_s,
            session_expiry_s=mqtt.session_expiry_s,
            queue_size=mqtt.queue_size,
            reconnect_min_s=mqtt.reconnect_min_s,
            reconnect_max_s=mqtt.reconnect_max_s,
        )
        self._stop = threading.Event()
        self.metrics = metrics or Metrics()
        self.metrics.set_rule_set_generation(1)
        self.metrics.queue_depth.set_function(lambda: self.source.queue_depth)

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and return (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> int:
        ruleset = self.policy.ruleset
        log.info(
            "agent_starting",
            rules=len(ruleset.rules),
            rule_set=ruleset.hash,
            broker=f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
            database=_safe_url(self.settings.database.url),
        )
        self.source.start()
        batch_size = self.settings.ingest.batch_size
        wait_s = self.settings.ingest.batch_wait_ms / 1000.0
        try:
            while not self._stop.is_set():
                batch = self.source.get_batch(batch_size, timeout=max(wait_s, 0.05))
                if batch:
                    self._handle(batch)
        finally:
            self.source.stop()
            self.pipeline.core.close()
            log.info("agent_stopped")
        return 0

    def _handle(self, batch: Sequence[Inbound]) -> None:
        started = time.perf_counter()
        outcome = self.pipeline.run([Raw(i.topic, i.payload, i.received_at) for i in batch])
        evaluated = time.perf_counter()
        changes = self._commit(outcome)
        if changes is None:
            return  # stopping while the database is down: leave the batch unacknowledged
        self._count(batch, outcome, changes, evaluated - started, time.perf_counter() - evaluated)
        self.source.ack(batch)
        for rejected in outcome.rejected:
            log.warning("dead_letter", topic=rejected.topic, reason=rejected.reason)
        for change in changes:
            _log_change(change)

    def _count(
        self,
        batch: Sequence[Inbound],
        outcome: Outcome,
        changes: Sequence[StoredChange],
        evaluation_s: float,
        commit_s: float,
    ) -> None:
        metrics = self.metrics
        metrics.rule_evaluation.observe(evaluation_s)
        metrics.commit.observe(commit_s)
        count_messages(
            metrics, self.topics, [i.topic for i in batch], [r.topic for r in outcome.rejected]
        )
        if outcome.rejected:
            metrics.dead_letter(len(outcome.rejected))
        for change in changes:
            kind = "alert" if change.table == "alert" else str(change.row.get("kind", "action"))
            metrics.decision(kind, change.created)

    def _commit(self, outcome: Outcome) -> list[StoredChange] | None:
        delay = RETRY_MIN_S
        while True:
            try:
                return self.store.apply(outcome)
            except StoreError as exc:
                log.error(
                    "store_failed",
                    error=str(exc),
                    retry_in_s=delay,
                    decisions=len(outcome.decisions),
                    dead_letters=len(outcome.rejected),
                )
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, RETRY_MAX_S)


def _log_change(change: StoredChange) -> None:
    rec = record(change.table, change.row)
    if not change.created:
        log.debug(
            "decision_repeated",
            table=change.table,
            id=change.id,
            key=rec["key"],
            count=rec["count"],
        )
        return
    if change.table == "alert":
        log.info(
            "alert_fired",
            id=change.id,
            severity=rec["severity"],
            message=rec["message"],
            rule=rec["rule"],
            key=rec["key"],
        )
        return
    log.info(
        _OPENED.get(rec["kind"], "action_opened"),
        id=change.id,
        rule=rec["rule"],
        key=rec["key"],
        **rec["params"],
    )


def _safe_url(url: str) -> str:
    """The database URL without a password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
