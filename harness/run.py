"""`serena-verify run`: every check CI runs, in order, writing one evidence bundle; returns their results."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig, repo_relative
from harness.errors import HarnessError
from harness.outcome import CheckResult, Finding, Outcome, combine
from harness.output import atomic_write_text
from harness.pytest_runner import junit_counts, run_pytest

Progress = Callable[[str], None]
# Reported in the table and the bundle, but they set the exit code only with --strict.
INFORMATIONAL_CHECKS = frozenset({"audit-deps", "env"})


@dataclass
class RunReport:
    """Every check's result, in the order they ran; `overall()` is the run's one outcome rule."""

    results: list[CheckResult] = field(default_factory=list)
    evidence_dir: Path = Path()
    strict: bool = False

    def counted(self) -> list[CheckResult]:
        """The results that set the exit code: all of them with --strict, else all but the informational ones."""
        return [r for r in self.results if self.strict or r.check not in INFORMATIONAL_CHECKS]

    def overall(self) -> Outcome:
        return combine((r.outcome for r in self.counted()), strict=self.strict)


def raised_result(check: str, exc: Exception) -> CheckResult:
    """A check whose code raised: failed, with the error as its one problem, so the run goes on and says so."""
    line = f"[{exc.slug}] {exc}" if isinstance(exc, HarnessError) else f"unexpected {type(exc).__name__}: {exc}"
    line = " ".join(line.split())
    return CheckResult(check, Outcome.FAILED, f"the check could not finish: {line}", problems=(line,))


def _tail(text: str, lines: int = 5) -> tuple[str, ...]:
    return tuple(line for line in text.strip().splitlines()[-lines:] if line.strip())


RUFF_STEPS = (["check", "--output-format", "concise", "."], ["format", "--check", "."])


def ruff_check(cfg: HarnessConfig, evidence: Path) -> CheckResult:
    outputs = []
    failed = []
    for args in RUFF_STEPS:
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=cfg.repo_root, capture_output=True, text=True
        )
        outputs.append(f"$ ruff {' '.join(args)} (exit {result.returncode})\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            failed.append((args, result))
    (evidence / "ruff.txt").write_text("\n".join(outputs), encoding="utf-8")
    if failed:
        problems: list[str] = []
        findings: list[Finding] = []
        for args, result in failed:
            located = ruff_findings(cfg.repo_root, args[0])
            if located:  # a syntax error is reported by both steps: once is enough
                findings += [finding for finding in located if finding not in set(findings)]
            else:  # ruff said nothing it could place (a crash, a configuration error): the end of what it said
                problems += _tail(result.stdout + result.stderr, 8)
        problems[:0] = [finding.message for finding in findings]
        return CheckResult(
            "ruff",
            Outcome.FAILED,
            "ruff check / format --check found problems",
            problems=tuple(problems),
            evidence=("ruff.txt",),
            findings=tuple(findings),
        )
    return CheckResult("ruff", Outcome.PASSED, "ruff check and ruff format --check clean", evidence=("ruff.txt",))


def ruff_findings(repo_root: Path, step: str) -> tuple[Finding, ...]:
    """What `ruff check` or `ruff format --check` found, from its JSON report: rule, file, line and column.

    Empty when ruff wrote no JSON list (it could not run, or this ruff cannot report that step as JSON)."""
    args = ["check", "--exit-zero"] if step == "check" else ["format", "--check"]
    completed = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--output-format", "json", "."],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    try:
        entries = json.loads(completed.stdout)
        findings = []
        for entry in entries:
            path = repo_relative(Path(entry["filename"]), repo_root)
            row, column = int(entry["location"]["row"]), int(entry["location"]["column"])
            rule = str(entry.get("code") or entry.get("name") or "ruff")
            text = f"{path}:{row}:{column}: {rule} {entry['message']}"
            if rule == "unformatted":
                text = f"{path}:{row}: would be reformatted by ruff format"
            findings.append(Finding(rule, text, path, row, column or None, help_uri=entry.get("url") or None))
    except (ValueError, TypeError, KeyError):
        return ()
    return tuple(findings)


def suite_check(cfg: HarnessConfig, evidence: Path, tests_from: Path | None) -> CheckResult:
    """Run the whole suite with coverage (or take junit.xml and coverage.xml of a run that just happened)."""
    junit, coverage = evidence / "junit.xml", evidence / "coverage.xml"
    if tests_from is not None:
        for name, target in (("junit.xml", junit), ("coverage.xml", coverage)):
            source = tests_from / name
            if not source.is_file():
                return CheckResult(
                    "tests",
                    Outcome.INCONCLUSIVE,
                    "no test results to reuse",
                    reason=f"--tests-from {tests_from}: {name} not found",
                )
            shutil.copyfile(source, target)
        origin = f"results of an earlier run, from {tests_from}"
        exit_status = None
    else:
        result = run_pytest(cfg.repo_root, "--cov", "--cov-fail-under=0", f"--cov-report=xml:{coverage}", junit=junit)
        (evidence / "pytest.txt").write_text(result.stdout + result.stderr, encoding="utf-8")
        origin = "pytest run by serena-verify"
        exit_status = result.returncode
        if not junit.is_file():
            return CheckResult(
                "tests",
                Outcome.FAILED,
                f"pytest wrote no results (exit {result.returncode})",
                problems=_tail(result.stdout + result.stderr),
                evidence=("pytest.txt",),
            )
    counts = junit_counts(junit)
    ran = counts["tests"] - counts["skipped"]
    figures = {**counts, "source": origin}
    evidence_files = ("junit.xml", "coverage.xml") + (("pytest.txt",) if exit_status is not None else ())
    if ran == 0:
        return CheckResult("tests", Outcome.FAILED, "no test ran", figures=figures, evidence=evidence_files)
    if counts["failures"] or counts["errors"] or exit_status not in (None, 0):
        problems = ()
        if exit_status is not None:
            problems = _tail((evidence / "pytest.txt").read_text(encoding="utf-8"), 10)
        return CheckResult(
            "tests",
            Outcome.FAILED,
            f"{counts['failures']} failed, {counts['errors']} errors of {counts['tests']}",
            figures=figures,
            problems=problems,
            evidence=evidence_files,
        )
    return CheckResult(
        "tests",
        Outcome.PASSED,
        f"{ran} passed, {counts['skipped']} skipped ({origin})",
        figures=figures,
        evidence=evidence_files,
    )


def run_all(
    cfg: HarnessConfig,
    *,
    evidence: Path,
    strict: bool = False,
    base: str | None = None,
    tests_from: Path | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """ruff, tests with coverage, the coverage gate, goldens, golden coverage, the goldens through the API and the
    CLI, invariants, deps, audit-deps, ledger, environment.

    A check that raises becomes its own failed result; the checks after it still run.
    """
    from harness.gates.audit import audit_gate
    from harness.gates.ci_environment import write_environment
    from harness.gates.coverage import changed_lines_coverage, coverage_gate
    from harness.gates.deps import deps_gate
    from harness.invariants.check import check_invariants
    from harness.ledger.check import ledger_base_check, ledger_check

    evidence.mkdir(parents=True, exist_ok=True)
    report = RunReport(evidence_dir=evidence, strict=strict)

    def step(name: str, produce: Callable[[], CheckResult]) -> None:
        if progress:
            progress(f"{name} …")
        try:
            result = produce()
        except Exception as exc:
            if os.environ.get("SERENA_DEBUG"):
                raise
            result = raised_result(name, exc)
        report.results.append(result)
        if progress:
            progress(f"{name}: {result.outcome}")

    step("ruff", lambda: ruff_check(cfg, evidence))
    step("tests", lambda: suite_check(cfg, evidence, tests_from))
    step("coverage", lambda: coverage_gate(cfg, xml_path=evidence / "coverage.xml"))
    made_alongside: dict[str, Any] = {}  # the golden check's front-end comparisons, when it got to make them
    step("golden", lambda: golden_check(cfg, evidence / "golden", made_alongside))
    step("golden-coverage", lambda: golden_coverage_check(cfg, evidence / "golden-coverage"))
    frontends = frontends_checks(cfg, evidence / "golden", made_alongside)
    step("golden via api", lambda: frontends("api"))
    step("golden via cli", lambda: frontends("cli"))
    step(
        "invariants",
        lambda: check_invariants(cfg, junit=evidence / "junit.xml", golden_report=evidence / "golden").check_result(),
    )
    step("deps", lambda: deps_gate(cfg, evidence_dir=evidence))
    step("audit-deps", lambda: audit_gate(cfg, evidence_dir=evidence, strict=strict))
    step("ledger", lambda: ledger_check(cfg))
    if base is not None:
        step("ledger-base", lambda: ledger_base_check(cfg, base))
        step("coverage-diff", lambda: changed_lines_coverage(cfg, base))
    step("env", lambda: write_environment(cfg, evidence_dir=evidence))
    return report


def frontends_checks(
    cfg: HarnessConfig, folder: Path, made_alongside: Mapping[str, Any] | None = None
) -> Callable[[str], CheckResult]:
    """The cases made through the HTTP API and the CLI, pixel for pixel against the in-process run: one check per
    front end, from one run of both. The golden check makes them alongside its own run (`made_alongside`); when it
    did not get to, they are made here when the first is asked for. Their results go to `folder`."""
    results: dict[str, CheckResult] = {}

    def check(via: str) -> CheckResult:
        if not results:
            from harness.golden.frontends import VIAS, compare_frontends
            from harness.golden.selection import Selection
            from harness.render import render

            made = (made_alongside or {}).get("report") or compare_frontends(cfg, selection=Selection(), vias=VIAS)
            checks = made.check_results()
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "frontends.md", render(checks, "markdown"))
            results.update({result.check.removeprefix("golden via "): result for result in checks})
        return results[via]

    return check


def golden_coverage_check(cfg: HarnessConfig, folder: Path) -> CheckResult:
    """What of serena/ the golden cases execute, against the generation path's floors; the report goes to `folder`."""
    from harness.golden.coverage import golden_coverage, write_coverage_report

    folder.mkdir(parents=True, exist_ok=True)
    return write_coverage_report(golden_coverage(cfg), folder)


def golden_check(cfg: HarnessConfig, folder: Path, made_alongside: dict[str, Any] | None = None) -> CheckResult:
    """Every golden case against the recorded set; the golden report (all formats) goes to `folder`. With
    `made_alongside`, each case is also made through every front end against this run's in-process images, and that
    report is left in it under "report" for frontends_checks."""
    from harness.golden.publish import write_golden_report
    from harness.golden.session import run_goldens

    riding = None
    if made_alongside is not None:
        from harness.golden.frontends import FrontendsAlongside
        from harness.golden.selection import Selection

        riding = FrontendsAlongside(cfg, Selection())
    golden_report = run_goldens(cfg, alongside=riding.open if riding else None)
    if made_alongside is not None and riding is not None:
        made_alongside["report"] = riding.finish(golden_report.skipped_reason)
    write_golden_report(golden_report, folder)
    shown = folder.name
    return dataclasses.replace(
        golden_report.check_result(),
        evidence=(f"{shown}/golden.json", f"{shown}/golden.html", f"{shown}/golden.junit.xml"),
    )
