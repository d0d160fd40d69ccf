"""Progress bars on stderr for long commands (`replay` of a large file, `simulate`), shown only
when stderr is a terminal: a pipe or a log file gets the summary line alone."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# `replay` shows a bar for recordings larger than this.
REPLAY_BAR_BYTES = 1_000_000


def wanted(stream: TextIO | None = None) -> bool:
    """Bars only for a person watching: stderr is a terminal."""
    out = stream or sys.stderr
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def bar(
    description: str,
    total: float | None,
    *,
    counting: bool = False,
    enabled: bool = True,
    stream: TextIO | None = None,
) -> Iterator[Callable[[float], None] | None]:
    """A bar to `total` (None: no end known, a running count) on stderr, or None when stderr is
    not a terminal (or not `enabled`). Yields `update(completed)`; `counting` shows "N/M"
    instead of a percentage."""
    out = stream or sys.stderr
    if not (enabled and wanted(out)):
        yield None
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn() if counting else TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(file=out), transient=False) as progress:
        task = progress.add_task(description, total=total)

        def update(completed: float) -> None:
            progress.update(task, completed=completed)

        yield update


def adding(update: Callable[[float], None]) -> Callable[[int], None]:
    """`update(completed)` fed by increments: for callers that report what they just did."""
    done = 0

    def add(amount: int) -> None:
        nonlocal done
        done += amount
        update(done)

    return add
