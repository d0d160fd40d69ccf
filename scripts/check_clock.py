"""No core module reads the clock: the time is passed in (docs/design.md, issue 14).

Checks agent/world, agent/decisions, agent/rulebook (but its engine worker.py and child.py,
which time the engine) and agent/app/core.py for a use of `datetime.now()`, `utcnow()`,
`today()`, `date.today()`, `time.time()`, `monotonic()`, `perf_counter()` and the like, imports
under another name included (`from time import monotonic as mono`, `import datetime as dt`).
A reference counts as much as a call: `default_factory=datetime.now` reads the clock later.

Usage: python scripts/check_clock.py [REPO]   (standard library only; exit 1 on a violation,
one `file:line:column: ...` per use)
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Relative to the repository: packages checked whole, single modules, and exceptions.
PACKAGES = ("agent/world", "agent/decisions", "agent/rulebook")
MODULES = ("agent/app/core.py",)
EXEMPT = ("agent/rulebook/worker.py", "agent/rulebook/child.py")

_TIME_READERS = (
    "time",
    "time_ns",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
    "process_time",
    "process_time_ns",
    "thread_time",
    "thread_time_ns",
    "clock_gettime",
    "clock_gettime_ns",
    "localtime",
    "gmtime",
    "ctime",
    "asctime",
    "strftime",
)
CLOCK_READERS = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        *(f"time.{name}" for name in _TIME_READERS),
    }
)


@dataclass(frozen=True, slots=True)
class Violation:
    path: Path
    line: int
    column: int
    name: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}:{self.column}: {self.name} reads the clock; "
            "pass the time in (a Clock, or the message's time)"
        )


def checked_files(repo: Path) -> list[Path]:
    """The modules that must not read the clock, sorted."""
    files = {path for package in PACKAGES for path in (repo / package).rglob("*.py")}
    files |= {repo / module for module in MODULES if (repo / module).is_file()}
    files -= {repo / module for module in EXEMPT}
    return sorted(files)


def violations(source: str, path: Path) -> list[Violation]:
    """Every use of a clock reader in `source`, in the order they appear."""
    tree = ast.parse(source, filename=str(path))
    aliases = dict(_imported_names(tree))
    found: list[Violation] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name | ast.Attribute):
            continue
        name = _qualified(node, aliases)
        if name in CLOCK_READERS:
            found.append(Violation(path, node.lineno, node.col_offset + 1, f"{name}()"))
    return sorted(found, key=lambda v: (v.line, v.column))


def _imported_names(tree: ast.AST) -> Iterator[tuple[str, str]]:
    """(local name, what it stands for): `import time as t` gives ("t", "time"),
    `from datetime import datetime as DT` gives ("DT", "datetime.datetime")."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is not None:
                    yield alias.asname, alias.name
                else:  # `import os.path` binds `os`
                    top = alias.name.split(".")[0]
                    yield top, top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            for alias in node.names:
                yield alias.asname or alias.name, f"{node.module}.{alias.name}"


def _qualified(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """`dt.datetime.now` -> "datetime.datetime.now" when `dt` is an imported name, else None
    (a local variable called `time` is not the module)."""
    attributes: list[str] = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(attributes)])


def check(repo: Path) -> list[Violation]:
    found: list[Violation] = []
    for path in checked_files(repo):
        found += violations(path.read_text(encoding="utf-8"), path.relative_to(repo))
    return found


def main(argv: list[str]) -> int:
    repo = Path(argv[1]) if len(argv) > 1 else REPO
    found = check(repo)
    for violation in found:
        print(violation)
    if found:
        print(f"check_clock: {len(found)} clock read(s) in core modules", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
