"""The MQTT edge: receive messages into a bounded queue, acknowledge them after commit, publish.

Persistent MQTT 5 session, manual QoS 1 acks and TCP backpressure, as measured in delivery.md.
"""

from __future__ import annotations

import functools
import queue
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.adapters.alarm import raise_alarm
from agent.adapters.mqttprobe import diagnose
from agent.adapters.takeover import TakeoverWatch

log = structlog.get_logger(__name__)

# How long a blocked on_message waits before it looks at the stop flag again.
_PUT_SLICE_S = 0.1
# How long `stop()` waits for the DISCONNECT (and the acks before it) to be written.
_FLUSH_ON_STOP_S = 2.0
# Raises an alarm: `(event, reason, *, level=..., **context)`, as `raise_alarm` after its
# publish and topic (the daemon's publishes it on `{prefix}/{site}/agent/alerts`).
Alarm = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message, frozen at once in the network thread."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    generation: int  # the connection it came on: an ack on a later connection would be wrong
    received_at: datetime  # aware UTC
    dup: bool = False  # the broker says it sent this message before (a redelivery)


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS to the broker: the CA to trust (None: the system's), an optional client certificate,
    and `insecure` to skip verifying the broker's certificate and name (tests only)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


class MqttSource:
    """Subscribes with a persistent session and hands messages over through a bounded queue.

    A message is acknowledged only when `ack()` is called, after the caller committed its effects;
    anything not acknowledged is redelivered by the broker on the next connection. When the queue is
    full, the network thread blocks, which stops reading from the socket: the broker slows down
    instead of the process growing.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        subscriptions: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        session_expiry_s: int = 604800,
        queue_size: int = 10000,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        tls: TlsOptions | None = None,
        alarm: Alarm | None = None,
    ) -> None:
        if not client_id:
            raise ValueError("MqttSource needs a fixed client_id: the session is kept under it")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.subscriptions = tuple(subscriptions)
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self._queue: queue.Queue[Inbound] = queue.Queue(queue_size)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._gone = threading.Event()  # set by on_disconnect
        # Guards the generation pair and the acks, so no ack is queued on a newer connection.
        self._lock = threading.Lock()
        self._generation = 0
        self._live_generation: int | None = None
        self._subscribe_mid: int | None = None
        self._tls = tls
        self._last_failure = ""
        self._takeover = TakeoverWatch()
        self._alarm: Alarm = alarm or functools.partial(raise_alarm, None, "")  # log only
        self._client = self._make_client(username, password, reconnect_min_s, reconnect_max_s)
        if tls is not None:
            _use_tls(self._client, tls)
        elif username is not None and not _is_loopback(host):
            log.warning(
                "mqtt_credentials_in_clear",
                host=host,
                username=username,
                hint="the password crosses the network unencrypted: set the mqtt.tls_* settings",
            )

    def _make_client(
        self,
        username: str | None,
        password: str | None,
        reconnect_min_s: float,
        reconnect_max_s: float,
    ) -> paho.Client:
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if username is not None:
            client.username_pw_set(username, password)
        # paho types these as int; fractional seconds work and keep tests quick.
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and keep reconnecting until `stop()`; returns at once."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.session_expiry_s
        self._stopping.clear()
        self._client.connect_async(
            self.host,
            self.port,
            keepalive=self.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()
        log.info("mqtt_starting", host=self.host, port=self.port, client_id=self.client_id)

    def stop(self) -> None:
        """Disconnect (the session stays on the broker) and stop the network thread."""
        self._stopping.set()
        self._gone.clear()
        rc = self._client.disconnect()
        # DISCONNECT goes out after the acks queued before it: wait for it to be written, so a
        # graceful stop does not leave the last batch's acks unsent.
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._gone.wait(_FLUSH_ON_STOP_S):
            log.warning("mqtt_stop_not_flushed", waited_s=_FLUSH_ON_STOP_S)
        self._client.loop_stop()
        self._mark_disconnected()
        log.info("mqtt_stopped", client_id=self.client_id, unacked_in_queue=self.queue_depth)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected and subscribed (the SUBACK came); False at the timeout."""
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        """Connected and subscribed: messages published from now on will reach this source."""
        return self._connected.is_set()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # -- consuming ----------------------------------------------------------------------------

    def get_batch(self, max_items: int, timeout: float) -> list[Inbound]:
        """Wait up to `timeout` for one message, then take what is queued, up to `max_items`."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(batch) < max_items:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def ack(self, items: Sequence[Inbound]) -> None:
        """Acknowledge committed messages, in the order given (MQTT wants the receive order).

        QoS 0 needs no ack; a message from an earlier connection cannot be acked any more (its
        packet id may now name another message) and the broker redelivers it instead.
        """
        stale = 0
        with self._lock:
            for item in items:
                if item.qos == 0:
                    continue
                if item.generation != self._live_generation:
                    stale += 1
                    continue
                self._client.ack(item.mid, item.qos)
        if stale:
            log.info("mqtt_ack_skipped_stale", count=stale, generation=self._live_generation)

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> paho.MQTTMessageInfo:
        """Queue a message; QoS 1 is sent (again) once connected, even if offline right now.

        The returned info tells when the broker acknowledged it (`wait_for_publish`)."""
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return info
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0:
            log.info("mqtt_publish_queued_offline", topic=topic, mid=info.mid)
            return info
        log.error("mqtt_publish_failed", topic=topic, qos=qos, error=paho.error_string(info.rc))
        return info

    def publish_acknowledged(
        self, messages: Sequence[tuple[str, bytes]], timeout: float = 5.0
    ) -> list[bool | None]:
        """Publish at QoS 1 while connected, all at once, then wait for every PUBACK within one
        `timeout`: per message True when it came, False if refused or not in time, None (nothing
        sent) while not connected."""
        if not self.connected:
            return [None] * len(messages)
        infos = [self.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout
        answers: list[bool | None] = []
        for info in infos:
            try:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.0))
            except (RuntimeError, ValueError):
                answers.append(False)
                continue
            answers.append(info.is_published())
        return answers

    # -- network thread callbacks ---------------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning(
                "mqtt_connect_refused",
                host=self.host,
                reason=str(reason_code),
                hint=_refusal_hint(reason_code),
            )
            return
        with self._lock:
            self._generation += 1
            self._live_generation = self._generation
        log.info(
            "mqtt_connected",
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            session_present=flags.session_present,
            generation=self._generation,
        )
        if not self.subscriptions:
            self._connected.set()
            return
        # A session can come back empty (broker crash): subscribe on every connect. `connected`
        # waits for the SUBACK, so it means "ready to receive".
        topics = [(topic, SubscribeOptions(qos=1)) for topic in self.subscriptions]
        _rc, self._subscribe_mid = client.subscribe(topics)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        found = diagnose(self.host, self.port, self._tls)
        # Every failure is logged, the same one at debug level after its first time: a broker down
        # for an hour must not fill the log with the same two lines each reconnect.
        again = found.reason == self._last_failure
        self._last_failure = found.reason
        (log.debug if again else log.warning)(
            "mqtt_connect_failed",
            host=self.host,
            port=self.port,
            reason=found.reason,
            hint=found.hint,
        )

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._mark_disconnected()
        self._gone.set()
        self._last_failure = ""
        log.info("mqtt_disconnected", reason=str(reason_code), stopping=self._stopping.is_set())
        if self._stopping.is_set():
            return
        if self._takeover.dropped(time.monotonic(), reason_code == "Session taken over"):
            self._taken_over(str(reason_code))

    def _taken_over(self, reason: str) -> None:
        """Another client has this agent's client id: the broker hands it the session (and the
        messages queued in it). A warning and an alarm, once per take-over (TakeoverWatch)."""
        try:
            self._alarm(
                "mqtt_session_taken_over",
                reason,
                level="warning",
                client_id=self.client_id,
                drops=self._takeover.recent_drops,
                hint=f"two agents share client id {self.client_id!r}: give each its own "
                "[mqtt] client_id",
            )
        except Exception as exc:  # the network thread must go on
            log.error("mqtt_takeover_alarm_failed", error=str(exc))

    def _mark_disconnected(self) -> None:
        with self._lock:
            self._live_generation = None
        self._connected.clear()

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid != self._subscribe_mid:
            return
        for topic, reason in zip(self.subscriptions, reason_codes, strict=False):
            if reason.is_failure:
                log.error("mqtt_subscribe_refused", topic=topic, reason=str(reason))
        self._connected.set()
        log.info("mqtt_subscribed", topics=list(self.subscriptions))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            # Brokers refuse such topics; left unacked, it comes back on the next connection.
            log.error("mqtt_topic_not_utf8", mid=message.mid)
            return
        item = Inbound(
            topic=topic,
            payload=bytes(message.payload),
            qos=message.qos,
            mid=message.mid,
            generation=self._generation,
            received_at=datetime.now(UTC),
            dup=bool(message.dup),
        )
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=_PUT_SLICE_S)
                return
            except queue.Full:
                continue
        # Stopping: not queued and not acked, so the broker redelivers it to the next session.

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("mqtt_publish_refused", mid=mid, reason=str(reason_code))


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _refusal_hint(reason_code: ReasonCode) -> str:
    text = str(reason_code)
    if text in ("Bad user name or password", "Not authorized"):
        return "check mqtt.username and the password (AGENT_MQTT__PASSWORD or mqtt.password_file)"
    if text == "Client identifier not valid":
        return "the broker refuses mqtt.client_id: use letters, digits and dashes"
    return "see the broker's log"


def _use_tls(client: paho.Client, tls: TlsOptions) -> None:
    """Verification is on unless `insecure`: the broker's certificate chain and host name."""
    client.tls_set(
        ca_certs=str(tls.ca_file) if tls.ca_file else None,
        certfile=str(tls.cert_file) if tls.cert_file else None,
        keyfile=str(tls.key_file) if tls.key_file else None,
        cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    if tls.insecure:
        client.tls_insecure_set(True)
        log.warning("mqtt_tls_verification_off")
