"""A running daemon imports what it runs (issue 15): the CLI's tables, the console, Sparkplug's
protobuf, JMESPath and apprise only when a command, a setting or a mapping needs them.

Each check is a fresh interpreter: in this one, other tests have imported everything already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.ingest.mapping_load import parse_inputs
from tests.support.mosquitto import free_port

REPO = Path(__file__).resolve().parents[2]

# Not in a daemon started with the shipped settings (no pages, no Sparkplug, no mapping, no
# route). pygments is not here: alembic (agent.store.migrate) imports it through mako.
LAZY = (
    "rich",
    "argcomplete",
    "jinja2",
    "argon2",
    "itsdangerous",
    "agent.http.web",
    "google.protobuf",
    "agent.ingest.sparkplug_pb",
    "jmespath",
    "apprise",
)

# What `factory-agent run` builds before it connects (agent.cli.main._run): the settings, the
# logging, the rules and master data, the store (migrated), the daemon (its engine worker
# started) and the HTTP edge; then which of LAZY are in sys.modules.
BUILD_THE_DAEMON = f"""
import json, sys
from agent.cli.main import main  # the entry point of `factory-agent` and `python -m agent`
from agent.app.daemon import Daemon
from agent.app.policy import load_policy
from agent.cli.database import open_for_writing
from agent.config import load_settings
from agent.http.observability import start_http
from agent.log import configure_logging

settings = load_settings(None)
configure_logging(settings.log.level, settings.log.format)
store = open_for_writing(settings)
daemon = Daemon(settings, load_policy(settings), store)
http = start_http(settings.http, daemon)
loaded = [name for name in {LAZY!r} if name in sys.modules]
if http is not None:
    http.stop()
daemon.pipeline.core.close()
store.close()
print("LOADED", json.dumps(loaded))
"""


def loaded_by_the_daemon(tmp_path: Path, **settings: str) -> list[str]:
    """LAZY modules a daemon built from the shipped config/agent.toml (and `settings` as
    AGENT_* variables) has imported."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AGENT_DATABASE__URL": f"sqlite:///{tmp_path / 'agent.db'}",
        "AGENT_LOG__FORMAT": "json",
        **settings,
    }
    done = subprocess.run(
        [sys.executable, "-c", BUILD_THE_DAEMON],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("LOADED ")]
    loaded: list[str] = json.loads(line.removeprefix("LOADED "))
    return loaded


def test_a_daemon_with_the_shipped_settings_imports_no_optional_library(tmp_path: Path) -> None:
    assert loaded_by_the_daemon(tmp_path) == []


def test_metrics_without_pages_import_no_console(tmp_path: Path) -> None:
    on = {"AGENT_HTTP__ENABLED": "true", "AGENT_HTTP__PORT": str(free_port())}
    assert loaded_by_the_daemon(tmp_path, **on) == []


def test_the_console_is_imported_when_its_pages_are_on(tmp_path: Path) -> None:
    """The other side of the checks above: the same build does see a library it loads."""
    on = {"AGENT_HTTP__ENABLED": "true", "AGENT_HTTP__PORT": str(free_port())}
    on["AGENT_HTTP__PAGES"] = "true"
    loaded = loaded_by_the_daemon(tmp_path, **on)
    assert {"jinja2", "argon2", "itsdangerous", "agent.http.web"} <= set(loaded)
    assert "rich" not in loaded and "apprise" not in loaded


def _mapping(path: str) -> str:
    return (
        "inputs:\n  - name: m\n    topic: a/{machine}\n    kind: telemetry\n    site: s\n"
        f"    fields: {{x: '{path}'}}\n"
    )


@pytest.mark.parametrize(("path", "needs_jmespath"), [("data.temp", False), ("values[0].v", True)])
def test_jmespath_is_imported_for_an_expression_only(path: str, needs_jmespath: bool) -> None:
    code = (
        "import sys\nfrom agent.ingest.mapping_load import parse_inputs\n"
        f"parse_inputs({_mapping(path)!r})\nprint('jmespath' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == [str(needs_jmespath)]


def test_an_expression_that_fails_on_a_payload_is_a_problem_not_a_crash() -> None:
    """jmespath's error is caught although mapping.py no longer imports it at the top."""
    (rule,) = parse_inputs(_mapping("abs(data)")).mappings[0].fields
    name, value, problem = rule.take({"data": "text"}, {"machine": "m1"})
    assert (name, value) == ("x", None)
    assert problem.startswith("field 'x': path 'abs(data)' failed: In function abs(), invalid")
