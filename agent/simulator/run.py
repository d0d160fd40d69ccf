"""`factory-agent simulate`: run the simulated factory and publish it to the broker (or a file).

Simulated time advances by `speed / rate` seconds per message whatever the real pacing, so a seed
and a `--start` give the same stream every time; `--record` writes it for `replay`.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import Settings
from agent.errors import ConfigError
from agent.simulator.factory import Factory
from agent.simulator.shapes import Shaper
from agent.world.masterdata import load_masterdata

log = structlog.get_logger(__name__)


def simulate(
    args: argparse.Namespace, settings: Settings, progress: Callable[[int], None] | None = None
) -> int:
    """Run until --messages, --duration or a signal; `progress` is told the messages sent so far
    after each step (for a progress bar)."""
    _check(args)
    masterdata = load_masterdata(
        Path(settings.masterdata.items), Path(settings.masterdata.machines)
    )
    start = _start(args.start)
    factory = Factory(
        random.Random(args.seed),
        start,
        masterdata.machines,
        masterdata.items,
        machine_count=args.machines,
        sku_count=args.skus,
        site=args.site,
        prefix=settings.mqtt.topic_prefix,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with ExitStack() as stack:
        record = stack.enter_context(args.record.open("w")) if args.record else None
        client = None if args.offline else stack.enter_context(_Broker(settings))
        shaper = Shaper(getattr(args, "shape", "builtin"))
        sent, published = _loop(args, factory, start, stop, client, record, progress, shaper)
    shape = "" if shaper.shape == "builtin" else f" (as {published} {shaper.shape} MQTT messages)"
    print(
        f"simulated {sent} messages{shape}, {factory.elapsed / 3600:.1f} h of factory time "
        f"({factory.orders} purchase orders placed)",
        file=sys.stderr,
    )
    return 0


def _check(args: argparse.Namespace) -> None:
    if args.rate <= 0 or args.speed <= 0:
        raise ConfigError("simulate: --rate and --speed must be greater than 0")
    if args.machines < 0 or args.skus < 0 or args.machines + args.skus == 0:
        raise ConfigError("simulate: give at least one machine or SKU")
    if args.offline and not (args.record and args.messages):
        raise ConfigError("simulate: --offline needs --record FILE and --messages N")


def _start(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"simulate: --start {text!r} is not ISO 8601") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _loop(
    args: argparse.Namespace,
    factory: Factory,
    start: datetime,
    stop: threading.Event,
    client: paho.Client | None,
    record: IO[str] | None,
    progress: Callable[[int], None] | None = None,
    shaper: Shaper | None = None,
) -> tuple[int, int]:
    """(the plant's reports, the MQTT messages they took): `--messages` counts reports, so a
    seed and a count are the same plant day in every shape."""
    shaper = shaper or Shaper("builtin")
    published = 0
    step = timedelta(seconds=args.speed / args.rate)
    began = time.monotonic()
    sent = tick = 0
    while not stop.is_set():
        if args.messages is not None and sent >= args.messages:
            break
        if args.duration is not None and time.monotonic() - began >= args.duration:
            break
        now = start + step * tick
        for report, payload in factory.step(now):
            for topic, body in shaper.messages(report, payload, now):
                _send(client, record, topic, body, now)
                published += 1
            sent += 1
        tick += 1
        if progress is not None:
            progress(sent)
        if client is not None:
            # Pacing, not synchronisation: wait for this message's slot in real time.
            stop.wait(max(0.0, began + tick / args.rate - time.monotonic()))
    return sent, published


def _send(
    client: paho.Client | None,
    record: IO[str] | None,
    topic: str,
    body: bytes,
    now: datetime,
) -> None:
    if client is not None:
        client.publish(topic, body, qos=1)
    if record is not None:
        entry: dict[str, Any] = {"ts": now.isoformat(), "topic": topic}
        if topic.startswith("spBv1.0/"):
            entry["payload_b64"] = base64.b64encode(body).decode()  # protobuf
        else:
            entry["payload"] = json.loads(body)
        record.write(json.dumps(entry, separators=(",", ":")) + "\n")


class _Broker:
    """A publishing paho client for the configured broker; waits for in-flight messages on exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.mqtt
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self.settings.client_id}-simulator",
            protocol=paho.MQTTv5,
        )
        self.client.max_queued_messages_set(10_000)
        if self.settings.username is not None:
            password = self.settings.password
            self.client.username_pw_set(
                self.settings.username, password.get_secret_value() if password else None
            )

    def __enter__(self) -> paho.Client:
        try:
            self.client.connect(self.settings.host, self.settings.port)
        except OSError as exc:
            raise ConfigError(
                f"simulate: no broker on {self.settings.host}:{self.settings.port}: {exc}"
            ) from exc
        self.client.loop_start()
        log.info("simulator_connected", host=self.settings.host, port=self.settings.port)
        return self.client

    def __exit__(self, *_exc: object) -> None:
        deadline = time.monotonic() + 10
        while self.client.want_write() and time.monotonic() < deadline:
            time.sleep(0.05)  # let the network thread flush what is queued
        self.client.disconnect()
        self.client.loop_stop()
