"""`factory-agent completion bash|zsh`: the shell completion script, from argcomplete.

Install with `eval "$(factory-agent completion bash)"` in ~/.bashrc (zsh: the same with `zsh`
in ~/.zshrc). The script calls `factory-agent` back with `_ARGCOMPLETE` set; `main` then answers
from its argparse parser (commands, options, choices) and exits before running anything.
"""

from __future__ import annotations

import argparse
import os

SHELLS = ("bash", "zsh")


def add_arguments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    does = 'print the shell completion script: eval "$(factory-agent completion bash)"'
    completion = commands.add_parser("completion", help=does, description=does)
    completion.add_argument("shell", choices=SHELLS, help="the shell: bash or zsh")


def script(shell: str) -> str:
    from argcomplete.shell_integration import shellcode

    return shellcode(["factory-agent"], shell=shell)


def answer_if_asked(parser: argparse.ArgumentParser) -> None:
    """When the shell asks for completions (`_ARGCOMPLETE` set), answer and exit."""
    if "_ARGCOMPLETE" not in os.environ:
        return  # the usual case: no import, no cost
    import argcomplete

    argcomplete.autocomplete(parser)
