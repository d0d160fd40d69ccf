"""The daemon's wiring and lifecycle: MQTT in, the pipeline, the store, acknowledgements out.

One ingest thread (the caller's) owns the engine. A batch is acknowledged to the broker only after
its decisions and dead letters are committed; a failed commit is retried, never skipped.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection

from agent.adapters.alarm import alarm_topic, raise_alarm
from agent.adapters.memory import release_free_memory
from agent.adapters.mqtt import Inbound, MqttSource, TlsOptions
from agent.adapters.rulewatch import RuleWatcher
from agent.app import commands
from agent.app.clock import Clock, SystemClock
from agent.app.core import EngineFactory
from agent.app.inputsreload import InputsFile
from agent.app.machinesync import sync_work_orders, work_order_closed
from agent.app.pipeline import Pipeline, Raw
from agent.app.plantclock import PlantClock
from agent.app.policy import Policy
from agent.app.reload import PolicyFiles, reload_policy
from agent.app.runner import Fed, Runner
from agent.app.stocksync import seed_reorders
from agent.app.ticks import TickSchedule
from agent.config import MqttSettings, Settings
from agent.decisions.report import record
from agent.errors import StoreError, TransitionError
from agent.http.metrics import Metrics, count_messages
from agent.ingest.partition import parse_sites, partition_filters
from agent.ingest.topics import TopicMap
from agent.model import (
    Decision,
    Fact,
    NotifyDecision,
    Outcome,
    PublishDecision,
    SavedTrack,
    TrackChanges,
)
from agent.notify.digest import DigestSchedule
from agent.notify.outbox import Outbox
from agent.notify.sender import Sender
from agent.rulebook.disabled import DisabledRules
from agent.rulebook.engine import DurableEngine
from agent.rulebook.rules import RuleSet
from agent.store import readings as history
from agent.store.repository import ChangeHook, Store, StoredChange
from agent.store.snapshot import message_digest
from agent.world.history import Reading, summarize
from agent.world.machine import refill_windows, window_spans

log = structlog.get_logger(__name__)
T = TypeVar("T")

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
SENDER_STOP_S = 1.0
# Batches taken from a backlog are up to this many times `ingest.batch_size` (bench/drain.py:
# 2,000 messages a batch drained 8% faster than 500).
BACKLOG_BATCHES = 4
_OPENED = {
    "reorder": "reorder_opened",
    "work_order": "work_order_opened",
    "idle_capacity": "idle_capacity_opened",
}


class Daemon:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        store: Store,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`clock`: the wall clock by default; a `PlantClock` runs the daemon on the time the
        messages carry (a recorded day played through the broker ticks as `replay` does)."""
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.policy = policy
        self.store = store
        self.inputs = InputsFile(settings.ingest.inputs_file)
        self.topics = TopicMap(settings.mqtt.topic_prefix, self.inputs.load())
        self.alarm_topic = alarm_topic(settings.mqtt.topic_prefix, settings.daemon.site)
        self.rules_disabled = DisabledRules()  # by the engine worker, kept across reloads
        self.pipeline = Pipeline.of(
            policy.ruleset,
            policy.masterdata,
            settings,
            self._engine_factory(),
            self.topics,
            self.rules_disabled,
        )
        mqtt = settings.mqtt
        connection = functools.partial(
            MqttSource,
            host=mqtt.host,
            port=mqtt.port,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            keepalive_s=mqtt.keepalive_s,
            reconnect_min_s=mqtt.reconnect_min_s,
            reconnect_max_s=mqtt.reconnect_max_s,
            tls=tls_options(mqtt),
        )
        self.source = connection(
            client_id=mqtt.client_id,
            subscriptions=self._filters(self.topics),
            session_expiry_s=mqtt.session_expiry_s,
            queue_size=mqtt.queue_size,
            # a session taken over by another agent with this client id: an alarm on MQTT
            alarm=functools.partial(raise_alarm, self._publish, self.alarm_topic),
        )
        # What the agent publishes (outbox, alarms) goes over a connection of its own: on the
        # subscriber's, a PUBACK waits behind every message of a backlog the broker is sending,
        # and behind a full ingest queue, so alerts stalled exactly when the plant was busiest.
        # Its session is not kept: the outbox retries what was not acknowledged.
        self.outgoing = connection(
            client_id=f"{mqtt.client_id}-out",
            subscriptions=[],
            session_expiry_s=0,
            alarm=_outgoing_taken_over,
        )
        self.outbox = Outbox(
            settings.notify,
            settings.mqtt.topic_prefix,
            SystemClock(),
            owner=mqtt.client_id,
            public_url=settings.http.public_url if settings.http.pages else "",
        )
        self.metrics = metrics or Metrics()
        self.sender = Sender(
            store.engine,
            self.outbox,
            publish=self.outgoing.publish_acknowledged,
            metrics=self.metrics,
        )
        self.digests = DigestSchedule(store, self.outbox, self.sender.wake)
        self.runner = Runner(
            self.pipeline,
            _DaemonWork(self),
            # On the wall clock a loop that fell behind gets one tick, not a backlog.
            TickSchedule(settings.rules.tick_s, coalesce=not isinstance(clock, PlantClock)),
            settings.commands.allowed_by,
            stopwatch=time.perf_counter,
        )
        self._stop = threading.Event()
        self._store_down = False
        self._acked = 0  # messages acknowledged since start
        self._out_of_order = 0  # the world's count of out-of-order readings, as last exported
        self._overdue: threading.Timer | None = None  # armed by stop()
        self._generation = 1
        # The first problem of the last master-data change refused ("" when the files load).
        self.masterdata_refused = ""
        # When the policy was last reloaded and why (None: not since start); the console shows it.
        self.last_reload: tuple[datetime, str] | None = None
        self.metrics.set_rule_set_generation(self._generation)
        self.metrics.queue_depth.set_function(lambda: self.source.queue_depth)
        self.metrics.unknown_subjects.set_function(lambda: self.pipeline.subjects.count)
        self.metrics.sites.set_function(lambda: self.pipeline.subjects.sites)
        self.metrics.rules_disabled.set_function(lambda: self.rules_disabled.count)
        # Work for the ingest thread (which owns the engine) from the rule watcher and SIGHUP:
        # ("reload", why).
        self._chores: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        # People's commands from the console, applied by the ingest thread like MQTT ones.
        self._people: queue.SimpleQueue[tuple[commands.Command, Future[dict[str, Any]]]] = (
            queue.SimpleQueue()
        )

    def _engine_factory(self) -> EngineFactory:
        rules = self.settings.rules
        if rules.engine == "inline":
            return DurableEngine
        from agent.rulebook.worker import ProcessEngine

        return functools.partial(
            ProcessEngine,
            deadline_s=rules.engine_deadline_s,
            on_fault=self._alarm,
            disabled=self.rules_disabled,
            log_level=self.settings.log.level,
            log_format="json" if self.settings.log.format == "auto" else self.settings.log.format,
        )

    def _alarm(self, event: str, reason: str, context: dict[str, Any]) -> None:
        if event == "engine_worker_lost":  # a new worker replaces it
            self.metrics.engine_worker_restarted()
        raise_alarm(self._publish, self.alarm_topic, event, reason, **context)

    def _publish(self, topic: str, payload: bytes) -> None:
        self.outgoing.publish(topic, payload, qos=1)

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

    def request_reload(self, why: str) -> None:
        """Reload the rules and master data between two batches (safe from a signal handler or
        another thread)."""
        self._chores.put(("reload", why))

    def submit(self, command: commands.Command) -> Future[dict[str, Any]]:
        """Hand a command to the ingest thread (safe from any thread); the future gets the row
        after it, or the TransitionError that refused it."""
        done: Future[dict[str, Any]] = Future()
        self._people.put((command, done))
        return done

    def run(self) -> int:
        ruleset = self.policy.ruleset
        log.info(
            "agent_starting",
            rules=len(ruleset.rules),
            rule_set=ruleset.hash,
            broker=f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
            database=_safe_url(self.settings.database.url),
        )
        self._record_rule_set(ruleset, "start")
        saved = self._retry("read the fact snapshot", self._saved_state)
        if saved is None:
            self.pipeline.core.close()
            if self._overdue is not None:
                self._overdue.cancel()
            return 0
        restored, tracks, firing = saved
        self.pipeline.restore(restored, tracks, firing)
        log.info("world_restored", facts=len(restored), tracks=len(tracks))
        keep_history = self.settings.history.enabled
        if keep_history:
            refilled = self._retry("refill the metric windows", self._refill_windows)
            log.info("metric_windows_refilled", readings=refilled)
        del restored, tracks, saved
        release_free_memory()  # the master data's parse and the snapshot's rows are done with
        open_reorders = seed_reorders(self.pipeline.core, self.store, self.clock.now())
        log.info("reorders_loaded", open=open_reorders)
        sync_work_orders(self.pipeline.core, self.store, None, self.clock.now())
        synced = pruned = time.monotonic()
        if keep_history:
            self._prune_readings(self.clock.now())
        self.outgoing.start()
        self.source.start()
        self.sender.start()
        self.digests.start()
        watcher = None
        if self.settings.rules.watch:
            watcher = RuleWatcher(  # the rule files, the master data files, the inputs file
                [*self._policy_files().all(), *self.inputs.paths],
                self.settings.rules.watch_interval_s,
                self.request_reload,
            )
            watcher.start()
        batch_size = self.settings.ingest.batch_size
        wait_s = self.settings.ingest.batch_wait_ms / 1000.0
        prune_every_s = self.settings.history.prune_every_s
        try:
            while not self._stop.is_set():
                size = batch_limit(self.source.queue_depth, batch_size)
                batch = self.source.get_batch(size, timeout=max(wait_s, 0.05))
                if batch:
                    self._handle(batch)
                self._tick(self.clock.now())
                self._do_chores()
                if time.monotonic() - synced >= self.settings.inventory.reorder_sync_s:
                    self._resync_reorders()
                    synced = time.monotonic()
                if keep_history and time.monotonic() - pruned >= prune_every_s:
                    self._prune_readings(self.clock.now())
                    pruned = time.monotonic()
        finally:
            self.digests.stop()
            # A send cut short here is retried at the next start (at least once); waiting for a
            # sender stuck on a locked database would overrun daemon.stop_timeout_s.
            self.sender.stop(timeout=SENDER_STOP_S)
            if watcher is not None:
                watcher.stop()
            self.source.stop()
            self.outgoing.stop()
            self.pipeline.core.close()
            if self._overdue is not None:
                self._overdue.cancel()  # stopped in time
            log.info("agent_stopped")
        return 0

    def _saved_state(self) -> tuple[list[Fact], list[SavedTrack], set[str]]:
        """What the last commit left: facts, tracked matches, and the alerts still open."""
        return self.store.facts(), self.store.tracks(), self.store.firing_alert_keys()

    def _refill_windows(self) -> int:
        """Each machine's metric windows from the readings of its longest window: averages and
        trends go on across a restart. How many readings were used."""
        now = self.clock.now()
        world = self.pipeline.core.world
        machines: dict[str, list[Fact]] = {}
        for fact in world:
            if fact.kind == "machine":
                machines.setdefault(fact.site, []).append(fact)
        used = 0
        for site, facts in machines.items():
            spans = {f.subject: window_spans(world.masterdata.machine(f.subject)) for f in facts}
            since = now - timedelta(seconds=max(max(span) for span in spans.values()))
            for start in range(0, len(facts), 500):
                chunk = facts[start : start + 500]
                rows = history.series(
                    self.store.engine, "machine", site, [f.subject for f in chunk], since
                )
                by_subject: dict[str, list[Reading]] = {}
                for row in rows:
                    by_subject.setdefault(row.subject, []).append(row)
                for fact in chunk:
                    saved = sorted(by_subject.get(fact.subject, ()), key=lambda r: r.bucket)
                    refill_windows(
                        world.windows_of(fact.key),
                        world.masterdata.machine(fact.subject),
                        [(r.metric, _summary_time(r, self.settings.history.resolution_s),
                          r.count, r.mean) for r in saved],
                    )  # fmt: skip
                    used += len(saved)
        return used

    def _prune_readings(self, now: datetime) -> None:
        """Delete the readings older than `history.retention_days` (at start, then every
        `history.prune_every_s` between two batches); a failure waits for the next time."""
        before = now - timedelta(days=self.settings.history.retention_days)
        try:
            deleted = history.prune(self.store.engine, before)
        except StoreError as exc:
            log.warning("readings_prune_failed", error=str(exc))
            return
        log.info("readings_pruned", deleted=deleted, before=before.isoformat())

    def _do_chores(self) -> None:
        self._apply_submitted()
        while True:
            try:
                _, why = self._chores.get_nowait()
            except queue.Empty:
                return
            self._reload(why)

    def _tick(self, now: datetime) -> None:
        """The scheduler ticks due by `now` (the runner decides which, as in replay)."""
        fed = self.runner.tick_until(now)
        if fed is not None and (fed.changes or fed.decisions):  # publish/notify: outbox rows
            self._stored(fed.changes)

    def _reload(self, why: str) -> None:
        """Validate the rule files and master data; swap to what changed and loads, keep what
        runs and raise an alert for what does not (see `agent.app.reload`)."""
        started = datetime.now(UTC)
        previous = self.pipeline.core.ruleset.hash
        reloaded = reload_policy(
            self.pipeline.core, self.policy, self._policy_files(), self.clock.now(), why
        )
        self.policy = reloaded.policy
        self.masterdata_refused = reloaded.masterdata_refused
        self.last_reload = (started, why)
        ruleset = reloaded.policy.ruleset
        took_ms = round((datetime.now(UTC) - started).total_seconds() * 1000, 1)
        if reloaded.rules_changed:
            log.info(
                "rules_reloaded",
                rule_set=ruleset.hash,
                previous=previous,
                rules=len(ruleset.rules),
                why=why,
                took_ms=took_ms,
            )
            self._generation += 1
            self.metrics.set_rule_set_generation(self._generation)
            self._record_rule_set(ruleset, why)
        elif not reloaded.rules_refused:
            log.info("rules_unchanged", rule_set=ruleset.hash, why=why, took_ms=took_ms)
        inputs = self.inputs.reload(
            self.topics, self._filters, self.source.subscriptions, started, why, ruleset.hash
        )
        self._commit_decisions([*reloaded.decisions, *inputs])

    def _filters(self, topics: TopicMap) -> list[str]:
        return partition_filters(topics, parse_sites(self.settings.mqtt.sites))

    def _policy_files(self) -> PolicyFiles:
        return PolicyFiles(
            Path(self.settings.rules.path),
            Path(self.settings.masterdata.items),
            Path(self.settings.masterdata.machines),
        )

    def _record_rule_set(self, ruleset: RuleSet, by: str) -> None:
        try:
            self.store.record_rule_set(ruleset.hash, ruleset.files, datetime.now(UTC), by)
        except StoreError as exc:
            log.error("rule_set_record_failed", rule_set=ruleset.hash, error=str(exc))

    def _commit_decisions(self, decisions: list[Decision]) -> None:
        fed = self.runner.commit(decisions)
        if fed is not None:
            self._stored(fed.changes)

    def _stored(self, changes: Sequence[StoredChange]) -> None:
        self.sender.wake()
        for change in changes:
            _log_change(change)

    def _handle(self, batch: Sequence[Inbound]) -> None:
        fresh = self._drop_redelivered(batch)
        if fresh is None:
            return  # stopping while the database is down: leave the batch unacknowledged
        raws = [Raw(i.topic, i.payload, self._dated(i)) for i, _ in fresh]
        fed = self.runner.feed(raws, [digest for _, digest in fresh])
        for topic, payload in self.topics.sparkplug.take_requests():  # Sparkplug B rebirths
            self._publish(topic, payload)
        if fed is None:
            return  # stopping while the database is down: leave the batch unacknowledged
        self._count(batch, fed)
        self.source.ack(batch)
        self._acked += len(batch)
        log.debug(
            "batch_acked", messages=len(batch), total=self._acked, skipped=len(batch) - len(fresh)
        )
        self.sender.wake()
        for rejected in fed.rejected:
            log.warning("dead_letter", topic=rejected.topic, reason=rejected.reason)
        for change in fed.changes:
            _log_change(change)

    def _dated(self, item: Inbound) -> datetime:
        """When a message happened: received now, or on a plant clock the time it carries."""
        if isinstance(self.clock, PlantClock):
            return self.clock.date(item.payload, item.received_at)
        return item.received_at

    def _count(self, batch: Sequence[Inbound], fed: Fed) -> None:
        metrics = self.metrics
        metrics.rule_evaluation.observe(fed.evaluation_s)
        metrics.commit.observe(fed.commit_s)
        count_messages(
            metrics, self.topics, [i.topic for i in batch], [r.topic for r in fed.rejected]
        )
        if fed.rejected:
            metrics.dead_letter(len(fed.rejected))
        for event, count in self.topics.sparkplug.counts.since_last().items():
            metrics.sparkplug.labels(event=event).inc(count)
        late = self.pipeline.core.world.out_of_order
        if late > self._out_of_order:
            metrics.out_of_order.inc(late - self._out_of_order)
            self._out_of_order = late
        for change in fed.changes:
            kind = "alert" if change.table == "alert" else str(change.row.get("kind", "action"))
            metrics.decision(kind, change.created)

    def _apply_submitted(self) -> None:
        """The console's commands, through the same store transition as MQTT commands."""
        hook = self.outbox.on_changes if self.outbox.active else None
        while True:
            try:
                command, done = self._people.get_nowait()
            except queue.Empty:
                return
            if not done.set_running_or_notify_cancel():
                continue  # the page gave up waiting
            at = datetime.now(UTC)
            try:
                row = self._retry(
                    f"apply the command {command.command}",
                    functools.partial(commands.apply, self.store, command, at, hook),
                )
            except TransitionError as exc:
                log.warning("command_refused", source="console", reason=str(exc))
                done.set_exception(exc)
                continue
            if row is None:
                done.set_exception(TransitionError("the agent is stopping; try again"))
                return
            log.info(
                "command_applied",
                command=command.command,
                table=command.target,
                id=command.id,
                by=command.by,
                status=row["status"],
                source="console",
            )
            closed = work_order_closed(self.pipeline.core, row, at)
            if closed:
                self._commit_decisions(closed)
            done.set_result(row)
            self.sender.wake()

    def _transition(self, command: commands.Command, at: datetime) -> dict[str, Any] | None:
        """Apply one command (and its outbox rows), retrying while the database is down; None
        when stopping."""
        hook = self.outbox.on_changes if self.outbox.active else None
        return self._retry(
            f"apply the command {command.command}",
            lambda: commands.apply(self.store, command, at, hook),
        )

    def _resync_reorders(self) -> None:
        """Reorders closed by hand (`done`, `cancel`) stop counting as on order."""
        now = self.clock.now()
        try:
            seed_reorders(self.pipeline.core, self.store, now)
            since = now - timedelta(seconds=2 * self.settings.inventory.reorder_sync_s)
            closed = sync_work_orders(self.pipeline.core, self.store, since, now)
        except StoreError as exc:
            log.warning("reorders_sync_failed", error=str(exc))
            return
        if closed:
            self._commit_decisions(closed)

    def _hook(
        self, decisions: Sequence[Decision], readings: Sequence[Reading] = ()
    ) -> ChangeHook | None:
        """What the store runs inside the batch's transaction: the outbox rows of the changes,
        and of the rules' `publish` and `notify` actions (sent later, retried, never lost), and
        the batch's readings (history)."""
        extra = [d for d in decisions if isinstance(d, (PublishDecision, NotifyDecision))]
        if not extra and not self.outbox.active and not readings:
            return None

        def hook(connection: Connection, changes: Sequence[StoredChange]) -> None:
            history.write(connection, readings)
            if self.outbox.active:
                self.outbox.on_changes(connection, changes)
            if extra:
                self.outbox.on_decisions(connection, extra)

        return hook

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
        self,
        outcome: Outcome,
        facts: Sequence[Fact],
        tracks: TrackChanges,
        processed: Sequence[str] = (),
    ) -> list[StoredChange] | None:
        """Store the outcome with the facts it changed (the snapshot) and, if history is kept,
        the readings of the messages the core took, in one transaction."""
        readings: list[Reading] = []
        if outcome.taken and self.settings.history.enabled:
            readings = summarize(outcome.taken, self.settings.history.resolution_s)
        hook = self._hook(outcome.decisions, readings)
        keep = self.settings.ingest.dedup_window
        return self._retry(
            "store the batch",
            lambda: self.store.apply(
                outcome,
                hook,
                facts=facts,
                tracks=tracks,
                processed=processed,
                keep_processed=keep,
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


class _DaemonWork:
    """The runner's unit of work in the daemon: the store and the outbox in one transaction,
    retried while the database is down (None: stopping meanwhile)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def commit(
        self,
        outcome: Outcome,
        facts: Sequence[Fact],
        tracks: TrackChanges,
        processed: Sequence[str],
    ) -> list[StoredChange] | None:
        return self._daemon._commit(outcome, facts, tracks, processed)

    def transition(self, command: commands.Command, at: datetime) -> dict[str, Any] | None:
        return self._daemon._transition(command, at)


def _outgoing_taken_over(event: str, reason: str, **context: Any) -> None:
    """The publishing connection (`{client_id}-out`) is taken over along with the subscriber's:
    the subscriber's alarm is the one raised; this is its consequence, logged at debug level."""
    context.pop("level", None)
    log.debug(event, reason=reason, connection="outgoing", **context)


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


def _summary_time(reading: Reading, resolution_s: int) -> float:
    """The time a saved bucket's samples are put at in a refilled window: its middle, or its
    last sample if earlier (a bucket still filling)."""
    middle = reading.bucket.timestamp() + resolution_s / 2
    return min(middle, reading.last_at.timestamp())


def batch_limit(queued: int, batch_size: int) -> int:
    """How many messages the next batch may take: `ingest.batch_size`, or BACKLOG_BATCHES times
    that from a backlog (more than a batch queued: after a restart or an outage), so a commit's
    fixed costs (the fsync, the digests' lookup, the outbox's wake-up) spread over more."""
    return batch_size * BACKLOG_BATCHES if queued > batch_size else batch_size


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
