"""`serena-verify milestone close`: the audit score computed from measured evidence, never typed by hand.

Four dimensions of 25 points, each read from the evidence folder:
- gates passed: the serena-verify JSON reports there (`--json --output <evidence>/<gate>.json`, or `run`'s), not
  counting goldens, invariants and the informational env / coverage-diff records, plus the tests in junit.xml;
- coverage: the total of coverage.xml (or of a coverage report's figures), as a share of 100 %;
- invariants verified: reports whose check starts with "invariant";
- goldens: reports whose check starts with "golden".
A dimension with no evidence scores 0 and is shown as missing. The total is the rounded sum.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from harness.config import HarnessConfig, repo_relative
from harness.errors import HarnessError, LedgerError
from harness.gates.coverage import read_coverage_xml
from harness.git import commit_time, git
from harness.ledger.check import summary_problems
from harness.ledger.model import (
    ARTIFACTS,
    EVIDENCE_END,
    EVIDENCE_START,
    artifact_path,
    read_ledger,
    replace_section,
)
from harness.outcome import CheckResult, Outcome
from harness.output import atomic_write_text
from harness.pytest_runner import junit_counts

DIMENSION_POINTS = 25.0
# records, not gates: they never earn or lose the "gates passed" points
UNSCORED_CHECKS = frozenset({"env", "coverage-diff"})


@dataclass(frozen=True)
class Dimension:
    """One scored dimension: what was measured, the points it earns, and the files it came from."""

    name: str
    points: float
    measured: str
    sources: tuple[str, ...]
    missing: bool
    max_points: float = DIMENSION_POINTS

    def describe(self) -> str:
        return f"{self.name} {'missing' if self.missing else f'{self.points:.1f}'}"


@dataclass(frozen=True)
class AuditScore:
    dimensions: tuple[Dimension, ...]

    @property
    def total(self) -> int:
        return math.floor(sum(d.points for d in self.dimensions) + 0.5)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions if d.missing)


@dataclass(frozen=True)
class _Result:
    check: str
    outcome: str
    figures: dict[str, Any]
    source: str


def _reports(evidence_dir: Path) -> dict[str, _Result]:
    """Every check result in the serena-verify JSON reports of the folder (and one level down); newest wins."""
    files = [*evidence_dir.glob("*.json"), *evidence_dir.glob("*/*.json")]
    results: dict[str, _Result] = {}
    for path in sorted(files, key=lambda p: (p.stat().st_mtime, p.name)):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(document, dict) or "schema_version" not in document:
            continue
        for item in document.get("results", ()):
            if isinstance(item, dict) and isinstance(item.get("check"), str):
                source = path.relative_to(evidence_dir).as_posix()
                figures = item.get("figures") if isinstance(item.get("figures"), dict) else {}
                results[item["check"]] = _Result(item["check"], str(item.get("outcome")), figures, source)
    return results


def _junit(path: Path) -> _Result | None:
    """The tests of a JUnit XML file as one result: passed when some ran and none failed or errored."""
    try:
        counts = junit_counts(path)
    except HarnessError:
        return None
    passed = counts["tests"] > 0 and counts["failures"] == counts["errors"] == 0
    return _Result("tests", "passed" if passed else "failed", counts, path.name)


def _fraction(name: str, results: list[_Result]) -> Dimension:
    if not results:
        return Dimension(name, 0.0, "missing", (), missing=True)
    passed = [r for r in results if r.outcome == "passed"]
    checks = ", ".join(f"{r.check} {r.outcome}" for r in results)
    return Dimension(
        name,
        DIMENSION_POINTS * len(passed) / len(results),
        f"{len(passed)}/{len(results)} passed ({checks})",
        tuple(sorted({r.source for r in results})),
        missing=False,
    )


def compute_audit_score(evidence_dir: Path) -> AuditScore:
    """Score the evidence folder; see the module docstring for the dimensions."""
    reports = _reports(evidence_dir)
    tests = _junit(evidence_dir / "junit.xml") if (evidence_dir / "junit.xml").is_file() else None
    gates = [
        r
        for check, r in sorted(reports.items())
        if check not in UNSCORED_CHECKS and not check.startswith(("golden", "invariant", "milestone"))
    ]
    if tests is not None and "tests" not in reports:
        gates.append(tests)

    coverage_xml = evidence_dir / "coverage.xml"
    if coverage_xml.is_file():
        total = read_coverage_xml(coverage_xml).total_percent
        coverage = Dimension("coverage", DIMENSION_POINTS * total / 100, f"{total}%", ("coverage.xml",), False)
    elif "coverage" in reports and isinstance(reports["coverage"].figures.get("total"), int | float):
        total = float(reports["coverage"].figures["total"])
        source = (reports["coverage"].source,)
        coverage = Dimension("coverage", DIMENSION_POINTS * total / 100, f"{total}%", source, False)
    else:
        coverage = Dimension("coverage", 0.0, "missing", (), missing=True)

    return AuditScore(
        (
            _fraction("gates passed", gates),
            coverage,
            _fraction("invariants verified", [r for c, r in sorted(reports.items()) if c.startswith("invariant")]),
            _fraction("goldens", [r for c, r in sorted(reports.items()) if c.startswith("golden")]),
        )
    )


def evidence_markdown(score: AuditScore, milestone: str, evidence_dir: Path, shown_dir: str, when: str) -> str:
    """The Validation & Evidence body: the score, each dimension, and the sha256 of every file it read."""
    lines = [
        EVIDENCE_START,
        f"Audit score: **{score.total}/100**, computed by `serena-verify milestone close {milestone}` at {when} "
        f"from `{shown_dir}` (each dimension is worth {DIMENSION_POINTS:g}; missing evidence scores 0).",
        "",
        "| Dimension | Measured | Points | Evidence |",
        "| --- | --- | --- | --- |",
    ]
    for d in score.dimensions:
        sources = ", ".join(f"`{s}`" for s in d.sources) or "—"
        lines.append(f"| {d.name} | {d.measured.replace('|', '∣')} | {d.points:.1f}/{d.max_points:g} | {sources} |")
    files = sorted({s for d in score.dimensions for s in d.sources})
    if files:
        lines += ["", "Evidence files (sha256):", ""]
        lines += [f"- `{name}` {hashlib.sha256((evidence_dir / name).read_bytes()).hexdigest()}" for name in files]
    lines.append(EVIDENCE_END)
    return "\n".join(lines)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def close_milestone(
    cfg: HarnessConfig,
    milestone: str,
    *,
    evidence_dir: Path | None = None,
    commit_ref: str = "HEAD",
    completed_at: Literal["now", "commit"] = "now",
    dry_run: bool = False,
    strict: bool = False,
    now: datetime | None = None,
) -> CheckResult:
    """Compute the score, fill the summary's Validation & Evidence and the audit's Computed score, close the row.

    Nothing is written when the closed milestone would fail `ledger check` (empty sections, a Met verdict with
    unticked criteria, …), with --strict when a dimension is missing, or with --dry-run. The ledger row is written
    last, so an interrupted close leaves the row as it was.
    """
    ledger_path = cfg.path("ledger.path")
    milestones_dir = cfg.path("ledger.milestones_dir")
    ledger = read_ledger(ledger_path)
    if ledger.problems:
        raise LedgerError(f"{ledger.problems[0]}; fix the ledger before closing a milestone")
    row = ledger.row(milestone)
    if row is None:
        raise LedgerError(f"{ledger_path}: no row for {milestone}; add it with `serena-verify milestone new`")
    if row.status == "closed":
        raise LedgerError(f"{ledger_path}: {milestone} is already closed ({row.completed_at}, {row.audit_score})")
    missing = [a for a in ARTIFACTS if not artifact_path(milestones_dir, milestone, a).is_file()]
    if missing:
        names = ", ".join(artifact_path(milestones_dir, milestone, a).name for a in missing)
        raise LedgerError(f"{milestones_dir / milestone}: missing {names}; a milestone closes with all its artifacts")
    evidence_dir = Path(evidence_dir) if evidence_dir is not None else cfg.path("evidence_dir")
    if not evidence_dir.is_dir():
        raise LedgerError(f"{evidence_dir}: no evidence folder; run the gates with their evidence there first")

    score = compute_audit_score(evidence_dir)
    try:
        commit = git(cfg.repo_root, "rev-parse", "--short=7", f"{commit_ref}^{{commit}}").strip()
        moment = datetime.fromisoformat(commit_time(cfg.repo_root, commit)) if completed_at == "commit" else None
    except HarnessError as exc:
        raise LedgerError(f"cannot resolve commit {commit_ref!r}: {exc}") from None
    when = _utc(moment or now or datetime.now(UTC))
    shown_dir = repo_relative(evidence_dir, cfg.repo_root)
    body = evidence_markdown(score, milestone, evidence_dir, shown_dir, _utc(now or datetime.now(UTC)))

    summary_path = artifact_path(milestones_dir, milestone, "summary")
    audit_path = artifact_path(milestones_dir, milestone, "audit")
    plan_path = artifact_path(milestones_dir, milestone, "plan")
    summary_text = replace_section(summary_path.read_text(encoding="utf-8"), "Validation & Evidence", body)
    audit_text = replace_section(audit_path.read_text(encoding="utf-8"), "Computed score", body)
    closed = replace(row, status="closed", commit=commit, audit_score=f"{score.total}/100", completed_at=when)
    problems = summary_problems(
        milestone,
        summary_text,
        summary_path.name,
        plan_text=plan_path.read_text(encoding="utf-8"),
        plan_where=plan_path.name,
        row_score=closed.audit_score,
    )
    if strict and score.missing:
        problems.append(f"--strict: no evidence for {', '.join(score.missing)} in {evidence_dir}")

    breakdown = " + ".join(d.describe() for d in score.dimensions)
    figures = {
        "milestone": milestone,
        "audit_score": score.total,
        "commit": commit,
        "completed_at": when,
        "evidence_dir": str(evidence_dir),
        "dimensions": {
            d.name: {"points": d.points, "measured": d.measured, "sources": list(d.sources), "missing": d.missing}
            for d in score.dimensions
        },
    }
    if problems:
        return CheckResult(
            check="milestone-close",
            outcome=Outcome.FAILED,
            summary=f"{milestone} not closed (would score {score.total}/100 = {breakdown}); nothing written",
            figures=figures,
            problems=tuple(problems),
        )
    if dry_run:
        return CheckResult(
            check="milestone-close",
            outcome=Outcome.PASSED,
            summary=f"{milestone} would close at {commit}: {score.total}/100 = {breakdown} (dry run; nothing written)",
            figures=figures,
        )
    atomic_write_text(summary_path, summary_text)
    atomic_write_text(audit_path, audit_text)
    atomic_write_text(ledger_path, ledger.with_rows([closed if r.milestone == milestone else r for r in ledger.rows]))
    return CheckResult(
        check="milestone-close",
        outcome=Outcome.PASSED,
        summary=f"{milestone} closed at {commit}: audit score {score.total}/100 = {breakdown}",
        figures=figures,
        evidence=(str(summary_path), str(audit_path), str(ledger_path)),
    )
