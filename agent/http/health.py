"""Readiness: named checks (broker, database, rules, message age), each saying ok or why not.

`/readyz` answers 200 when every check passes, 503 listing the failing ones otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str


Check = Callable[[], CheckResult]


def run_checks(checks: Mapping[str, Check]) -> dict[str, CheckResult]:
    """Every check's result; a check that raises fails with the exception's text."""
    results: dict[str, CheckResult] = {}
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as exc:  # a broken probe must turn into "not ready", not a 500
            results[name] = CheckResult(False, f"{type(exc).__name__}: {exc}")
    return results


def message_age_check(age_s: Callable[[], float], limit_s: float) -> Check:
    """Fails when the last message is older than `limit_s` (never when `limit_s` is 0)."""

    def check() -> CheckResult:
        age = age_s()
        if limit_s > 0 and age > limit_s:
            return CheckResult(False, f"no message for {age:.0f} s (limit {limit_s:.0f} s)")
        return CheckResult(True, f"last message {age:.1f} s ago")

    return check


def flag_check(probe: Callable[[], bool], ok: str, failing: str) -> Check:
    """A yes/no probe with a sentence for each answer."""

    def check() -> CheckResult:
        return CheckResult(True, ok) if probe() else CheckResult(False, failing)

    return check
