"""MqttSource against a real, private Mosquitto: delivery, redelivery, sessions, reconnects.

No sleeps as synchronisation: every wait polls a condition under a deadline.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from structlog.testing import capture_logs

from agent.adapters.mqtt import Inbound, MqttSource
from tests.support.mosquitto import Mosquitto, free_port

DEADLINE_S = 10.0
STOCK = "factory/s1/stock/{sku}"

SourceFactory = Callable[..., MqttSource]


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@contextmanager
def plain_client(broker: Mosquitto, client_id: str = "") -> Iterator[paho.Client]:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(DEADLINE_S), "the plain paho client did not connect"
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    """Publish with QoS 1 and return once the broker has taken every message."""
    with plain_client(broker) as publisher:
        infos = [publisher.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(DEADLINE_S)


def stock_messages(count: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(STOCK.format(sku=f"sku-{i}"), f"{i}".encode()) for i in range(start, start + count)]


def receive(source: MqttSource, count: int, ack: bool = False) -> list[Inbound]:
    """Take `count` messages (acking each batch if asked) or fail at the deadline."""
    received: list[Inbound] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(received) < count and time.monotonic() < deadline:
        batch = source.get_batch(max_items=count - len(received), timeout=0.1)
        if ack:
            source.ack(batch)
        received.extend(batch)
    assert len(received) == count, f"received {len(received)} of {count} messages"
    return received


def payloads(items: list[Inbound]) -> list[bytes]:
    return [item.payload for item in items]


def receive_until_marker(source: MqttSource, broker: Mosquitto) -> list[Inbound]:
    """Publish a marker and return everything delivered before it: proof of what else came."""
    publish_all(broker, [(STOCK.format(sku="marker"), b"marker")])
    before: list[Inbound] = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for item in source.get_batch(max_items=100, timeout=0.1):
            if item.payload == b"marker":
                return before
            before.append(item)
    raise AssertionError(f"the marker never arrived; got {payloads(before)}")


@pytest.fixture
def make_source(broker: Mosquitto) -> Iterator[SourceFactory]:
    started: list[MqttSource] = []

    def make(**overrides: Any) -> MqttSource:
        options: dict[str, Any] = {
            "host": broker.host,
            "port": broker.port,
            "client_id": "agent-test",
            "subscriptions": ["factory/+/stock/#"],
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
        }
        options.update(overrides)
        source = MqttSource(**options)
        source.start()
        started.append(source)
        assert source.wait_connected(DEADLINE_S), broker.log_tail()
        return source

    yield make
    for source in started:
        source.stop()


def test_qos1_messages_arrive_as_frozen_inbound_values(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    source = make_source()

    publish_all(broker, stock_messages(3))
    items = receive(source, 3)

    assert [(i.topic, i.payload, i.qos) for i in items] == [
        ("factory/s1/stock/sku-0", b"0", 1),
        ("factory/s1/stock/sku-1", b"1", 1),
        ("factory/s1/stock/sku-2", b"2", 1),
    ]
    assert {i.generation for i in items} == {1}
    assert all(i.received_at.utcoffset() is not None for i in items)
    with pytest.raises(AttributeError):
        items[0].payload = b"changed"  # type: ignore[misc]


def test_unacked_messages_are_redelivered_to_the_next_source_and_acked_ones_are_not(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    first = make_source()
    publish_all(broker, stock_messages(10))
    items = receive(first, 10)
    first.ack(items[:5])
    first.stop()

    second = make_source()
    redelivered = receive_until_marker(second, broker)

    assert sorted(payloads(redelivered)) == [b"5", b"6", b"7", b"8", b"9"]


def test_messages_published_while_the_source_is_stopped_wait_in_its_session(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    make_source().stop()

    publish_all(broker, stock_messages(20))
    returned = make_source()

    assert payloads(receive(returned, 20, ack=True)) == [f"{i}".encode() for i in range(20)]


def test_source_reconnects_after_a_broker_restart_and_keeps_receiving(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    source = make_source()
    publish_all(broker, stock_messages(1))
    receive(source, 1, ack=True)

    with capture_logs() as events:
        broker.stop()
        assert wait_until(lambda: not source.connected), "the source missed the broker leaving"
        broker.start()
        assert source.wait_connected(DEADLINE_S), broker.log_tail()

    publish_all(broker, stock_messages(1, start=1))
    (after,) = receive(source, 1, ack=True)
    assert after.payload == b"1"
    assert after.generation == 2
    assert [e["session_present"] for e in events if e["event"] == "mqtt_connected"] == [True]


def test_source_subscribes_again_when_the_broker_lost_its_sessions(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    source = make_source()

    with capture_logs() as events:
        broker.stop(kill=True)
        broker.wipe_persistence()
        assert wait_until(lambda: not source.connected), "the source missed the broker leaving"
        broker.start()
        assert source.wait_connected(DEADLINE_S), broker.log_tail()

    publish_all(broker, stock_messages(1))
    assert payloads(receive(source, 1)) == [b"0"]
    assert [e["session_present"] for e in events if e["event"] == "mqtt_connected"] == [False]


def test_ack_of_a_message_from_an_earlier_connection_is_skipped_and_it_is_redelivered(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    source = make_source()
    publish_all(broker, stock_messages(1))
    (old,) = receive(source, 1)

    broker.restart()
    (again,) = receive(source, 1)  # the broker resends what was in flight on the old connection
    with capture_logs() as events:
        source.ack([old])  # its packet id belongs to the old connection: must not be sent
    source.stop()

    assert (again.payload, again.generation) == (old.payload, old.generation + 1)
    assert [e["count"] for e in events if e["event"] == "mqtt_ack_skipped_stale"] == [1]
    assert payloads(receive_until_marker(make_source(), broker)) == [b"0"]


def test_a_full_queue_blocks_delivery_without_losing_messages(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    source = make_source(queue_size=10)
    publish_all(broker, stock_messages(200))
    assert wait_until(lambda: source.queue_depth == 10), "the queue never filled"

    # Nobody consumes for a while: the depth must stay at the bound while the broker holds the rest.
    depths = []
    watch_until = time.monotonic() + 0.3
    while time.monotonic() < watch_until:
        depths.append(source.queue_depth)
        time.sleep(0.005)
    assert max(depths) == 10

    items = receive(source, 200, ack=True)
    assert payloads(items) == [f"{i}".encode() for i in range(200)]
    assert "dropped" not in broker.log_text()


def test_stop_unblocks_a_full_queue_and_the_next_source_gets_every_message(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    blocked = make_source(queue_size=1)
    publish_all(broker, stock_messages(5))
    assert wait_until(lambda: blocked.queue_depth == 1), "the queue never filled"

    stopper = threading.Thread(target=blocked.stop)
    stopper.start()
    stopper.join(DEADLINE_S)
    assert not stopper.is_alive(), "stop() hung on the blocked network thread"

    returned = make_source()
    assert payloads(receive_until_marker(returned, broker)) == [f"{i}".encode() for i in range(5)]


@contextmanager
def agent_topics(broker: Mosquitto) -> Iterator[queue.Queue[paho.MQTTMessage]]:
    """What arrives on factory/s1/agent/#, for a plain subscriber that is subscribed already."""
    arrived: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    with plain_client(broker) as subscriber:
        subscriber.on_message = lambda _client, _userdata, message: arrived.put(message)
        subscriber.on_subscribe = lambda *_args: subscribed.set()
        subscriber.subscribe("factory/s1/agent/#", qos=1)
        assert subscribed.wait(DEADLINE_S)
        yield arrived


def test_publish_reaches_a_plain_subscriber(broker: Mosquitto, make_source: SourceFactory) -> None:
    with agent_topics(broker) as arrived:
        source = make_source(subscriptions=[])
        source.publish("factory/s1/agent/alerts", b'{"id": 1}')

        message = arrived.get(timeout=DEADLINE_S)
    assert (message.topic, message.payload, message.qos) == (
        "factory/s1/agent/alerts",
        b'{"id": 1}',
        1,
    )


def test_many_publications_are_acknowledged_together_or_not_sent_while_offline(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    messages = [(f"factory/s1/agent/probe/{i}", f"{i}".encode()) for i in range(200)]
    with agent_topics(broker) as arrived:
        source = make_source(subscriptions=[])
        assert source.publish_acknowledged(messages) == [True] * 200
        got = [arrived.get(timeout=DEADLINE_S).payload for _ in messages]
    assert got == [payload for _, payload in messages]  # all of them, in order

    broker.stop()
    assert wait_until(lambda: not source.connected)
    assert source.publish_acknowledged(messages[:3]) == [None, None, None]


def test_a_closed_broker_port_is_logged_with_the_reason_and_a_hint() -> None:
    port = free_port()
    source = MqttSource(
        host="127.0.0.1",
        port=port,
        client_id="nobody-home",
        subscriptions=["factory/#"],
        reconnect_min_s=0.1,
        reconnect_max_s=0.2,
    )
    with capture_logs() as logs:
        source.start()
        try:
            assert wait_until(
                lambda: sum(e["event"] == "mqtt_connect_failed" for e in logs) >= 2
            ), "no second connection attempt"
        finally:
            source.stop()
    failures = [e for e in logs if e["event"] == "mqtt_connect_failed"]
    assert failures[0]["reason"] == f"connection refused at 127.0.0.1:{port}"
    assert "make broker" in failures[0]["hint"]
    # The same failure again is not a new warning: an hour of outage is not an hour of warnings.
    assert [e["log_level"] for e in failures[:2]] == ["warning", "debug"]


def test_a_second_client_with_the_same_id_is_warned_about(
    broker: Mosquitto, make_source: SourceFactory
) -> None:
    with capture_logs() as logs:
        make_source(client_id="twin")
        make_source(client_id="twin")
        assert wait_until(lambda: any(e["event"] == "mqtt_session_taken_over" for e in logs))
    (warning, *_) = [e for e in logs if e["event"] == "mqtt_session_taken_over"]
    assert warning["log_level"] == "warning" and "client_id" in warning["hint"]
