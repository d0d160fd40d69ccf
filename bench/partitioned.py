"""Two partitioned agents on one PostgreSQL beside one agent: the drain rate of a queued backlog.

    python bench/partitioned.py                       # 100k messages, 2 sites (a few minutes)
    python bench/partitioned.py --messages 20000      # a quick look

One private Mosquitto (queue unbounded, as bench/run.py's `Broker`), a throwaway database per
set-up on the local PostgreSQL (`bench_part_<pid>_one` and `bench_part_<pid>_two`, trust auth as
`postgres`, dropped at the end unless `--keep`), the generated master data of `bench/workload.py`
(10k SKUs, 1k machines) and its 100 rules, and one stream over `--sites` sites: telemetry and
stock counts with a recent `ts`, 1% probes (an alert each) and 12% of the counts low (a reorder
or a below-safety alert when the SKU's supplier has those rules): about 4% of the messages
produce a decision, as in issue 15's noisy workload.

Three persistent sessions are made first (each agent started once until it subscribed, then
stopped; this also migrates both databases): "one" subscribed to every site, "part-0" and
"part-1" to half the sites each (`mqtt.sites`). The stream is published once, at QoS 1, while
all three are away: the broker queues every message for (a) and, split by site, for (b). Then

  (a) one agent with all sites drains its backlog into database "one";
  (b) two agents, one per partition, each with its own client id, drain theirs into "two".

The last message of each site is a probe on a machine nothing else mentions: its alert in the
database means that site's messages are all committed (an agent handles its messages in order).
A drain is timed from the first `mqtt_connected` of its agents (its log line's timestamp) to the
moment the bench sees the last site's sentinel alert (polled every 50 ms). CPU seconds are read
from /proc/<pid>/stat (utime + stime) of each agent and its engine worker, of the broker, and of
the PostgreSQL backends serving that database, between the same two moments.

Finally the rows both set-ups wrote (actions and alerts, ids and times left out) are compared as
multisets: the same rows, none lost, none doubled (exit status 1 if not).

`--rounds N` repeats it all (fresh databases, the backlog published again), (a) first in odd
rounds and (b) first in even ones. On a machine with few cores the agents, the broker and
PostgreSQL compete for them: the table says how many cores they kept busy ("cores used") and how
busy the machine was ("machine busy", everyone's work, from /proc/stat); the CPU microseconds
per message are the figures to carry to another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path[:0] = [str(REPO), str(BENCH)]

import paho.mqtt.client as paho  # noqa: E402
import psycopg  # noqa: E402
import workload  # noqa: E402
from run import NO_MQTT_OUTPUT, Broker, agent_toml  # noqa: E402

from tests.support.agent_process import AgentProcess  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
AGENT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
LOW_SHARE = 0.12  # of the stock counts: below the reorder point (0-39), the noisy part
WINDOW = 500  # unacknowledged publishes at most (as bench/publisher.py)
STALL_S = 120.0
TICKS = os.sysconf("SC_CLK_TCK")


# -- the stream ---------------------------------------------------------------------------------


def site_name(n: int) -> str:
    return f"plant{n + 1}"


class SiteStream:
    """One site's messages: bench/workload.py's stream (telemetry, counts, 1% probes) on this
    site's topics, with low counts mixed in and every payload dated (`ts`)."""

    def __init__(self, site: str, skus: int, machines: int, seed: int) -> None:
        self.site = site
        self.rng = random.Random(seed)
        # The last machine is the sentinel: only the site's last message names it.
        self.stream = workload.Stream(skus, machines - 1, seed)
        self.count = 0

    def message(self, ts: float) -> tuple[str, bytes]:
        topic, payload = self.stream.message(self.count, int(ts * 1e6))
        self.count += 1
        if "/stock/" in topic and self.rng.random() < LOW_SHARE:
            payload = b'{"on_hand":%d}' % self.rng.randint(0, 39)
        return self._dated(topic, payload, ts)

    def sentinel(self, machines: int, ts: float) -> tuple[str, bytes]:
        payload = b'{"state":"running","temp_c":50.0,"probe":1,"sent_us":%d}' % int(ts * 1e6)
        topic = f"{workload.PREFIX}/{workload.SITE}/machine/{sentinel_machine(machines)}/telemetry"
        return self._dated(topic, payload, ts)

    def _dated(self, topic: str, payload: bytes, ts: float) -> tuple[str, bytes]:
        topic = topic.replace(f"/{workload.SITE}/", f"/{self.site}/", 1)
        return topic, payload[:-1] + b',"ts":%.6f}' % ts


def sentinel_machine(machines: int) -> str:
    return workload.machine_name(machines - 1)


def stream(args: argparse.Namespace, sites: list[str]) -> Iterator[tuple[str, bytes]]:
    """`args.messages` messages over the sites (each picked at random), then one sentinel per
    site; `ts` is the publish time."""
    pick = random.Random(args.seed)
    streams = [
        SiteStream(site, args.skus, args.machines, args.seed * 1000 + n)
        for n, site in enumerate(sites)
    ]
    for _ in range(args.messages):
        yield pick.choice(streams).message(time.time())
    for site_stream in streams:
        yield site_stream.sentinel(args.machines, time.time())


def publish(port: int, messages: Iterator[tuple[str, bytes]]) -> tuple[int, float]:
    """Publish at QoS 1 as fast as the broker acknowledges: (count, seconds)."""
    window = threading.BoundedSemaphore(WINDOW)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-part-pub")
    client.max_inflight_messages_set(WINDOW * 2)
    client.max_queued_messages_set(0)
    client.on_publish = lambda *_: window.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    started, count = time.monotonic(), 0
    for topic, payload in messages:
        if not window.acquire(timeout=STALL_S):
            raise SystemExit(f"no acknowledgement from the broker for {STALL_S} s")
        client.publish(topic, payload, qos=1)
        count += 1
    for _ in range(WINDOW):  # every publish acknowledged
        if not window.acquire(timeout=STALL_S):
            raise SystemExit(f"no acknowledgement from the broker for {STALL_S} s")
    elapsed = time.monotonic() - started
    client.loop_stop()
    client.disconnect()
    return count, elapsed


# -- databases ----------------------------------------------------------------------------------


def create_database(name: str) -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return AGENT_URL.format(name=name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def sentinels_seen(connection: psycopg.Connection[tuple[object, ...]], machine: str) -> int:
    row = connection.execute(
        "SELECT count(DISTINCT site) FROM alert WHERE subject = %s AND rule_id = 'bench-probe'",
        (machine,),
    ).fetchone()
    return int(str(row[0])) if row else 0


def decided(connection: psycopg.Connection[tuple[object, ...]]) -> int:
    """How many decisions are stored (repeats included): it grows while a drain goes on."""
    row = connection.execute(
        "SELECT (SELECT coalesce(sum(count), 0) FROM action)"
        " + (SELECT coalesce(sum(count), 0) FROM alert)"
    ).fetchone()
    return int(str(row[0])) if row else 0


def backend_pids(connection: psycopg.Connection[tuple[object, ...]], name: str) -> list[int]:
    """The PostgreSQL backends connected to database `name`, but the bench's own."""
    rows = connection.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    ).fetchall()
    return [int(str(row[0])) for row in rows]


Row = tuple[str, ...]


def written_rows(url: str) -> Counter[Row]:
    """Every action and alert, without ids and times (they differ by run), as a multiset."""
    with psycopg.connect(plain(url)) as connection:
        actions = connection.execute(
            "SELECT 'action', kind, site, subject, rule_id, dedup_key, status, count, "
            "params::text FROM action"
        ).fetchall()
        alerts = connection.execute(
            "SELECT 'alert', severity, site, subject, rule_id, dedup_key, status, count, "
            "message FROM alert"
        ).fetchall()
    return Counter(tuple(str(cell) for cell in row) for row in [*actions, *alerts])


# -- processes ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of stat(5)


def machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def family(pid: int) -> list[int]:
    """A process and its descendants (the agent and its engine worker)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return found


@dataclass(frozen=True, slots=True)
class Partition:
    name: str  # the client id's tail and the directory
    sites: list[str]
    database: str


def agent_config(
    directory: Path, port: int, url: str, partition: Partition, all_sites: list[str]
) -> Path:
    sites = "" if partition.sites == all_sites else ",".join(partition.sites)
    return agent_toml(
        directory,
        port=port,
        client_id=f"bench-{partition.name}",
        rules=directory.parent / "rules",
        items=directory.parent / "items.yaml",
        machines=directory.parent / "machines.yaml",
        database_url=url,
        mqtt=f'sites = "{sites}"\n',
        rules_extra="watch = false\n",
        extra=NO_MQTT_OUTPUT,
    )


def event_time(agent: AgentProcess, event: str, timeout: float) -> float:
    """When the agent logged `event` (its own timestamp), in epoch seconds."""
    found = agent.wait_for(event, timeout=timeout)
    return datetime.fromisoformat(str(found["timestamp"]).replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class Drain:
    seconds: float
    agent_cpu_s: float  # the daemons and their engine workers
    daemon_cpu_s: float  # the daemons alone
    broker_cpu_s: float
    database_cpu_s: float
    machine_busy: float  # share of all cores busy (anyone's work) while it drained

    @property
    def cores(self) -> float:
        """Cores the agents, the broker and PostgreSQL kept busy on average."""
        return (self.agent_cpu_s + self.broker_cpu_s + self.database_cpu_s) / self.seconds


def agents_cpu(agents: list[AgentProcess]) -> tuple[float, float]:
    """CPU seconds so far of the agents with their engine workers, and of the daemons alone."""
    pids = [agent.process.pid for agent in agents if agent.process is not None]
    return sum(cpu_seconds(p) for pid in pids for p in family(pid)), sum(map(cpu_seconds, pids))


def drain(
    agents: list[AgentProcess], broker_pid: int, url: str, database: str, sites: int, machine: str
) -> Drain:
    """Start the agents on their queued sessions; time until every site's sentinel is stored."""
    with psycopg.connect(plain(url), autocommit=True) as connection:
        broker_before = cpu_seconds(broker_pid)
        for agent in agents:
            agent.start()
        # CPU spent starting up (master data, rules, the worker) is not the drain's: read each
        # agent's at its connect, and the broker's and database's from here on.
        connected = [event_time(agent, "mqtt_connected", timeout=300) for agent in agents]
        agent_before, daemon_before = agents_cpu(agents)
        backends = {pid: cpu_seconds(pid) for pid in backend_pids(connection, database)}
        machine_before = machine_ticks()
        progress, moved = decided(connection), time.monotonic()
        while sentinels_seen(connection, machine) < sites:
            if time.monotonic() - moved > STALL_S:  # a deadline that a slow drain extends
                if decided(connection) == progress:
                    raise SystemExit(
                        f"no decision stored for {STALL_S:.0f} s, and {sites} sentinels not all "
                        "stored: a partition that misses a site?"
                    )
                progress, moved = decided(connection), time.monotonic()
            if any(
                agent.process is not None and agent.process.poll() is not None for agent in agents
            ):
                raise SystemExit("an agent exited:\n" + "\n".join(a.tail() for a in agents))
            time.sleep(0.05)  # polling the database with a deadline
        done = time.time()
        agent_after, daemon_after = agents_cpu(agents)
        broker_after = cpu_seconds(broker_pid)
        busy, total = (
            after - before for after, before in zip(machine_ticks(), machine_before, strict=True)
        )
        database_cpu = sum(
            cpu_seconds(pid) - backends.get(pid, 0.0) for pid in backend_pids(connection, database)
        )
    for agent in agents:
        agent.stop(timeout=60)
    return Drain(
        done - min(connected),
        agent_after - agent_before,
        daemon_after - daemon_before,
        broker_after - broker_before,
        database_cpu,
        busy / total if total else 0.0,
    )


def prepare_sessions(agents: list[AgentProcess]) -> None:
    """Start each agent until it subscribed (its session exists, its database is migrated)."""
    for agent in agents:
        agent.start()
    for agent in agents:
        agent.wait_for("mqtt_subscribed", timeout=300)
    for agent in agents:
        agent.stop(timeout=60)


# -- the run ------------------------------------------------------------------------------------


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="the backlog (100k)")
    parser.add_argument("--sites", type=int, default=2, help="sites, split in two partitions (2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=1_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="publish and drain this often, (a) first in odd rounds, (b) first in even ones (1)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the last round's databases and the agents' files"
    )
    args = parser.parse_args()
    if args.sites < 2:
        parser.error("--sites: two partitions need two sites at least")
    return args


@dataclass(frozen=True, slots=True)
class Round:
    count: int
    alone: Drain  # (a)
    pair: Drain  # (b)
    rows_one: Counter[Row]
    rows_two: Counter[Row]


class Bench:
    """The broker, the agents' files and the two databases of one run."""

    def __init__(self, args: argparse.Namespace, broker: Broker, directory: Path) -> None:
        self.args, self.broker = args, broker
        self.sites = [site_name(n) for n in range(args.sites)]
        self.one = Partition("one", self.sites, f"bench_part_{os.getpid()}_one")
        database = f"bench_part_{os.getpid()}_two"
        self.parts = [Partition(f"part-{n}", self.sites[n::2], database) for n in range(2)]
        self.urls = {p.database: AGENT_URL.format(name=p.database) for p in (self.one, *self.parts)}
        workload.write_masterdata(directory, args.skus, args.machines)
        workload.write_rules(directory / "rules", args.rules)
        self.configs: dict[str, Path] = {}
        for partition in (self.one, *self.parts):
            home = directory / partition.name
            home.mkdir()
            url = self.urls[partition.database]
            self.configs[partition.name] = agent_config(
                home, broker.port, url, partition, self.sites
            )

    def agents(self, *names: str) -> list[AgentProcess]:
        """A fresh process (and log) each time."""
        return [AgentProcess(self.configs[name], self.configs[name].parent) for name in names]

    def round(self, number: int) -> Round:
        """Fresh databases and sessions, the backlog published once, both drains."""
        for name in self.urls:
            create_database(name)
        print(f"round {number}: sessions for {', '.join(self.configs)} ...", flush=True)
        prepare_sessions(self.agents(*self.configs))
        print(f"  publishing {self.args.messages:,} messages over {', '.join(self.sites)} ...")
        count, seconds = publish(self.broker.port, stream(self.args, self.sites))
        print(f"  {count:,} in {seconds:.1f} s ({count / seconds:,.0f}/s)", flush=True)
        drains: dict[str, Drain] = {}
        order = [self.one.name, "pair"] if number % 2 else ["pair", self.one.name]
        for name in order:
            partitions = [self.one] if name == self.one.name else self.parts
            label = "(a) one agent, all sites" if name == self.one.name else "(b) two agents"
            print(f"  {label} ...", flush=True)
            drains[name] = drain(
                self.agents(*(p.name for p in partitions)),
                self.broker_pid,
                self.urls[partitions[0].database],
                partitions[0].database,
                len(self.sites),
                sentinel_machine(self.args.machines),
            )
            print(f"    {count / drains[name].seconds:,.0f} msg/s", flush=True)
        rows_one = written_rows(self.urls[self.one.database])
        rows_two = written_rows(self.urls[self.parts[0].database])
        return Round(count, drains[self.one.name], drains["pair"], rows_one, rows_two)

    @property
    def broker_pid(self) -> int:
        assert self.broker._process is not None
        return self.broker._process.pid


def stop(signum: int, frame: object) -> None:
    """SIGTERM (and SIGINT, which a shell's background job ignores): unwind through the clean-up
    (agents stopped at exit, databases dropped, the broker closed)."""
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    args = options()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    directory = Path(tempfile.mkdtemp(prefix="bench-part-"))
    bench: Bench | None = None
    try:
        with Broker(inflight=100) as broker:
            bench = Bench(args, broker, directory)
            rounds = [bench.round(n) for n in range(1, args.rounds + 1)]
        report(args, bench, rounds)
    finally:
        names = list(bench.urls) if bench else []
        if args.keep:
            print(f"kept: databases {', '.join(names)}; agents' files in {directory}")
        else:
            for name in names:
                drop_database(name)
            shutil.rmtree(directory, ignore_errors=True)


def report(args: argparse.Namespace, bench: Bench, rounds: list[Round]) -> None:
    count = rounds[0].count
    print(
        f"\npartitioned drain: {count:,} queued QoS 1 messages ({args.sites} sites, "
        f"{args.skus:,} SKUs, {args.machines:,} machines, {args.rules} rules), one PostgreSQL, "
        f"{os.cpu_count()} cores shared by the agents, their engine workers, Mosquitto, "
        "PostgreSQL, this bench and whatever else runs"
    )
    header = ("", "msg/s", "wall s", "agents µs/msg (daemons)", "broker µs/msg", "PG µs/msg")
    table = [(*header, "cores used", "machine busy")]
    for n, result in enumerate(rounds, 1):
        for label, figures in (("(a) one agent", result.alone), ("(b) two agents", result.pair)):
            table.append(
                (
                    f"round {n} {label}",
                    f"{count / figures.seconds:,.0f}",
                    f"{figures.seconds:.1f}",
                    f"{figures.agent_cpu_s / count * 1e6:,.0f} "
                    f"({figures.daemon_cpu_s / count * 1e6:,.0f})",
                    f"{figures.broker_cpu_s / count * 1e6:,.0f}",
                    f"{figures.database_cpu_s / count * 1e6:,.0f}",
                    f"{figures.cores:.2f}",
                    f"{figures.machine_busy:.0%}",
                )
            )
    print("CPU per message: agents with their engine workers (the daemons alone), Mosquitto, PG")
    print("(the PostgreSQL backends of the database); cores used: the three together / wall time")
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    ratios = [r.alone.seconds / r.pair.seconds for r in rounds]
    print(
        f"two / one: {', '.join(f'{ratio:.2f}' for ratio in ratios)}"
        + (f" (median {statistics.median(ratios):.2f})" if len(ratios) > 1 else "")
    )
    for part in bench.parts:
        print(f"  {part.name}: mqtt.sites = {','.join(part.sites)}, client id bench-{part.name}")
    rows = rounds[-1].rows_one
    kinds = {
        kind: sum(n for row, n in rows.items() if row[0] == kind) for kind in ("action", "alert")
    }
    fired = sum(int(row[7]) * n for row, n in rows.items())  # repeats counted
    print(
        f"decisions written (last round): {kinds['action']:,} actions, {kinds['alert']:,} alerts "
        f"({(kinds['action'] + kinds['alert']) / count:.1%} of messages); "
        f"{fired:,} decisions with the repeats counted ({fired / count:.1%})"
    )
    failed = False
    for n, result in enumerate(rounds, 1):
        lost, doubled = result.rows_one - result.rows_two, result.rows_two - result.rows_one
        same = not lost and not doubled
        failed |= not same
        print(
            f"round {n} rows (a) vs (b): {'the same' if same else 'DIFFERENT'} "
            f"({sum(result.rows_one.values()):,} / {sum(result.rows_two.values()):,}; "
            f"only in (a): {sum(lost.values())}, only in (b): {sum(doubled.values())})"
        )
        for missing in [*lost][:5]:
            print(f"  only in (a): {json.dumps(missing)}")
        for extra in [*doubled][:5]:
            print(f"  only in (b): {json.dumps(extra)}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
