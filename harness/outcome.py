"""Check results as values: an explicit outcome, the figures behind it, and the evidence written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, assert_never

from harness import exit_codes


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class CheckResult:
    """One gate's verdict. Skipped and inconclusive results must say why."""

    check: str
    outcome: Outcome
    summary: str
    reason: str | None = None
    figures: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.outcome in (Outcome.SKIPPED, Outcome.INCONCLUSIVE) and not self.reason:
            raise ValueError(f"{self.check}: a {self.outcome} result needs a reason")

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "outcome": str(self.outcome),
            "summary": self.summary,
            "reason": self.reason,
            "figures": dict(self.figures),
            "problems": list(self.problems),
            "evidence": list(self.evidence),
        }


def combine(outcomes: Iterable[Outcome], *, strict: bool = False) -> Outcome:
    """Failed beats inconclusive beats passed; skipped counts as passed, or as failed with strict."""
    seen = set(outcomes)
    if Outcome.FAILED in seen or (strict and Outcome.SKIPPED in seen):
        return Outcome.FAILED
    if Outcome.INCONCLUSIVE in seen:
        return Outcome.INCONCLUSIVE
    if not seen or seen == {Outcome.SKIPPED}:
        return Outcome.SKIPPED if seen else Outcome.INCONCLUSIVE
    return Outcome.PASSED


def exit_code(outcome: Outcome, *, strict: bool = False) -> int:
    match outcome:
        case Outcome.PASSED:
            return exit_codes.OK
        case Outcome.FAILED:
            return exit_codes.FAILED
        case Outcome.INCONCLUSIVE:
            return exit_codes.INCONCLUSIVE
        case Outcome.SKIPPED:
            return exit_codes.FAILED if strict else exit_codes.OK
        case _:
            assert_never(outcome)
