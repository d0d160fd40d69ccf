"""The outbox sender: claims due rows, delivers them, records each delivery only after it worked.

Failures are retried with exponential back-off and jitter up to `max_attempts`, then marked
`failed` with the reason. A crash between a send and its record sends that one message again
on restart (at least once; each row carries an id receivers can use to drop the duplicate).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from agent.http.metrics import Metrics
from agent.notify.channels import Delivery, send
from agent.notify.message import render_group
from agent.notify.outbox import Outbox
from agent.notify.policy import FIRING_EVENTS, MQTT
from agent.notify.queue import Due

log = structlog.get_logger(__name__)

# (topic, JSON payload) -> True once the broker acknowledged it (QoS 1), False if it did not
# in time, None when not connected (the row waits without counting an attempt).
# Publish (topic, payload) pairs at QoS 1, all at once, and wait for the broker: one answer per
# message, True acknowledged, False not in time, None not sent (not connected).
Publish = Callable[[Sequence[tuple[str, bytes]]], list[bool | None]]
SendFn = Callable[[str, str, str, str, str], Delivery]


class Sender:
    """Drains the outbox; `run_once` is one pass (tests drive it on a simulated clock)."""

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        publish: Publish | None = None,
        send_fn: SendFn = send,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = engine
        self.outbox = outbox
        self.settings = outbox.settings
        self._publish = publish
        self._send = send_fn
        self._rng = rng or random.Random()
        self._metrics = metrics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass -----------------------------------------------------------------------------

    def run_once(self) -> int:
        """Schedule due repeats, then try every due row once; return how many were tried."""
        with self._engine.begin() as connection:
            self.outbox.schedule_repeats(connection)
            if self._metrics is not None:  # each poll: what is left to send, repeats included
                self._metrics.set_outbox_backlog(self.outbox.backlog(connection))
        with self._engine.begin() as connection:
            claimed = self.outbox.claim_due(connection)
            statuses = self.outbox.alert_statuses(
                connection,
                (d.ref_id for d in claimed if d.ref_table == "alert" and d.ref_id is not None),
            )
        if not claimed:
            return 0
        batches = self._batches(claimed)
        publications = [batch[0] for batch in batches if batch[0].channel == MQTT]
        tried = self._publish_rows(publications)
        for batch in batches:
            if batch[0].channel == MQTT:
                continue
            if self._stop.is_set():
                with self._engine.begin() as connection:
                    self.outbox.release(connection, [due.id for due in batch])
                continue
            tried += self._deliver(batch, statuses)
        return tried

    def _batches(self, claimed: Sequence[Due]) -> list[list[Due]]:
        """One list per message: rows of a grouping route and channel go out together."""
        single: list[list[Due]] = []
        grouped: dict[tuple[str, str], list[Due]] = {}
        for due in claimed:
            route = self.outbox.routes.get(due.route)
            groups = route is not None and route.group_window_s > 0
            if groups and due.channel != MQTT and due.event != "digest":
                grouped.setdefault((due.route, due.channel), []).append(due)
                continue
            single.append([due])
        batches = single + list(grouped.values())
        return sorted(batches, key=lambda batch: batch[0].id)

    def _deliver(self, batch: list[Due], statuses: dict[int, str]) -> int:
        stale = [d for d in batch if _silenced(d, statuses)]
        if stale:
            with self._engine.begin() as connection:
                self.outbox.mark_skipped(
                    connection, [d.id for d in stale], "alert acknowledged or resolved before"
                )
            log.info("notify_skipped", ids=[d.id for d in stale], reason="alert_closed")
        batch = [d for d in batch if d not in stale]
        if not batch:
            return 0
        delivery = self._send_batch(batch)
        ids = [due.id for due in batch]
        with self._engine.begin() as connection:
            if delivery.ok:
                self.outbox.mark_sent(connection, ids)
            else:
                self.outbox.mark_failed(
                    connection, ids, delivery.error, self._retry_at(batch, delivery)
                )
        if not delivery.ok:
            self._failed(len(batch))
        self._log(batch, delivery)
        return len(batch)

    def _send_batch(self, batch: list[Due]) -> Delivery:
        first = batch[0]
        url = self.settings.channels.get(first.channel)
        if url is None:
            return Delivery(False, f"channel {first.channel} is no longer configured", True)
        if len(batch) == 1:
            title, body = first.title, first.body
        else:
            title, body = render_group([(d.title, d.body) for d in batch], first.route)
        notification_id = "+".join(due.dedup_key for due in batch[:5])
        return self._send(first.channel, url, title, body, notification_id)

    def _publish_rows(self, rows: list[Due]) -> int:
        """Publish the claimed MQTT rows together and wait for their PUBACKs, then record them in
        one transaction: one publish, wait and commit per row kept a loaded broker's round trip
        and an fsync per row, and the sender fell behind 40 probes a second under load."""
        if not rows:
            return 0
        sendable = [due for due in rows if due.topic is not None]
        answers: list[bool | None] = [None] * len(sendable)
        if self._publish is not None and sendable and not self._stop.is_set():
            answers = self._publish([(due.topic or "", due.body.encode()) for due in sendable])
        sent = [due.id for due, answer in zip(sendable, answers, strict=True) if answer]
        late = [due for due, answer in zip(sendable, answers, strict=True) if answer is False]
        waiting = [due.id for due, answer in zip(sendable, answers, strict=True) if answer is None]
        waiting += [due.id for due in rows if due.topic is None]
        with self._engine.begin() as connection:
            if sent:
                self.outbox.mark_sent(connection, sent)
            for due in late:  # no PUBACK in time: try again later (QoS 1 is at least once)
                retry = self._retry_at([due], Delivery(False, "mqtt not acknowledged"))
                self.outbox.mark_failed(
                    connection, [due.id], "mqtt publish not acknowledged", retry
                )
            if waiting:
                self.outbox.release(connection, waiting)
        if late:
            self._failed(len(late))
        if sent:
            log.debug("mqtt_published", ids=sent)
        return len(sent) + len(late)

    def _failed(self, count: int) -> None:
        if self._metrics is not None:
            self._metrics.outbox_failed(count)

    def _retry_at(self, batch: list[Due], delivery: Delivery) -> datetime | None:
        attempts = max(due.attempts for due in batch) + 1
        if delivery.permanent or attempts >= self.settings.max_attempts:
            return None
        return self.outbox.clock.now() + timedelta(seconds=self.backoff(attempts))

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt `attempts + 1`: doubling from retry_min_s up to retry_max_s,
        the upper half of it at random ("equal jitter"), so many rows do not retry in step."""
        # Capped exponent: 2.0 ** 1025 overflows a float, and max_attempts has no upper bound.
        doubling = 2.0 ** min(attempts - 1, 64)
        ceiling = min(self.settings.retry_max_s, self.settings.retry_min_s * doubling)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _log(self, batch: list[Due], delivery: Delivery) -> None:
        first = batch[0]
        fields = {
            "ids": [due.id for due in batch],
            "channel": first.channel,
            "route": first.route,
            "events": sorted({due.event for due in batch}),
        }
        if delivery.ok:
            log.info("notify_sent", **fields)
            return
        gave_up = (
            delivery.permanent or max(d.attempts for d in batch) + 1 >= self.settings.max_attempts
        )
        log.warning(
            "notify_failed" if gave_up else "notify_retry",
            error=delivery.error,
            attempt=max(d.attempts for d in batch) + 1,
            **fields,
        )

    # -- the thread ---------------------------------------------------------------------------

    def _release_own_claims(self) -> bool:
        try:
            with self._engine.begin() as connection:
                count = self.outbox.release_own_claims(connection)
        except SQLAlchemyError as exc:
            log.error("notify_sender_store_failed", error=str(exc).splitlines()[0])
            return False
        if count:
            log.info("notify_claims_released", count=count)
        return True

    def wake(self) -> None:
        """Look at the outbox now (new rows were committed)."""
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="outbox-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        log.info("notify_sender_started", channels=sorted(self.settings.channels))
        released = False
        while not self._stop.is_set():
            if not released:
                released = self._release_own_claims()
                if not released:
                    self._wake.wait(self.settings.poll_s)
                    continue
            try:
                tried = self.run_once()
            except SQLAlchemyError as exc:
                log.error("notify_sender_store_failed", error=str(exc).splitlines()[0])
                tried = 0
            except Exception as exc:  # the sender outlives any one bad row; the row stays
                log.exception("notify_sender_failed", error=str(exc))
                tried = 0
            if tried:
                continue
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()
        log.info("notify_sender_stopped")


def _silenced(due: Due, statuses: dict[int, str]) -> bool:
    """A firing or repeat message for an alert someone acknowledged (or that resolved) since."""
    if due.channel == MQTT or due.ref_table != "alert" or due.ref_id is None:
        return False  # publications report every status, stale or not
    if due.event not in FIRING_EVENTS:
        return False
    return statuses.get(due.ref_id, "firing") not in ("firing",)
