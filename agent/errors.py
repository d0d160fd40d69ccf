"""The errors factory-agent raises on purpose. Library errors are mapped to these at the edge.

AgentError
├── ConfigError          a setting is missing, unknown or of the wrong type
├── MasterDataError      items.yaml / machines.yaml cannot be read or is malformed
├── RuleError            a rule file is refused; carries every `RuleProblem` found
├── ExpressionError      an expression does not parse or type-check (has a column)
├── EngineError          the rule engine refused or failed on a fact
├── StoreError           the database failed (unreachable, refused a write): worth retrying
└── TransitionError      a command refused: unknown id, illegal state change (ack a closed
                         alert; the moves and the reasons: agent/decisions/states.py); the
                         database is fine, so retrying cannot help
"""

from __future__ import annotations

from dataclasses import dataclass


class AgentError(Exception):
    """Base of every error factory-agent raises on purpose."""


class ConfigError(AgentError):
    pass


class MasterDataError(AgentError):
    pass


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong in a rule file, located for a person: `file:line: rule-id: reason`."""

    file: str
    line: int
    rule_id: str
    reason: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: {self.rule_id or '-'}: {self.reason}"
        return f"{where} (hint: {self.hint})" if self.hint else where


class RuleError(AgentError):
    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ExpressionError(AgentError):
    def __init__(self, message: str, column: int = 0) -> None:
        self.message = message
        self.column = column
        super().__init__(f"column {column}: {message}" if column else message)


class EngineError(AgentError):
    pass


class StoreError(AgentError):
    pass


class TransitionError(AgentError):
    """Not a StoreError: the daemon retries a StoreError as a database outage, and refuses a
    command that raised this at once (a dead letter with the reason)."""
