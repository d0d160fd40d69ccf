"""Dead letters sent again: each raw payload is published to its original topic at QoS 1 and its
row deleted only after the broker's PUBACK, so a letter is never lost between the database and
the broker. Used by `factory-agent dead-letters reprocess` and the console's re-process button.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import delete

from agent.config import MqttSettings
from agent.errors import AgentError
from agent.store.repository import Store
from agent.store.tables import dead_letter_table

PUBACK_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0


class BrokerUnavailable(AgentError):
    """The configured broker cannot be reached or refuses us: one line with a hint."""


@dataclass(frozen=True, slots=True)
class Resent:
    """One dead letter's outcome: sent (and its row deleted) or kept, and why."""

    id: int
    topic: str
    size: int
    sent: bool
    problem: str = ""


def resend(store: Store, mqtt: MqttSettings, rows: Iterable[Mapping[str, Any]]) -> Iterator[Resent]:
    """Publish each row's payload again, in the given order; delete each row after its PUBACK.
    Raises BrokerUnavailable before the first one when the broker cannot be reached."""
    with Publisher(mqtt) as publisher:
        for row in rows:
            payload = bytes(row["payload"])
            id, topic = int(row["id"]), str(row["topic"])
            if not publisher.publish(topic, payload):
                problem = f"no PUBACK within {PUBACK_TIMEOUT_S:g} s"
                yield Resent(id, topic, len(payload), False, problem)
                continue
            with store.engine.begin() as connection:
                connection.execute(delete(dead_letter_table).where(dead_letter_table.c.id == id))
            yield Resent(id, topic, len(payload), True)


class Publisher:
    """A short-lived QoS 1 publisher on the configured broker, under its own client id (never
    the agent's: that would take the agent's session)."""

    def __init__(self, mqtt: MqttSettings) -> None:
        self.mqtt = mqtt
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{mqtt.client_id}-dead-letters",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if mqtt.username is not None:
            password = mqtt.password.get_secret_value() if mqtt.password else None
            self.client.username_pw_set(mqtt.username, password)
        if mqtt.tls:
            self.client.tls_set(
                ca_certs=str(mqtt.tls_ca_file) if mqtt.tls_ca_file else None,
                certfile=str(mqtt.tls_cert_file) if mqtt.tls_cert_file else None,
                keyfile=str(mqtt.tls_key_file) if mqtt.tls_key_file else None,
                cert_reqs=ssl.CERT_NONE if mqtt.tls_insecure else ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            if mqtt.tls_insecure:
                self.client.tls_insecure_set(True)
        self._answered = threading.Event()
        self._refused: str | None = None
        self.client.on_connect = self._on_connect

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        self._answered.set()

    def __enter__(self) -> Publisher:
        where = f"{self.mqtt.host}:{self.mqtt.port}"
        try:
            self.client.connect(self.mqtt.host, self.mqtt.port, keepalive=self.mqtt.keepalive_s)
        except (OSError, ValueError) as exc:
            raise BrokerUnavailable(
                f"cannot reach the broker {where}: {exc} "
                "(hint: is it running? check [mqtt] host and port)"
            ) from exc
        self.client.loop_start()
        if not self._answered.wait(CONNECT_TIMEOUT_S) or self._refused is not None:
            self.__exit__()
            why = self._refused or f"no answer within {CONNECT_TIMEOUT_S:g} s"
            raise BrokerUnavailable(
                f"the broker {where} refused the connection: {why} "
                "(hint: check [mqtt] username and password)"
            )
        return self

    def publish(self, topic: str, payload: bytes) -> bool:
        """True once the broker acknowledged the message (PUBACK), False if not in time."""
        info = self.client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(PUBACK_TIMEOUT_S)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def __exit__(self, *_exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()
