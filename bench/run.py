"""The performance benchmark: the real daemon against a private Mosquitto, and the bare ceiling.

    python bench/run.py            # the full run (1M messages; about half an hour on 2 cores)
    python bench/run.py --quick    # a small version in a few minutes

Prints one table: every figure of issue 9, each target with pass or fail. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path[:0] = [str(REPO), str(BENCH)]

import paho.mqtt.client as paho  # noqa: E402
import workload  # noqa: E402
from corecost import core_cost  # noqa: E402
from mapping import shape_costs  # noqa: E402
from publisher import history_times  # noqa: E402

from tests.support.agent_process import AgentProcess  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

Row = tuple[str, str, str, str]  # figure, value, target, verdict


@dataclass(frozen=True, slots=True)
class Run:
    """One published stream: its first publish and last probe back (s), and probe latencies."""

    start: float
    done: float
    count: int
    latencies: list[float]


class Broker(Mosquitto):
    """The tests' broker with an unbounded queue (the agent may lag the publisher by a million),
    a production-like autosave (saving a million queued messages every second stalls it) and
    the in-flight window asked for (`--inflight`: unacknowledged messages sent to a client)."""

    def __init__(self, inflight: int) -> None:
        self.inflight = inflight  # before the base class writes the configuration
        super().__init__()

    def _config(self) -> str:
        text = super()._config().replace("max_queued_messages 200000", "max_queued_messages 0")
        text = text.replace("max_inflight_messages 100", f"max_inflight_messages {self.inflight}")
        return text.replace("autosave_interval 1\n", "autosave_interval 300\n")


class Probes:
    """Collects what the agent publishes back for probes: (received, sent) in seconds."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[float, float]] = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-probes")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        for topic in (f"{workload.PROBE_TOPIC}/#", f"+/+/{workload.PROBE_TOPIC}/#"):
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        sent = json.loads(msg.payload)["sent"]
        self.seen.append((time.time(), float(sent) / 1e6))

    def wait(self, since: int, count: int, stall_s: float = 60.0) -> list[tuple[float, float]]:
        """The probes from index `since` on, once `count` came (or none came for `stall_s`)."""
        last, last_at = len(self.seen), time.monotonic()
        while len(self.seen) - since < count:
            if len(self.seen) != last:
                last, last_at = len(self.seen), time.monotonic()
            elif time.monotonic() - last_at > stall_s:
                print(f"  ! only {len(self.seen) - since} of {count} probes came back", flush=True)
                break
            time.sleep(0.05)  # polling a counter with a deadline
        return self.seen[since:]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish(
    port: int, count: int, seed: int, rate: float = 0.0, extra: tuple[str, ...] = ()
) -> dict[str, float]:
    out = subprocess.run(
        [
            *(sys.executable, str(BENCH / "publisher.py"), "--port", str(port)),
            *("--count", str(count), "--seed", str(seed), "--rate", str(rate), *extra),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ceiling(port: int, count: int, seed: int, mqtt5: bool = False) -> float:
    """Messages/s a bare subscriber receives from the same publisher: first publish to last."""
    sub = subprocess.Popen(
        [
            *(sys.executable, str(BENCH / "ceiling.py"), "--port", str(port)),
            *("--count", str(count), *(["--mqtt5"] if mqtt5 else [])),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sub.stdout is not None
    sub.stdout.readline()  # ready: subscribed
    sent = publish(port, count, seed)
    seen = json.loads(sub.stdout.readline())
    sub.wait(30)
    return count / (seen["last"] - sent["start"])


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (an engine worker, if any), in MB; each
    process's share is printed."""
    total, pending, shares = 0, [pid], []
    while pending:
        current = pending.pop()
        for line in Path(f"/proc/{current}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                shares.append(f"{current}: {int(line.split()[1]) / 1024:.0f} MB")
        for task in Path(f"/proc/{current}/task").iterdir():
            pending.extend(int(c) for c in (task / "children").read_text().split())
    print(f"    RSS {', '.join(shares)}", flush=True)
    return total / 1024


def agent_toml(
    directory: Path,
    *,
    port: int,
    client_id: str,
    rules: Path,
    items: Path,
    machines: Path,
    database_url: str = "",
    mqtt: str = "",
    rules_extra: str = "",
    extra: str = "",
) -> Path:
    """`directory/agent.toml` for a benchmark's daemon: the shipped settings but for the broker,
    the database (SQLite in `directory` unless `database_url`), the rules and master data, and
    JSON logs at info for the benchmark to read. `mqtt` and `rules_extra` are more lines of
    those tables; `extra` more tables."""
    path = directory / "agent.toml"
    path.write_text(
        f"""\
[mqtt]
port = {port}
client_id = "{client_id}"
{mqtt}[database]
url = "{database_url or f"sqlite:///{directory}/agent.db"}"
[rules]
path = "{rules}"
{rules_extra}[masterdata]
items = "{items}"
machines = "{machines}"
[log]
level = "info"
format = "json"
{extra}""",
        encoding="utf-8",
    )
    return path


NO_MQTT_OUTPUT = "[notify]\npublish_mqtt = false\n"


def py_spy(pid: int, output: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the daemon (collapsed stacks, `--format raw`) while the timed run lasts."""
    if output is None:
        return None
    spy = subprocess.Popen(
        [
            *(str(Path(sys.executable).with_name("py-spy")), "record", "--subprocesses"),
            *("--pid", str(pid)),
            *("--format", "raw", "--output", str(output), "--rate", "50"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches; nothing to wait on
    return spy


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def drive(
    port: int,
    probes: Probes,
    count: int,
    seed: int,
    rate: float = 0.0,
    sweep: bool = False,
    history_min: float = 0.0,
) -> Run:
    """Publish `count` messages (after `history_min` minutes of the machines' past); wait until
    the agent committed the last probe (it publishes back after the commit, and it handles
    messages in order)."""
    since = len(probes.seen)
    extra = ("--first-probe", str(since), *(("--sweep",) if sweep else ()))
    extra += ("--history-min", str(history_min))
    sent = publish(port, count, seed, rate, extra)
    back = probes.wait(since, count // workload.PROBE_EVERY)
    done = max(received for received, _ in back) if back else time.time()
    latencies = [(received - sent_at) * 1000 for received, sent_at in back]
    return Run(sent["start"], done, count, latencies)


def daemon_figures(args: argparse.Namespace, port: int, directory: Path) -> tuple[list[Row], float]:
    items, machines = workload.write_masterdata(directory, args.skus, args.machines)
    rules = workload.write_rules(directory / "rules", args.rules)
    config = agent_toml(
        directory,
        port=port,
        client_id="bench-agent",
        rules=rules,
        items=items,
        machines=machines,
        rules_extra=f'watch = false\nengine = "{args.engine}"\n',
        extra=NO_MQTT_OUTPUT,
    )
    agent = AgentProcess(config, directory)
    probes = Probes(port)
    agent.start()
    rows: list[Row] = []
    try:
        agent.wait_for("mqtt_subscribed", timeout=120)
        assert agent.process is not None
        pid = agent.process.pid
        drive(port, probes, args.warmup, seed=2, sweep=True, history_min=args.history_min)
        steady = rss_mb(pid)
        past = len(history_times(args.history_min * 60, 0.0)) * args.machines
        print(
            f"  warm-up {past:,} messages of {args.history_min:g} min of telemetry history, then "
            f"{args.warmup:,} messages: RSS {steady:.0f} MB",
            flush=True,
        )
        spy = py_spy(pid, args.py_spy)
        run = drive(port, probes, args.messages, seed=3)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        rate = run.count / (run.done - run.start)
        after = rss_mb(pid)
        print(f"  end to end: {rate:,.0f} messages/s, RSS {after:.0f} MB", flush=True)
        rows.append(("end-to-end throughput (msg/s)", f"{rate:,.0f}", "", ""))
        total = args.warmup + args.messages
        for n, goal in enumerate(args.soak):
            drive(port, probes, goal - total, seed=10 + n)
            total = goal
            grown = rss_mb(pid)
            rows.append(
                (
                    f"RSS after {total:,} messages (MB)",
                    f"{grown:.0f}",
                    "<= +5%",
                    verdict(grown <= steady * 1.05),
                )
            )
        for rate_goal in (1000, 5000):
            count = int(rate_goal * args.latency_s)
            lat = drive(port, probes, count, seed=rate_goal, rate=rate_goal)
            ms = lat.latencies
            figures = "/".join(f"{percentile(ms, q):.1f}" for q in (0.5, 0.99, 0.999))
            target = "p99 < 50" if rate_goal == 5000 else ""
            ok = verdict(percentile(ms, 0.99) < 50) if rate_goal == 5000 else ""
            rows.append(
                (f"latency p50/p99/p99.9 at {rate_goal}/s (ms, n={len(ms)})", figures, target, ok)
            )
            print(f"  latency at {rate_goal}/s: {figures} ms", flush=True)
    finally:
        probes.close()
        agent.stop(timeout=60)
    rows.insert(
        0,
        (
            "RSS steady, 10k SKUs + 1k machines (MB)",
            f"{steady:.0f}",
            "< 120",
            verdict(steady < 120),
        ),
    )
    rows.insert(
        1,
        (
            f"RSS after {args.warmup + args.messages:,} messages (MB)",
            f"{after:.0f}",
            "<= +5%",
            verdict(after <= steady * 1.05),
        ),
    )
    return rows, rate


def replay_rate(args: argparse.Namespace, directory: Path) -> float:
    recording = directory / "recording.jsonl"
    with recording.open("w", encoding="utf-8") as out:
        out.writelines(workload.Stream(args.skus, args.machines, 5).recording(args.replay, 1.7e9))
    config = directory / "agent.toml"
    out = subprocess.run(
        [sys.executable, "-m", "agent", "replay", "--config", str(config), str(recording)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        capture_output=True,
        text=True,
    )
    said = out.stderr.strip().splitlines()[-1]  # replayed N messages in S s (R/s): ...
    return float(said.split("(")[1].split("/s")[0].replace(",", ""))


def rules_test_seconds() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "agent", "rules", "test"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def scaling_rows(args: argparse.Namespace, directory: Path) -> list[Row]:
    rows: list[Row] = []
    costs = {}
    for subjects in args.subjects:
        costs[subjects] = core_cost(directory, subjects, args.rules, args.core_messages)
        rows.append(
            (f"cost per message, {subjects:,} subjects (µs)", f"{costs[subjects]:.0f}", "", "")
        )
        print(f"  {subjects:,} subjects: {costs[subjects]:.0f} µs/message", flush=True)
    low, high = costs[min(costs)], costs[max(s for s in costs if s <= 10_000)]
    rows.append(
        (
            "cost 10k subjects / 10 subjects",
            f"{high / low:.2f}",
            "<= 1.20",
            verdict(high / low <= 1.2),
        )
    )
    for count in args.rule_counts:
        cost = core_cost(directory, args.rule_subjects, count, args.core_messages)
        rows.append((f"cost per message, {count} rules (µs)", f"{cost:.0f}", "", ""))
        print(f"  {count} rules: {cost:.0f} µs/message", flush=True)
    return rows


def mapping_rows() -> list[Row]:
    """The cost of input mappings: the simulated plant's shapes, decoded (bench/mapping.py)."""
    rows: list[Row] = []
    for shape, (per_message, per_report) in shape_costs(reports=300, runs=3).items():
        figure = f"mapping cost, {shape} (µs/message / µs/report)"
        rows.append((figure, f"{per_message:.1f} / {per_report:.1f}", "", ""))
    return rows


def drain_rows(args: argparse.Namespace) -> list[Row]:
    """bench/drain.py in a process of its own (its own broker): a queued backlog of `--drain`
    noisy messages drained by a bare subscriber and by the daemon with the shipped rules."""
    with subprocess.Popen(
        [
            *(sys.executable, str(BENCH / "drain.py"), "--json", "--messages", str(args.drain)),
            *("--skus", str(args.skus), "--machines", str(args.machines)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        last = ""
        for line in process.stdout:  # as it comes; the last line is the result, in JSON
            if last:
                print(f"  {last}", flush=True)
            last = line.rstrip("\n")
    if process.returncode:
        raise SystemExit(f"bench/drain.py failed ({process.returncode})")
    drained = json.loads(last)
    ratio = drained["ratio"]
    return [
        ("bare subscriber draining the backlog (msg/s)", f"{drained['bare']:,.0f}", "", ""),
        ("drain a queued backlog (msg/s)", f"{drained['agent']:,.0f}", "", ""),
        ("drain / bare drain", f"{ratio:.0%}", ">= 75%", verdict(ratio >= 0.75)),
        ("decisions in the drain (rows / messages)", f"{drained['decisions']:.1%}", "", ""),
        ("RSS at the end of the drain (MB)", f"{drained['rss_mb']:.0f}", "", ""),
    ]


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a few minutes")
    parser.add_argument("--messages", type=int, help="timed end-to-end messages (1M; quick 50k)")
    parser.add_argument("--soak", type=int, nargs="*", help="RSS also after these totals (5M)")
    parser.add_argument("--latency-s", type=float, help="seconds at each fixed rate (30; quick 5)")
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=1_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument(
        "--engine",
        choices=("process", "inline"),
        default="process",
        help="rules.engine: durable in a worker process (the default) or in the daemon",
    )
    parser.add_argument(
        "--history-min",
        type=float,
        default=66.0,
        help="warm-up: minutes of machine telemetry from the past, to fill the metric windows (66)",
    )
    parser.add_argument(
        "--inflight", type=int, default=100, help="the broker's max_inflight_messages (100)"
    )
    parser.add_argument("--py-spy", type=Path, help="record the daemon's stacks here (raw)")
    parser.add_argument(
        "--drain",
        type=int,
        help="drain this many queued noisy messages, bare and agent (bench/drain.py; "
        "100k; quick 20k; 0: skip)",
    )
    parser.add_argument("--only-daemon", action="store_true", help="skip replay and scaling")
    parser.add_argument("--only-scaling", action="store_true", help="only the cost per message")
    args = parser.parse_args()
    quick = args.quick
    args.messages = args.messages or (50_000 if quick else 1_000_000)
    args.soak = args.soak if args.soak is not None else ([] if quick else [5_000_000])
    args.latency_s = args.latency_s or (5.0 if quick else 30.0)
    args.warmup = 20_000 if quick else 100_000
    args.drain = args.drain if args.drain is not None else (20_000 if quick else 100_000)
    args.replay = 20_000 if quick else 200_000
    args.core_messages = 5_000 if quick else 30_000
    args.subjects = [10, 1_000, 10_000] if quick else [10, 1_000, 10_000, 100_000]
    args.rule_counts = [10, 100, 500]
    args.rule_subjects = 1_000 if quick else 11_000
    return args


def main() -> None:
    args = options()
    rows: list[Row] = []
    if args.only_scaling:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            print_table(scaling_rows(args, Path(tmp)) + mapping_rows(), args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, Broker(args.inflight) as broker:
        directory = Path(tmp)
        print("bare ceiling ...", flush=True)
        bare = ceiling(broker.port, args.messages, seed=3)
        print(f"  {bare:,.0f} messages/s", flush=True)
        print("bare ceiling, MQTT 5 ...", flush=True)
        bare5 = ceiling(broker.port, args.messages, seed=3, mqtt5=True)
        print(f"  {bare5:,.0f} messages/s", flush=True)
        print("daemon ...", flush=True)
        daemon_rows, rate = daemon_figures(args, broker.port, directory)
        rows.append(("bare ceiling, paho + json, QoS 1 (msg/s)", f"{bare:,.0f}", "", ""))
        rows.append(("the same in MQTT 5, as the agent (msg/s)", f"{bare5:,.0f}", "", ""))
        rows += daemon_rows
        rows.append(
            ("end-to-end / ceiling", f"{rate / bare:.0%}", ">= 75%", verdict(rate >= 0.75 * bare))
        )
        rows.append(("end-to-end / MQTT 5 ceiling", f"{rate / bare5:.0%}", "", ""))
        rows.append(
            ("end-to-end >= 10k msg/s", f"{rate:,.0f}", ">= 10,000", verdict(rate >= 10_000))
        )
        if args.drain:
            print(f"drain a queued backlog of {args.drain:,} messages ...", flush=True)
            rows += drain_rows(args)
        if args.only_daemon:
            print_table(rows, args)
            return
        print("replay ...", flush=True)
        rows.append(
            (
                f"replay, {args.replay:,} messages (msg/s)",
                f"{replay_rate(args, directory):,.0f}",
                "",
                "",
            )
        )
        rows.append(("rules test, shipped tests (s)", f"{rules_test_seconds():.1f}", "", ""))
        print("cost per message ...", flush=True)
        rows += scaling_rows(args, directory / "core")
        rows += mapping_rows()
    print_table(rows, args)


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print(
        f"\nfactory-agent benchmark: {args.messages:,} messages, {args.rules} rules, "
        f"{args.skus:,} SKUs, {args.machines:,} machines, {os.cpu_count()} cores"
    )
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
