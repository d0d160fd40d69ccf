"""Drain a queued backlog: the real daemon beside a bare subscriber, on the same queue contents.

    python bench/drain.py                      # 100k messages, 10k SKUs, 1k machines, once
    python bench/drain.py --repeat 3           # bare, agent, bare, agent, ...: each and the median
    python bench/drain.py --messages 20000     # a quick one

For each consumer, on a private Mosquitto (bench/run.py's Broker: unbounded queue): its
persistent session is made first (MQTT 5, clean start, session expiry, subscribe, disconnect),
then N QoS 1 messages of the noisy plant (bench/noisy.py) are published while it is away (every
PUBACK awaited: the broker holds them all), then it connects and drains. Drain rate = N / (time
from its connect to the N-th message done):

- bare: a paho subscriber, MQTT 5, persistent session, manual ack, `json.loads`; done = N-th
  message acknowledged;
- agent: `python -m agent run` with the shipped settings (SQLite FULL sync, batches of 500, the
  engine worker, rules/ as shipped, `[notify] publish_mqtt` on) plus `[http]` for /metrics;
  connect = its `mqtt_connected` log line, done = `factory_agent_messages_total` (counted after
  a batch's commit, before its acknowledgement) reaching N and the alert on the last message (a
  count of -1 for the SKU DRAIN-END: `negative-count`) in the database. The counter alone can
  run ahead: a redelivery the agent skips is counted again.

The same list is published for both (the same seed; each message gets a recent `ts` when it is
published: spread over the `--span-s` seconds before). Prints both rates, the ratio against 75%
(the target) and 30% (double the 15% of issue 15), the decisions (rows the agent wrote per
message), RSS of the daemon and its engine worker at the end of the drain, and the run time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path[:0] = [str(REPO), str(BENCH)]

import paho.mqtt.client as paho  # noqa: E402
import workload  # noqa: E402
from noisy import NoisyPlant, stamp  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from run import Broker, agent_toml, py_spy, rss_mb, verdict  # noqa: E402

from agent.ingest.topics import TopicMap  # noqa: E402
from tests.support.agent_process import AgentProcess  # noqa: E402
from tests.support.mosquitto import free_port  # noqa: E402

AGENT_ID = "bench-agent"
BARE_ID = "bench-bare"
SESSION_EXPIRY_S = 86_400
WINDOW = 500  # unacknowledged publishes at most (as bench/publisher.py)
STALL_S = 120.0  # no progress for this long: something is stuck
POLL_S = 0.1  # /metrics polling: the agent's drain ends within this of what is printed
TARGET, DOUBLED = 0.75, 0.30
# The last message: a count of -1 for a SKU of its own, which the shipped `negative-count` rule
# alerts on. Its alert row means the agent committed it; the agent handles messages in order.
END_SKU = "DRAIN-END"
END = (f"{workload.PREFIX}/{workload.SITE}/stock/{END_SKU}", b'{"on_hand":-1}')


@dataclass(frozen=True, slots=True)
class AgentDrain:
    rate: float
    rss_mb: float
    rows: int
    by_rule: dict[str, int]


def _connect_properties(expiry_s: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = expiry_s
    return properties


def _client(client_id: str) -> paho.Client:
    return paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5,
        manual_ack=True,
    )


def make_session(port: int, client_id: str, filters: list[str]) -> None:
    """A fresh persistent session for `client_id`, subscribed to `filters` at QoS 1, left
    disconnected: the broker queues for it from now on."""
    subscribed = threading.Event()
    client = _client(client_id)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(
        "127.0.0.1", port, clean_start=True, properties=_connect_properties(SESSION_EXPIRY_S)
    )
    client.loop_start()
    client.subscribe([(f, paho.SubscribeOptions(qos=1)) for f in filters])
    if not subscribed.wait(10):
        raise SystemExit(f"{client_id}: no SUBACK within 10 s")
    client.disconnect()
    client.loop_stop()


def drop_session(port: int, client_id: str) -> None:
    """Forget `client_id`'s session (and what is queued for it): clean start, expiry 0."""
    connected = threading.Event()
    client = _client(client_id)
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port, clean_start=True, properties=_connect_properties(0))
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit(f"{client_id}: no CONNACK within 10 s")
    client.disconnect()
    client.loop_stop()


def publish_all(port: int, messages: list[tuple[str, bytes]], span_s: float) -> None:
    """Publish at QoS 1 and return once the broker acknowledged every message; message i gets
    `ts` = now - span_s + i * span_s / N: recent, ascending."""
    window = threading.BoundedSemaphore(WINDOW)
    done = threading.Event()
    acked = 0

    def on_publish(client: paho.Client, userdata: object, mid: int, *rest: object) -> None:
        nonlocal acked
        acked += 1
        window.release()
        if acked >= len(messages):
            done.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-drain-pub")
    client.max_inflight_messages_set(WINDOW * 2)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    start, step = time.time() - span_s, span_s / max(len(messages), 1)
    for i, (topic, payload) in enumerate(messages):
        if not window.acquire(timeout=STALL_S):
            raise SystemExit(f"no acknowledgement from the broker for {STALL_S} s")
        client.publish(topic, stamp(payload, start + i * step), qos=1)
    if not done.wait(STALL_S):
        raise SystemExit(f"only {acked} of {len(messages)} messages acknowledged")
    client.disconnect()
    client.loop_stop()


def bare_drain(port: int, count: int) -> float:
    """Messages/s of a bare MQTT 5 subscriber draining its queued session: connect to the
    `count`-th message decoded and acknowledged."""
    done = threading.Event()
    seen = 0

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal seen
        json.loads(message.payload)
        client.ack(message.mid, message.qos)
        seen += 1
        if seen >= count:
            done.set()

    client = _client(BARE_ID)
    client.on_message = on_message
    started = time.time()
    client.connect(
        "127.0.0.1", port, clean_start=False, properties=_connect_properties(SESSION_EXPIRY_S)
    )
    client.loop_start()
    last, last_at = 0, time.monotonic()
    while not done.wait(POLL_S):
        if seen != last:
            last, last_at = seen, time.monotonic()
        elif time.monotonic() - last_at > STALL_S:
            raise SystemExit(f"bare subscriber: only {seen} of {count} messages came")
    ended = time.time()
    client.disconnect()
    client.loop_stop()
    return count / (ended - started)


def agent_config(directory: Path, port: int, items: Path, machines: Path) -> Path:
    """The shipped settings (config/agent.toml's defaults, the shipped rules) but for the broker,
    the database, the master data, JSON logs for the benchmark to read and /metrics."""
    return agent_toml(
        directory,
        port=port,
        client_id=AGENT_ID,
        rules=REPO / "rules",
        items=items,
        machines=machines,
        extra=f"[http]\nenabled = true\nport = {free_port()}\n",
    )


def committed(port: int) -> int:
    """factory_agent_messages_total, all kinds and outcomes, from the agent's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return round(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("factory_agent_messages_total")
        )
    )


def end_committed(database: Path) -> bool:
    """Whether the agent committed the alert on the last message (`END`)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        found = db.execute("SELECT 1 FROM alert WHERE subject = ? LIMIT 1", (END_SKU,))
        return found.fetchone() is not None


def decision_rows(database: Path) -> dict[str, int]:
    """Rows of the alert and action tables, by rule (the last message's alerts left out)."""
    with sqlite3.connect(database) as db:
        found = db.execute(
            "SELECT rule_id, count(*) FROM alert WHERE subject != ? GROUP BY rule_id "
            "UNION ALL SELECT rule_id, count(*) FROM action GROUP BY rule_id",
            (END_SKU,),
        ).fetchall()
    by_rule: dict[str, int] = {}
    for rule, rows in found:
        by_rule[rule] = by_rule.get(rule, 0) + rows
    return dict(sorted(by_rule.items(), key=lambda kv: -kv[1]))


def connect_event(agent: AgentProcess, client_id: str) -> dict[str, object]:
    """The daemon's first `mqtt_connected` line for `client_id` (its outbox sender connects
    under a client id of its own)."""
    for n in range(1, 10):
        event = agent.wait_for("mqtt_connected", timeout=120, count=n)
        if event.get("client_id") == client_id:
            return event
    raise SystemExit(f"the agent never connected as {client_id}")


def agent_drain(
    port: int,
    directory: Path,
    messages: list[tuple[str, bytes]],
    args: argparse.Namespace,
    spy_output: Path | None,
) -> AgentDrain:
    """The daemon draining `messages` queued for its session while it was away."""
    directory.mkdir(parents=True)
    items, machines = workload.write_masterdata(directory, args.skus, args.machines)
    config = agent_config(directory, port, items, machines)
    make_session(port, AGENT_ID, TopicMap("factory").builtin_subscriptions())
    publish_all(port, messages, args.span_s)
    agent = AgentProcess(config, directory)
    agent.start()
    try:
        assert agent.process is not None
        pid = agent.process.pid
        agent.wait_for("mqtt_starting", timeout=120)
        spy = py_spy(pid, spy_output)
        connected = connect_event(agent, AGENT_ID)
        started = datetime.fromisoformat(str(connected["timestamp"])).timestamp()
        if not connected.get("session_present"):
            print("  ! the agent found no session on the broker: nothing was queued for it")
        http = int(agent.wait_for("http_started", timeout=60)["port"])
        count, last, last_at = 0, -1, time.monotonic()
        # Done: every message counted (after its batch's commit; a redelivery counts again) and
        # the last one's alert committed.
        while count < len(messages) or not end_committed(directory / "agent.db"):
            if agent.process.poll() is not None:
                raise SystemExit(f"the agent exited during the drain:\n{agent.tail()}")
            count = committed(http)
            if count != last:
                last, last_at = count, time.monotonic()
            elif time.monotonic() - last_at > STALL_S:
                raise SystemExit(
                    f"agent: {count} of {len(messages)} messages counted, the last one's alert "
                    f"{'committed' if end_committed(directory / 'agent.db') else 'not committed'}"
                )
            time.sleep(POLL_S)  # polling a counter with a deadline
        ended = time.time()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        rss = rss_mb(pid)
        connects = [e for e in agent.events if e.get("event") == "mqtt_connected"]
        again = sum(e.get("client_id") == AGENT_ID for e in connects) - 1
        if again:
            print(f"  ! the agent reconnected {again} times during the drain", flush=True)
    finally:
        agent.stop(timeout=60)
    by_rule = decision_rows(directory / "agent.db")
    return AgentDrain(len(messages) / (ended - started), rss, sum(by_rule.values()), by_rule)


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="queued messages (100k)")
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--span-s", type=float, default=60.0, help="the messages' ts span the last S s (60)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="bare + agent rounds (1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--inflight", type=int, default=100, help="broker max_inflight (100)")
    parser.add_argument("--py-spy", type=Path, help="record the daemon's stacks here (raw)")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    return parser.parse_args(argv)


def drain(args: argparse.Namespace) -> dict[str, float]:
    """Run the rounds, print each and the medians; return the medians."""
    began = time.monotonic()
    directory = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    messages = [*NoisyPlant(args.skus, args.machines, args.seed).messages(args.messages - 1), END]
    print(
        f"drain of {args.messages:,} queued QoS 1 messages: {args.skus:,} SKUs, "
        f"{args.machines:,} machines, shipped rules, seed {args.seed}; "
        f"load average {Path('/proc/loadavg').read_text().split()[0]}",
        flush=True,
    )
    bare: list[float] = []
    agent: list[AgentDrain] = []
    with Broker(args.inflight) as broker:
        for round_ in range(args.repeat):
            make_session(broker.port, BARE_ID, ["factory/#"])
            publish_all(broker.port, messages, args.span_s)
            bare.append(bare_drain(broker.port, len(messages)))
            drop_session(broker.port, BARE_ID)
            print(f"  round {round_ + 1}: bare {bare[-1]:,.0f} msg/s", flush=True)
            spy = args.py_spy if round_ == 0 else None
            agent.append(
                agent_drain(broker.port, directory / f"agent-{round_}", messages, args, spy)
            )
            drop_session(broker.port, AGENT_ID)
            a = agent[-1]
            rules = ", ".join(f"{rule} {rows}" for rule, rows in a.by_rule.items())
            print(
                f"  round {round_ + 1}: agent {a.rate:,.0f} msg/s ({a.rate / bare[-1]:.0%} of "
                f"bare), RSS {a.rss_mb:.0f} MB, decisions {a.rows / len(messages):.1%} "
                f"({a.rows:,} rows: {rules})",
                flush=True,
            )
    if args.keep:
        print(f"  kept {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)
    result = {
        "bare": statistics.median(bare),
        "agent": statistics.median(a.rate for a in agent),
        "ratio": statistics.median(a.rate / b for a, b in zip(agent, bare, strict=True)),
        "rss_mb": statistics.median(a.rss_mb for a in agent),
        "decisions": statistics.median(a.rows / len(messages) for a in agent),
        "seconds": time.monotonic() - began,
    }
    which = "median of " + str(args.repeat) + " rounds" if args.repeat > 1 else "one round"
    print(f"\ndrain a queued backlog, {args.messages:,} messages ({which}, same run):")
    print(f"  bare subscriber (MQTT 5, manual ack, json)  {result['bare']:,.0f} msg/s")
    print(f"  factory-agent, shipped settings              {result['agent']:,.0f} msg/s")
    print(
        f"  agent / bare  {result['ratio']:.0%}   >= 75%: {verdict(result['ratio'] >= TARGET)}"
        f"   >= 30% (doubled from 15%): {verdict(result['ratio'] >= DOUBLED)}"
    )
    print(f"  decisions {result['decisions']:.1%} of messages (rows written / messages)")
    print(f"  RSS daemon + engine worker at the end of the drain {result['rss_mb']:.0f} MB")
    print(f"  run time {result['seconds']:.0f} s", flush=True)
    if args.json:
        print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    drain(options())
