"""The daemon's wiring and lifecycle: MQTT in, the pipeline, the store, acknowledgements out.

One ingest thread (the caller's) owns the engine. A batch is acknowledged to the broker only after
its decisions and dead letters are committed; a failed commit is retried, never skipped.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog

from agent.adapters.alarm import alarm_topic, raise_alarm
from agent.adapters.mqtt import Inbound, MqttSource, TlsOptions
from agent.config import MqttSettings, Settings
from agent.core import Core, EngineFactory
from agent.errors import StoreError
from agent.ingest.topics import TopicMap
from agent.model import Fact, Outcome
from agent.pipeline import Pipeline, Raw
from agent.policy import Policy
from agent.report import record
from agent.rulebook.engine import DurableEngine
from agent.store.repository import Store, StoredChange
from agent.store.snapshot import message_digest

log = structlog.get_logger(__name__)
T = TypeVar("T")

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
_OPENED = {
    "reorder": "reorder_opened",
    "work_order": "work_order_opened",
    "idle_capacity": "idle_capacity_opened",
}


class Daemon:
    def __init__(self, settings: Settings, policy: Policy, store: Store) -> None:
        self.settings = settings
        self.policy = policy
        self.store = store
        self.topics = TopicMap(settings.mqtt.topic_prefix)
        self.alarm_topic = alarm_topic(settings.mqtt.topic_prefix, settings.daemon.site)
        self.pipeline = Pipeline(
            Core(policy.ruleset, policy.masterdata, self._engine_factory()),
            self.topics,
            settings.ingest.max_payload_bytes,
        )
        mqtt = settings.mqtt
        self.source = MqttSource(
            host=mqtt.host,
            port=mqtt.port,
            client_id=mqtt.client_id,
            subscriptions=self.topics.subscriptions(),
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            keepalive_s=mqtt.keepalive_s,
            session_expiry_s=mqtt.session_expiry_s,
            queue_size=mqtt.queue_size,
            reconnect_min_s=mqtt.reconnect_min_s,
            reconnect_max_s=mqtt.reconnect_max_s,
            tls=tls_options(mqtt),
        )
        self._stop = threading.Event()
        self._store_down = False
        self._acked = 0  # messages acknowledged since start
        self._overdue: threading.Timer | None = None  # armed by stop()

    def _engine_factory(self) -> EngineFactory:
        rules = self.settings.rules
        if rules.engine == "inline":
            return DurableEngine
        from agent.rulebook.worker import ProcessEngine

        return functools.partial(
            ProcessEngine,
            deadline_s=rules.engine_deadline_s,
            on_fault=self._alarm,
            log_level=self.settings.log.level,
            log_format="json" if self.settings.log.format == "auto" else self.settings.log.format,
        )

    def _alarm(self, event: str, reason: str, context: dict[str, Any]) -> None:
        raise_alarm(self._publish, self.alarm_topic, event, reason, **context)

    def _publish(self, topic: str, payload: bytes) -> None:
        self.source.publish(topic, payload, qos=1)

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and return (safe from a signal handler).

        If that takes longer than `daemon.stop_timeout_s`, the process exits anyway: what was
        not committed is not acknowledged, so the broker delivers it again.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        self._overdue = threading.Timer(self.settings.daemon.stop_timeout_s, _stop_overdue)
        self._overdue.daemon = True
        self._overdue.start()

    def run(self) -> int:
        ruleset = self.policy.ruleset
        log.info(
            "agent_starting",
            rules=len(ruleset.rules),
            rule_set=ruleset.hash,
            broker=f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
            database=_safe_url(self.settings.database.url),
        )
        restored = self._retry("read the fact snapshot", self.store.facts)
        if restored is None:
            self.pipeline.core.close()
            if self._overdue is not None:
                self._overdue.cancel()
            return 0
        self.pipeline.core.restore(restored)
        log.info("world_restored", facts=len(restored))
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
            if self._overdue is not None:
                self._overdue.cancel()  # stopped in time
            log.info("agent_stopped")
        return 0

    def _handle(self, batch: Sequence[Inbound]) -> None:
        fresh = self._drop_redelivered(batch)
        if fresh is None:
            return  # stopping while the database is down: leave the batch unacknowledged
        outcome = self.pipeline.run([Raw(i.topic, i.payload, i.received_at) for i, _ in fresh])
        facts = self.pipeline.core.take_changed()
        changes = self._commit(outcome, facts, [digest for _, digest in fresh])
        if changes is None:
            return  # stopping while the database is down: leave the batch unacknowledged
        self.source.ack(batch)
        self._acked += len(batch)
        log.debug(
            "batch_acked", messages=len(batch), total=self._acked, skipped=len(batch) - len(fresh)
        )
        for rejected in outcome.rejected:
            log.warning("dead_letter", topic=rejected.topic, reason=rejected.reason)
        for change in changes:
            _log_change(change)

    def _drop_redelivered(self, batch: Sequence[Inbound]) -> list[tuple[Inbound, str]] | None:
        """The batch without messages already committed (redelivered after a crash before the
        ack), each with its digest; None when stopping while the database is down.

        Only a message that can be told apart from a legitimate repeat is checked: one the
        broker flags as sent before (DUP), or one that carries its own `ts`.
        """
        digests = [message_digest(item.topic, item.payload) for item in batch]
        suspects = {d for item, d in zip(batch, digests, strict=True) if _may_repeat(item)}
        done: set[str] | None = set()
        if suspects:
            done = self._retry("look up processed messages", lambda: self.store.committed(suspects))
        if done is None:
            return None
        fresh: list[tuple[Inbound, str]] = []
        for item, digest in zip(batch, digests, strict=True):
            if digest in suspects and digest in done:
                log.info("message_already_processed", topic=item.topic, dup=item.dup)
                continue
            if digest in suspects:
                done.add(digest)  # the same message twice in one batch
            fresh.append((item, digest))
        return fresh

    def _commit(
        self, outcome: Outcome, facts: Sequence[Fact] = (), processed: Sequence[str] = ()
    ) -> list[StoredChange] | None:
        keep = self.settings.ingest.dedup_window
        return self._retry(
            "store the batch",
            lambda: self.store.apply(
                outcome, facts=facts, processed=processed, keep_processed=keep
            ),
            decisions=len(outcome.decisions),
            dead_letters=len(outcome.rejected),
        )

    def _retry(self, doing: str, call: Callable[[], T], **context: int) -> T | None:
        """`call()` until it works, backing off; None if asked to stop meanwhile. The first
        failure of a streak raises an alarm (log + MQTT), and so does the recovery."""
        delay = RETRY_MIN_S
        while True:
            try:
                result = call()
            except StoreError as exc:
                log.error("store_failed", doing=doing, error=str(exc), retry_in_s=delay, **context)
                if not self._store_down:
                    self._store_down = True
                    raise_alarm(
                        self._publish,
                        self.alarm_topic,
                        "store_unavailable",
                        str(exc),
                        doing=doing,
                        ingest="paused",
                    )
            else:
                if self._store_down:
                    self._store_down = False
                    raise_alarm(
                        self._publish,
                        self.alarm_topic,
                        "store_recovered",
                        "",
                        level="warning",
                        ingest="resumed",
                    )
                return result
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, RETRY_MAX_S)


def tls_options(mqtt: MqttSettings) -> TlsOptions | None:
    """The MQTT TLS set-up from the settings, or None for plain TCP."""
    if not mqtt.tls_enabled:
        return None
    return TlsOptions(
        ca_file=mqtt.tls_ca_file,
        cert_file=mqtt.tls_cert_file,
        key_file=mqtt.tls_key_file,
        insecure=mqtt.tls_insecure,
    )


def _may_repeat(item: Inbound) -> bool:
    return item.dup or b'"ts"' in item.payload


def _stop_overdue() -> None:
    log.error("agent_stop_overdue", action="exiting without finishing the batch")
    os._exit(1)


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
