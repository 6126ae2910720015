"""Check results as values: an explicit outcome, the figures behind it, and the evidence written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, assert_never

from harness import exit_codes


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Finding:
    """A problem pinned to a file: the rule it breaks, its text, and where — the path relative to the repository
    root (posix; absolute only for a file outside it), the 1-based line and column when known.

    `message` is the problem's own line in `CheckResult.problems`, word for word: that is how a report tells the
    problems it can point at from those it cannot. `level` only lowers how loud it is (an advisory invariant, a
    figure reported for information); None follows the check: an error when the check failed, else a warning.
    """

    rule: str
    message: str
    path: str
    line: int | None = None
    column: int | None = None
    level: Literal["warning", "note"] | None = None
    help_uri: str | None = None

    def __post_init__(self) -> None:
        if not self.rule or not self.path:
            raise ValueError(f"a finding needs a rule and a path, got rule={self.rule!r} path={self.path!r}")
        if self.line is not None and self.line < 1:
            raise ValueError(f"{self.path}: line {self.line} is not 1-based")
        if self.column is not None and (self.line is None or self.column < 1):
            raise ValueError(f"{self.path}: column {self.column} needs a line and is 1-based")


@dataclass(frozen=True)
class CheckResult:
    """One gate's verdict. Skipped and inconclusive results must say why.

    `findings` are the problems the gate can place in a file (each also in `problems`, same text); the rest have
    no location. They feed reports that point into the code (SARIF); the JSON report keeps to `problems`.
    """

    check: str
    outcome: Outcome
    summary: str
    reason: str | None = None
    figures: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()

    def __post_init__(self) -> None:
        if self.outcome in (Outcome.SKIPPED, Outcome.INCONCLUSIVE) and not self.reason:
            raise ValueError(f"{self.check}: a {self.outcome} result needs a reason")

    def unlocated(self) -> tuple[str, ...]:
        """The problems no finding places in a file."""
        located = {finding.message for finding in self.findings}
        return tuple(problem for problem in self.problems if problem not in located)

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


def line_containing(path: Path, text: str) -> int | None:
    """The 1-based number of the first line of `path` holding `text`; None when none does or it cannot be read.

    For a gate that knows what it read from a configuration file (a key, an id) but not on which line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((number for number, line in enumerate(lines, start=1) if text in line), None)


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
