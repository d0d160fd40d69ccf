"""pyproject.toml declares what the agent imports, and imports what it declares (issue 14 item 5:
SQLAlchemy was imported everywhere but not declared, pydantic-settings declared and never used)."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    """The runtime dependencies (not the extras), by distribution name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        normalized(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0])
        for spec in project["dependencies"]
    }


def imported() -> dict[str, str]:
    """Distribution -> one top-level module of it that some agent module imports (at run time:
    `if TYPE_CHECKING:` imports do not count)."""
    graph = grimp.build_graph(
        "agent", include_external_packages=True, exclude_type_checking_imports=True, cache_dir=None
    )
    owners = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for module in sorted(graph.modules):
        top = module.split(".")[0]
        if top == "agent" or top in sys.stdlib_module_names:
            continue
        for distribution in owners.get(top, [f"<no installed distribution has {top}>"]):
            found.setdefault(normalized(distribution), top)
    return found


def test_every_imported_library_is_declared() -> None:
    missing = {name: module for name, module in imported().items() if name not in declared()}
    assert missing == {}


def test_every_declared_library_is_imported() -> None:
    assert declared() - set(imported()) == set()
