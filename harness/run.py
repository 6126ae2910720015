"""`serena-verify run`: every check CI runs, in order, writing one evidence bundle; returns their results."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

from harness.config import HarnessConfig
from harness.outcome import CheckResult, Outcome, combine

Progress = Callable[[str], None]
# Reported in the table and the bundle, but they set the exit code only with --strict.
INFORMATIONAL = frozenset({"audit-deps", "env"})


@dataclass
class RunReport:
    results: list[CheckResult] = field(default_factory=list)
    evidence_dir: Path = Path()
    strict: bool = False

    def overall(self) -> Outcome:
        counted = [r.outcome for r in self.results if self.strict or r.check not in INFORMATIONAL]
        return combine(counted, strict=self.strict)


def _tail(text: str, lines: int = 5) -> tuple[str, ...]:
    return tuple(line for line in text.strip().splitlines()[-lines:] if line.strip())


def ruff_check(cfg: HarnessConfig, evidence: Path) -> CheckResult:
    outputs = []
    failed = []
    for args in (["check", "--output-format", "concise", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=cfg.repo_root, capture_output=True, text=True
        )
        outputs.append(f"$ ruff {' '.join(args)} (exit {result.returncode})\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            failed.append((args, result))
    (evidence / "ruff.txt").write_text("\n".join(outputs), encoding="utf-8")
    if failed:
        problems = tuple(line for args, r in failed for line in _tail(r.stdout + r.stderr, 8))
        return CheckResult(
            "ruff",
            Outcome.FAILED,
            "ruff check / format --check found problems",
            problems=problems,
            evidence=("ruff.txt",),
        )
    return CheckResult("ruff", Outcome.PASSED, "ruff check and ruff format --check clean", evidence=("ruff.txt",))


def junit_counts(path: Path) -> dict[str, int]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {key: sum(int(s.get(key, 0) or 0) for s in suites) for key in ("tests", "failures", "errors", "skipped")}


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
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--cov",
            "--cov-fail-under=0",
            f"--cov-report=xml:{coverage}",
            f"--junitxml={junit}",
        ]
        result = subprocess.run(command, cwd=cfg.repo_root, capture_output=True, text=True)
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
    """ruff, tests with coverage, the coverage gate, goldens, invariants, deps, audit-deps, ledger, environment."""
    from harness.gates.audit import audit_gate
    from harness.gates.coverage import changed_lines_coverage, coverage_gate
    from harness.gates.deps import deps_gate
    from harness.gates.environment import write_environment
    from harness.golden.commands import _write_all_formats
    from harness.golden.document import read_document, write_report_dir
    from harness.golden.session import run_goldens
    from harness.ledger.check import ledger_base_check, ledger_check
    from invariants.check import check_invariants

    evidence.mkdir(parents=True, exist_ok=True)
    report = RunReport(evidence_dir=evidence, strict=strict)

    def step(name: str, produce: Callable[[], CheckResult]) -> None:
        if progress:
            progress(f"{name} …")
        result = produce()
        report.results.append(result)
        if progress:
            progress(f"{name}: {result.outcome}")

    step("ruff", lambda: ruff_check(cfg, evidence))
    step("tests", lambda: suite_check(cfg, evidence, tests_from))
    step("coverage", lambda: coverage_gate(cfg, xml_path=evidence / "coverage.xml"))

    def golden() -> CheckResult:
        golden_report = run_goldens(cfg)
        folder = evidence / "golden"
        document = read_document(write_report_dir(golden_report, folder))
        _write_all_formats(document, folder)
        result = golden_report.check_result()
        return CheckResult(
            result.check,
            result.outcome,
            result.summary,
            result.reason,
            result.figures,
            result.problems,
            ("golden/golden.json", "golden/golden.html", "golden/golden.junit.xml"),
        )

    step("golden", golden)
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
