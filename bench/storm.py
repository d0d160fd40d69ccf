"""An alert storm: what 10,000 alerts raised by one tick cost the ingest around it.

A real daemon (`python -m agent run`, SQLite with the default `synchronous = FULL`, log level
info, a webhook route for every alert beside the MQTT publications) on a private Mosquitto.
10,000 machines behind one "gateway" report once, then fall silent; `sensor-stale` (the shipped
rule) with `stale_after_s` short makes all of them stale at one tick. Meanwhile 200 other
machines send telemetry at a fixed rate before, during and after. Each message's commit is seen
in the database (the digest the daemon commits with it, polled every 20 ms), so its lag is
publish -> commit; some are probes too (the `bench-probe` rule publishes their send time back
through the outbox), which must all come back once.

The same run is made twice, alternately: with the storm, and without it (the gateway machines'
`stale_after_s` an hour). Printed: the commit lag (p50 / max) of each, the time ingest lost
(the storm run's max lag minus the calm run's, i.e. how long ingest stood still), how long the
flow lagged over a second; alerts written, outbox rows, webhooks received; lost and doubled
counts (alert rows per key, outbox rows per key, probes back, messages committed).

    PYTHONPATH=. python bench/storm.py [--machines 10000] [--rate 1000] [--seconds 40]
        [--py-spy storm.txt]   (py-spy of the daemon during the storm run, `pip install py-spy`)
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
import workload  # noqa: E402

from tests.support.agent_process import AgentProcess  # noqa: E402
from tests.support.live import publish_burst  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.notify_servers import WebhookSink  # noqa: E402

LIVE = 200
PROBE_EVERY = 20
STALE_AFTER_S = 20
CLIENT_ID = "agent-storm"


def gateway(n: int) -> str:
    return f"g-{n:05d}"


def live(n: int) -> str:
    return f"m-{n:05d}"


RULES = {
    "rules": [
        {
            "id": "sensor-stale",
            "description": "No telemetry for `stale_after_s` (the shipped rule).",
            "when": {"m": 'kind == "machine" and stale'},
            "resolve_when": "not m.stale",
            "then": [
                {
                    "alert": {
                        "severity": "warning",
                        "message": "{m.machine}: no telemetry for {m.seen_s:.0f} s",
                    }
                }
            ],
        },
        workload.PROBE_RULE,
    ]
}


def write_setup(directory: Path, machines: int, storm: bool, port: int, hook: str) -> Path:
    rows = {}
    for n in range(machines):
        rows[gateway(n)] = {
            "line": "GW",
            "max_temp_c": 80,
            "stale_after_s": STALE_AFTER_S if storm else 3600,
        }
    for n in range(LIVE):
        rows[live(n)] = {
            "line": "L1",
            "max_temp_c": 80,
            "max_probe": 0.5,
            "min_sent_us": 0,
            "stale_after_s": 3600,
        }
    (directory / "machines.yaml").write_text(yaml.safe_dump({"machines": rows}), "utf-8")
    (directory / "items.yaml").write_text(yaml.safe_dump({"items": {}}), "utf-8")
    rules = directory / "rules"
    rules.mkdir()
    (rules / "storm.yaml").write_text(yaml.safe_dump(RULES, sort_keys=False), "utf-8")
    config = directory / "agent.toml"
    config.write_text(
        f"""\
[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "{CLIENT_ID}"

[database]
url = "sqlite:///{directory}/agent.db"

[rules]
path = "{rules}"
tick_s = 10

[masterdata]
items = "{directory / "items.yaml"}"
machines = "{directory / "machines.yaml"}"

[log]
level = "info"
format = "json"

[ingest]
unknown_subjects_max = 1000000

[notify]
channels = {{ ops = "{hook}" }}

[[notify.routes]]
name = "ops"
channels = ["ops"]
kind = ["alert"]
""",
        encoding="utf-8",
    )
    return config


@dataclass
class Probes:
    """Probe publications back: send time (µs) -> arrival times."""

    back: dict[int, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        now = time.time()
        sent = int(json.loads(message.payload)["sent"])
        with self.lock:
            self.back.setdefault(sent, []).append(now)


def telemetry(machine: str, probe: int, sent_us: int) -> tuple[str, bytes]:
    topic = f"factory/plant1/machine/{machine}/telemetry"
    payload = b'{"state":"running","temp_c":50.0,"probe":%d,"sent_us":%d}' % (probe, sent_us)
    return topic, payload


def flow(broker: Mosquitto, rate: int, seconds: float, sent: list[int], times: list[float]) -> None:
    """`rate` messages a second for `seconds`, paced; every PROBE_EVERY-th a probe. `times`:
    when each was published (epoch seconds)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="storm-flow")
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    start = time.monotonic()
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the publisher, not synchronising a test
        machine, round_ = i % LIVE, i // LIVE
        # A probe machine alternates probe and no probe, so each probe fires (and publishes).
        probe = int(machine % (PROBE_EVERY // 2) == 0 and round_ % 2 == 0)
        now = time.time()
        times.append(now)
        sent_us = int(now * 1e6)
        if probe:
            sent.append(sent_us)
        client.publish(*telemetry(live(machine), probe, sent_us), qos=1)
    client.loop_stop()
    client.disconnect()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"storm bench: {what} not within {timeout} s")
        time.sleep(0.2)


@dataclass
class Result:
    lags: list[float]
    probes_sent: int
    probes_back: int
    probes_doubled: int
    alerts: int
    alert_keys: int
    outbox: int
    outbox_keys: int
    processed: int
    published: int
    webhooks: int
    storm_s: float


def one_run(machines: int, rate: int, seconds: float, storm: bool, spy: str | None) -> Result:
    with tempfile.TemporaryDirectory(prefix="storm-") as name, Mosquitto(Path(name) / "mq") as mq:
        directory = Path(name)
        hook = WebhookSink()
        hook.start()
        config = write_setup(directory, machines, storm, mq.port, hook.url())
        probes = Probes()
        listener = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="storm-probes")
        listener.on_message = probes.on_message
        listener.connect(mq.host, mq.port)
        listener.subscribe(f"{workload.PROBE_TOPIC}/#", qos=1)
        listener.loop_start()
        agent = AgentProcess(config, cwd=directory)
        agent.start()
        spying: subprocess.Popen[bytes] | None = None
        try:
            agent.wait_for("mqtt_subscribed", timeout=60)
            # Every gateway machine reports once, then a probe marks that all are committed.
            warm = [telemetry(gateway(n), 0, 0) for n in range(machines)]
            warm += [telemetry(live(0), 1, 1), telemetry(live(0), 0, 0)]  # fired and over
            publish_burst(mq, warm, client_id="storm-warm")
            wait_until(lambda: 1 in probes.back, 120, "the warm-up")
            if spy and storm:
                assert agent.process is not None
                spying = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--format",
                        "raw",
                        "-o",
                        spy,
                        "-r",
                        "50",
                        "-d",
                        str(int(seconds) + 5),
                        "-p",
                        str(agent.process.pid),
                        "--subprocesses",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            sent: list[int] = []
            times: list[float] = []
            base = _committed(directory)
            watch = Commits(directory)
            watch.start()
            flow(mq, rate, seconds, sent, times)
            total = len(times)
            wait_until(lambda: watch.count() >= base + total, 300, "every message committed")
            watch.stop()
            try:
                wait_until(lambda: all(s in probes.back for s in sent), 300, "every probe back")
            except SystemExit:
                missing = [s for s in sent if s not in probes.back]
                print(f"{len(missing)} of {len(sent)} probes missing", file=sys.stderr)
                print(agent.tail(30), file=sys.stderr)
                raise
            if storm:
                wait_until(lambda: len(hook.requests) >= machines, 300, "every webhook")
            if spying is not None:
                spying.wait(60)
            storm_s = _storm_commit_s(agent) if storm else 0.0
        finally:
            agent.stop(timeout=60)
            listener.loop_stop()
            listener.disconnect()
            hook.stop()
        database = sqlite3.connect(directory / "agent.db")
        alerts, alert_keys = database.execute(
            "SELECT count(*), count(DISTINCT dedup_key) FROM alert WHERE rule_id = 'sensor-stale'"
        ).fetchone()
        outbox, outbox_keys = database.execute(
            "SELECT count(*), count(DISTINCT o.dedup_key) FROM outbox o "
            "JOIN alert a ON o.ref_table = 'alert' AND o.ref_id = a.id "
            "WHERE a.rule_id = 'sensor-stale'"
        ).fetchone()
        processed = database.execute("SELECT count(*) FROM processed_message").fetchone()[0]
        database.close()
        lags = watch.lags(base, times)
        return Result(
            lags=lags,
            probes_sent=len(sent),
            probes_back=sum(s in probes.back for s in sent),
            probes_doubled=sum(len(probes.back[s]) - 1 for s in sent if s in probes.back),
            alerts=alerts,
            alert_keys=alert_keys,
            outbox=outbox,
            outbox_keys=outbox_keys,
            processed=processed,
            published=machines + 2 + int(rate * seconds),
            webhooks=len(hook.requests),
            storm_s=storm_s,
        )


def _committed(directory: Path) -> int:
    """The id of the newest committed message's digest (one per message, in order)."""
    database = sqlite3.connect(f"file:{directory}/agent.db?mode=ro", uri=True, timeout=30)
    try:
        return int(database.execute("SELECT max(id) FROM processed_message").fetchone()[0] or 0)
    finally:
        database.close()


class Commits:
    """Polls how many messages are committed (every 20 ms): when each flow message was."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def count(self) -> int:
        return self.seen[-1][1] if self.seen else 0

    def _run(self) -> None:
        while not self._stop.wait(0.02):  # a sampling period, not a synchronisation
            self.seen.append((time.time(), _committed(self.directory)))

    def lags(self, base: int, published: list[float]) -> list[float]:
        """Commit time minus publish time of each flow message (to the sampling period)."""
        lags, at = [], 0
        for number, sent in enumerate(published):
            while at < len(self.seen) and self.seen[at][1] < base + number + 1:
                at += 1
            lags.append(self.seen[min(at, len(self.seen) - 1)][0] - sent)
        return lags


def _storm_commit_s(agent: AgentProcess) -> float:
    """From the first `rule_fired` of sensor-stale to the last `alert_fired` of it (the log)."""
    from datetime import datetime

    fired = [
        e
        for e in agent.events
        if e.get("event") == "rule_fired" and e.get("rule") == "sensor-stale"
    ]
    stored = [
        e
        for e in agent.events
        if e.get("event") == "alert_fired" and e.get("rule") == "sensor-stale"
    ]
    if not fired or not stored:
        return 0.0
    first = datetime.fromisoformat(fired[0]["timestamp"])
    last = datetime.fromisoformat(stored[-1]["timestamp"])
    return (last - first).total_seconds()


def over(lags: list[float], limit: float, every_s: float) -> float:
    """Seconds of flow during which messages lagged more than `limit`."""
    return sum(lag > limit for lag in lags) * every_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--py-spy", dest="spy", help="py-spy raw stacks of the storm run's daemon")
    args = parser.parse_args()
    calm = one_run(args.machines, args.rate, args.seconds, False, None)
    storm = one_run(args.machines, args.rate, args.seconds, True, args.spy)
    every_s = 1 / args.rate
    lost_s = max(storm.lags) - max(calm.lags)
    print(
        f"alert storm: {args.machines:,} machines stale at one tick, {args.rate:,} msg/s "
        f"for {args.seconds:.0f} s around it, SQLite FULL, one webhook route"
    )
    print(f"{'':<34}{'calm':>12}{'storm':>12}")
    for label, calm_v, storm_v in (
        ("commit lag p50 (s)", statistics.median(calm.lags), statistics.median(storm.lags)),
        ("commit lag max (s)", max(calm.lags), max(storm.lags)),
        ("flow lagging > 1 s (s)", over(calm.lags, 1, every_s), over(storm.lags, 1, every_s)),
    ):
        print(f"{label:<34}{calm_v:>12.2f}{storm_v:>12.2f}")
    print(f"{'tick to last alert logged (s)':<34}{'':>12}{storm.storm_s:>12.2f}")
    for label, calm_n, storm_n in (
        ("alert rows (sensor-stale)", calm.alerts, storm.alerts),
        ("  distinct keys", calm.alert_keys, storm.alert_keys),
        ("outbox rows of those alerts", calm.outbox, storm.outbox),
        ("  distinct keys", calm.outbox_keys, storm.outbox_keys),
        ("webhooks received", calm.webhooks, storm.webhooks),
        ("probes sent", calm.probes_sent, storm.probes_sent),
        ("probes back", calm.probes_back, storm.probes_back),
        ("probes back twice", calm.probes_doubled, storm.probes_doubled),
        ("messages published", calm.published, storm.published),
        ("messages committed (digests)", calm.processed, storm.processed),
    ):
        print(f"{label:<34}{calm_n:>12,}{storm_n:>12,}")
    lost = (storm.probes_sent - storm.probes_back) + (storm.published - storm.processed)
    lost += args.machines - storm.alert_keys + 2 * args.machines - storm.outbox_keys
    doubled = (storm.alerts - storm.alert_keys) + (storm.outbox - storm.outbox_keys)
    doubled += storm.probes_doubled
    verdict = "pass" if lost_s < 10 and lost == 0 and doubled == 0 else "FAIL"
    print(
        f"ingest lost to the storm (s)      {lost_s:>24.2f}   < 10 s, lost=0, doubled=0: {verdict}"
    )
    print(f"lost={lost} doubled={doubled}")


if __name__ == "__main__":
    main()
