"""The command line: `factory-agent run | rules | replay | explain | actions | alerts | ack ...`.

Each command loads settings the same way, maps the agent's errors to a clear message and an exit
code (0 fine, 1 the thing checked is wrong, 2 the agent cannot start), and never prints a traceback
for a user's mistake.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# First: agent.log imports structlog without rich, before any other module imports structlog.
import agent.log
from agent import __version__
from agent.app.policy import load_policy
from agent.cli.completion import add_arguments as add_completion_arguments
from agent.cli.completion import answer_if_asked
from agent.cli.database import (
    DatabaseUnavailable,
    open_for_reading,
    open_for_writing,
    unavailable,
)
from agent.cli.deadletters import BrokerUnavailable
from agent.cli.deadletters import add_arguments as add_dead_letter_arguments
from agent.cli.inputs import add_inputs_parser, inputs_command
from agent.cli.listing import add_arguments as add_listing_arguments
from agent.config import Settings, load_settings
from agent.decisions.report import line, record
from agent.errors import AgentError, RuleError
from agent.simulator.options import add_simulate_arguments

EXIT_OK, EXIT_INVALID, EXIT_FAILED = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="factory-agent",
        description="Rule-based inventory and maintenance agent: MQTT in, rules, decisions out.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help="settings file (default: config/agent.toml if present)",
        )
        return sub

    command("run", "run the agent: subscribe, apply the rules, store decisions")

    rules = commands.add_parser("rules", help="check rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    check = rules_commands.add_parser("check", help="validate rule files; exit 1 on any problem")
    check.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="rule files or folders (default: the configured rules path)",
    )
    check.add_argument("--config", type=Path, metavar="FILE")
    test = rules_commands.add_parser(
        "test", help="run rule tests (rules/tests/*.yaml); exit 1 on a failure, with a diff"
    )
    test.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="test files or folders (default: the tests folder of the rules path)",
    )
    test.add_argument("--config", type=Path, metavar="FILE")

    replay = command("replay", "feed a recorded .jsonl stream through the rules, print decisions")
    replay.add_argument("file", type=Path, metavar="FILE.jsonl")
    replay.add_argument("--rules", type=Path, metavar="DIR", help="rules to use instead")
    replay.add_argument(
        "--against",
        type=Path,
        metavar="OLD_DIR",
        help="backtest: also run these rules and print only the decisions that differ",
    )
    replay.add_argument("--json", action="store_true", help="one JSON object per decision")
    replay.add_argument(
        "--db",
        metavar="URL",
        default="sqlite://",
        help="store the decisions in this database (default: in memory)",
    )
    replay.add_argument(
        "--all", action="store_true", help="also print repeats that updated an open decision"
    )

    explain = command("explain", "why a decision was made: rule, rule set and matched facts")
    explain.add_argument("id", metavar="ID", help="an action id, or alert:ID for an alert")
    explain.add_argument("--json", action="store_true", help="the record as JSON")
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser("upgrade", help="apply the migrations the database lacks")
    upgrade.add_argument("--config", type=Path, metavar="FILE")

    add_inputs_parser(commands)

    simulate = command("simulate", "publish a believable factory to the broker (demos, benchmarks)")
    add_simulate_arguments(simulate)

    for table in ("action", "alert"):
        listing = command(f"{table}s", f"list open {table}s (--all: every status)")
        add_listing_arguments(listing, table)

    add_dead_letter_arguments(commands)
    add_completion_arguments(commands)

    machines = command(
        "machines", "MTBF, MTTR, downtime and its cost per machine, from the database"
    )
    machines.add_argument("--json", action="store_true", help="one JSON object per machine")
    machines.add_argument(
        "--down-rule",
        default="machine-down",
        metavar="RULE",
        help="the rule whose alerts are down periods (default machine-down)",
    )
    machines.add_argument(
        "--since", metavar="ISO", help="start of the period (default: first record)"
    )
    machines.add_argument("--until", metavar="ISO", help="end of the period (default: last record)")

    for name, does in _COMMANDS.items():
        change = command(name, does)
        change.add_argument(
            "target",
            nargs="+",
            metavar="[alert|action] ID",
            help="what to change, e.g. `alert 12` or `action 7` (the word may be left out)",
        )
        change.add_argument("--by", default=_user(), help="who does it (default: $USER)")
        change.add_argument("--note", default="", help="a note kept on the row")
    return parser


_COMMANDS = {
    "ack": "acknowledge an alert (default) or an action: no more reminders",
    "resolve": "resolve an alert",
    "done": "close an action as done",
    "cancel": "close an action as cancelled",
}


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    answer_if_asked(parser)
    args = parser.parse_args(argv)
    if args.command == "completion":
        from agent.cli.completion import script

        print(script(args.shell), end="")
        return EXIT_OK
    try:
        settings = load_settings(args.config)
    except AgentError as exc:
        print(f"factory-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.command == "run":
        agent.log.configure_logging(settings.log.level, settings.log.format)
    else:
        agent.log.configure_logging("warning", settings.log.format, stream=sys.stderr)
    try:
        handler = {
            "run": _run,
            "rules": _rules,
            "replay": _replay,
            "explain": _explain,
            "actions": _list,
            "alerts": _list,
            **dict.fromkeys(_COMMANDS, _change),
            "db": _db_upgrade,
            "simulate": _simulate,
            "machines": _machines,
            "dead-letters": _dead_letters,
            "inputs": inputs_command,
        }[args.command]
        return handler(args, settings)
    except (DatabaseUnavailable, BrokerUnavailable) as exc:
        print(f"factory-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED if args.command == "run" else EXIT_INVALID
    except RuleError as exc:
        _print_problems(exc)
        return EXIT_FAILED
    except AgentError as exc:
        print(f"factory-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _change(args: argparse.Namespace, settings: Settings) -> int:
    """`ack|resolve|done|cancel [alert|action] ID`: the same transition as the MQTT command;
    the outbox rows it causes (MQTT publication, resolved notice) go out with the daemon."""
    from agent.app import commands
    from agent.app.clock import SystemClock
    from agent.errors import TransitionError
    from agent.notify.outbox import Outbox
    from agent.store.repository import json_friendly

    try:
        target, id = _target(args.target)
        cmd = commands.command(args.command, id, args.by, args.note, target)
    except TransitionError as exc:
        print(f"factory-agent: {exc}", file=sys.stderr)
        return EXIT_INVALID
    clock = SystemClock()
    outbox = Outbox(settings.notify, settings.mqtt.topic_prefix, clock)
    store = open_for_writing(settings, must_exist=True)
    try:
        hook = outbox.on_changes if outbox.active else None
        row = commands.apply(store, cmd, clock.now(), hook)
    except TransitionError as exc:
        print(f"factory-agent: {exc}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        store.close()
    print(line(record(cmd.target, json_friendly(row))))
    return EXIT_OK


def _target(words: list[str]) -> tuple[str | None, int]:
    from agent.errors import TransitionError

    if len(words) == 1:
        words = ["", words[0]]
    if len(words) != 2 or words[0] not in ("", "alert", "action"):
        raise TransitionError(f"expected [alert|action] ID, got {' '.join(words).strip()!r}")
    try:
        id = int(words[1])
    except ValueError:
        raise TransitionError(f"expected a number as the id, got {words[1]!r}") from None
    if id < 1:
        raise TransitionError(f"ids start at 1, got {id}")
    return words[0] or None, id


def _print_problems(exc: RuleError) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import structlog

    from agent.adapters.signals import SignalThread
    from agent.app.daemon import Daemon
    from agent.http.observability import start_http

    log = structlog.get_logger("agent.cli.main")
    try:
        policy = load_policy(settings)
    except RuleError as exc:
        for problem in exc.problems:
            log.error("rule_problem", problem=str(problem))
        _print_problems(exc)
        return EXIT_FAILED
    store = open_for_writing(settings)
    daemon = Daemon(settings, policy, store)
    # Not on the ingest (main) thread: SIGTERM is honoured even while it sits in a C call.
    signals = SignalThread(daemon.stop, lambda: daemon.request_reload("SIGHUP"))
    signals.start()
    http = start_http(settings.http, daemon)
    try:
        return daemon.run()
    finally:
        if http is not None:
            http.stop()
        store.close()
        signals.stop()


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    if args.rules_command == "test":
        return _rules_test(args, settings)
    return _rules_check(args, settings)


def _rules_test(args: argparse.Namespace, settings: Settings) -> int:
    from agent.ruletest.run import report, run_tests
    from agent.world.masterdata import load_masterdata

    masterdata = load_masterdata(
        Path(settings.masterdata.items), Path(settings.masterdata.machines)
    )
    rules_path = Path(settings.rules.path)
    tests_path = rules_path / "tests" if rules_path.is_dir() else rules_path.parent / "tests"
    run = run_tests(
        args.paths or [tests_path],
        [rules_path],
        masterdata,
        settings,
    )
    for text in report(run):
        print(text)
    return EXIT_OK if run.ok else EXIT_INVALID


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    from agent.cli.explain import explain

    return explain(args.id, settings, as_json=args.json)


def _rules_check(args: argparse.Namespace, settings: Settings) -> int:
    try:
        policy = load_policy(settings, args.paths or None)
    except RuleError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) found")
        return EXIT_INVALID
    ruleset = policy.ruleset
    disabled = f", {ruleset.disabled} disabled" if ruleset.disabled else ""
    print(
        f"ok: {len(ruleset.rules)} rules{disabled} in {len(ruleset.files)} files "
        f"(rule set {ruleset.hash})"
    )
    return EXIT_OK


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from agent.app.replay import replay_with

    policy = load_policy(settings, [args.rules] if args.rules else None)
    if args.against is not None:
        from agent.cli.backtest import backtest

        old = load_policy(settings, [args.against])
        return backtest(args.file, policy, old, settings, as_json=args.json)
    from agent.cli.progress import REPLAY_BAR_BYTES, adding, bar

    try:
        size = args.file.stat().st_size
    except OSError:
        size = 0  # replay names the problem
    store = open_for_writing(settings, args.db)
    try:
        large = size > REPLAY_BAR_BYTES
        with bar(f"replay {args.file.name}", size, enabled=large) as show:
            progress = adding(show) if show is not None else None
            result = replay_with(args.file, policy, store, settings, progress)
    finally:
        store.close()
    for change in result.changes:
        if not (change.created or args.all):
            continue
        rec = record(change.table, change.row)
        rec["created"] = change.created
        print(json.dumps(rec, default=str) if args.json else line(rec))
    rate = result.messages / result.seconds if result.seconds > 0 else 0.0
    created = sum(1 for change in result.changes if change.created)
    print(
        f"replayed {result.messages} messages in {result.seconds:.2f} s ({rate:,.0f}/s): "
        f"{created} decisions, {result.dead_letters} dead letters",
        file=sys.stderr,
    )
    return EXIT_OK


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from agent.errors import StoreError
    from agent.store.db import open_engine
    from agent.store.migrate import upgrade

    url = settings.database.url
    try:
        engine = open_engine(url, settings.database.sqlite_synchronous)
        try:
            before, after = upgrade(engine)
        finally:
            engine.dispose()
    except StoreError as exc:
        raise unavailable(url, exc) from exc
    if before == after:
        print(f"schema is up to date (revision {after})")
    else:
        print(f"schema upgraded from {before or 'empty'} to revision {after}")
    return EXIT_OK


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from agent.cli.progress import bar
    from agent.simulator.run import simulate

    began = time.monotonic()
    if args.messages is not None:  # messages sent of --messages
        with bar("simulate", args.messages, counting=True) as show:
            return simulate(args, settings, show)
    if args.duration is not None:  # seconds run of --duration
        with bar("simulate", args.duration) as show:
            tell = None if show is None else lambda _sent: show(time.monotonic() - began)
            return simulate(args, settings, tell)
    with bar("simulate", None, counting=True) as show:  # no end: the count sent
        return simulate(args, settings, show)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from agent.cli.listing import run_listing, statuses_wanted
    from agent.store.repository import json_friendly

    table = "action" if args.command == "actions" else "alert"
    statuses = statuses_wanted(table, args)

    def read() -> list[dict[str, Any]]:
        """The rows of the wanted statuses only (the database filters), newest first."""
        with open_for_reading(settings) as store:
            rows = store.actions if table == "action" else store.alerts
            found = rows() if statuses is None else [r for s in statuses for r in rows(s)]
        found.sort(key=lambda row: row["id"], reverse=True)
        return [json_friendly(row) for row in found]

    return run_listing(table, args.command, read, args)


def _dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    from agent.cli.deadletters import run

    return run(args, settings)


def _machines(args: argparse.Namespace, settings: Settings) -> int:
    """`machines`: reliability figures per machine over the recorded period (or the given one)."""
    from datetime import UTC, datetime

    from agent.decisions.reliability import figure_lines, machine_figures, period_of
    from agent.world.masterdata import load_masterdata

    masterdata = load_masterdata(
        Path(settings.masterdata.items), Path(settings.masterdata.machines)
    )
    store = open_for_reading(settings)
    try:
        actions, alerts = store.actions(), store.alerts()
    finally:
        store.close()
    found = period_of(actions, alerts)
    try:
        start = _instant(args.since) if args.since else (found[0] if found else None)
        end = _instant(args.until) if args.until else (found[1] if found else None)
    except ValueError as exc:
        print(f"factory-agent: --since/--until: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if start is None or end is None:
        start = end = datetime.now(UTC)
    figures = machine_figures(actions, alerts, masterdata.machines, start, end, args.down_rule)
    if args.json:
        for fig in figures:
            print(json.dumps(fig.as_json()))
    else:
        print("\n".join(figure_lines(figures, start, end)))
    return EXIT_OK


def _instant(text: str) -> Any:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
