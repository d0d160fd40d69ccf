"""`factory-agent completion bash|zsh` and the completions the shell then gets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli import cli
from tests.support.agent_process import REPO


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_prints_a_completion_script(shell: str) -> None:
    done = cli("completion", shell)
    assert done.returncode == 0, done.stderr
    assert "factory-agent" in done.stdout and "_ARGCOMPLETE" in done.stdout
    if shell == "zsh":
        assert done.stdout.startswith("#compdef factory-agent")


def test_an_unknown_shell_is_refused() -> None:
    done = cli("completion", "fish")
    assert done.returncode == 2 and "invalid choice: 'fish'" in done.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_takes_the_script() -> None:
    script = cli("completion", "bash").stdout
    done = subprocess.run(
        ["bash", "-c", f"{script}\ncomplete -p factory-agent"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "factory-agent" in done.stdout


def complete(tmp_path: Path, line: str) -> list[str]:
    """What the script's call-back gets for the words typed so far (`line`)."""
    answer = tmp_path / "answer"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update(
        PYTHONPATH=str(REPO),
        COMP_LINE=line,
        COMP_POINT=str(len(line)),
        _ARGCOMPLETE="1",
        _ARGCOMPLETE_IFS="\n",
        _ARGCOMPLETE_STDOUT_FILENAME=str(answer),
    )
    done = subprocess.run(
        [sys.executable, "-m", "agent"], cwd=REPO, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return sorted(word.strip() for word in answer.read_text().splitlines())


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("factory-agent al", ["alerts"]),
        ("factory-agent dead-letters ", ["--help", "-h", "list", "reprocess", "show"]),
        ("factory-agent alerts --severity ", ["critical", "info", "warning"]),
        ("factory-agent actions --status ", ["acknowledged", "cancelled", "done", "open"]),
        ("factory-agent completion ", ["--help", "-h", "bash", "zsh"]),
    ],
)
def test_completes_commands_options_and_choices(
    tmp_path: Path, line: str, expected: list[str]
) -> None:
    assert complete(tmp_path, line) == expected
