"""Load what the core runs on: master data and the validated rule set, from the settings.

Shared by `run`, `replay` and `rules check`, so all three see the same policy the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.config import Settings
from agent.rulebook.fields import FactSchema, build_schema
from agent.rulebook.loader import load_rules
from agent.rulebook.rules import RuleSet
from agent.world.masterdata import MasterData, load_masterdata


@dataclass(frozen=True, slots=True)
class Policy:
    masterdata: MasterData
    schema: FactSchema
    ruleset: RuleSet


def load_policy(settings: Settings, rule_paths: Sequence[Path] | None = None) -> Policy:
    """Raise MasterDataError or RuleError (with every problem) when something is wrong."""
    masterdata = load_masterdata(
        Path(settings.masterdata.items), Path(settings.masterdata.machines)
    )
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    paths = list(rule_paths) if rule_paths else [Path(settings.rules.path)]
    return Policy(masterdata, schema, load_rules(paths, schema))
