"""`serena-verify run`: how its results combine, what the tests step concludes, and the bundle it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.run
from harness.cli import main
from harness.config import load_config
from harness.outcome import CheckResult, Outcome
from harness.run import RunReport, ruff_check, suite_check


def result(check: str, outcome: Outcome, reason: str | None = None) -> CheckResult:
    return CheckResult(check, outcome, f"{check} {outcome}", reason=reason, problems=(f"{check} problem",))


def test_informational_checks_do_not_set_the_outcome_unless_strict() -> None:
    results = [result("tests", Outcome.PASSED), result("audit-deps", Outcome.INCONCLUSIVE, "service unreachable")]
    assert RunReport(results).overall() is Outcome.PASSED
    assert RunReport(results, strict=True).overall() is Outcome.INCONCLUSIVE
    failing = [*results, result("golden", Outcome.FAILED)]
    assert RunReport(failing).overall() is Outcome.FAILED


def _junit(path: Path, tests: int, failures: int = 0, skipped: int = 0) -> None:
    path.write_text(
        f'<testsuites><testsuite name="pytest" tests="{tests}" failures="{failures}" errors="0" '
        f'skipped="{skipped}"></testsuite></testsuites>'
    )


@pytest.mark.parametrize(
    ("tests", "failures", "skipped", "outcome", "summary"),
    [
        (10, 0, 1, Outcome.PASSED, "9 passed, 1 skipped"),
        (10, 2, 0, Outcome.FAILED, "2 failed"),
        (0, 0, 0, Outcome.FAILED, "no test ran"),
        (3, 0, 3, Outcome.FAILED, "no test ran"),
    ],
)
def test_the_tests_step_judges_reused_results(
    tmp_path: Path, tests: int, failures: int, skipped: int, outcome: Outcome, summary: str
) -> None:
    source, evidence = tmp_path / "source", tmp_path / "evidence"
    source.mkdir()
    evidence.mkdir()
    _junit(source / "junit.xml", tests, failures, skipped)
    (source / "coverage.xml").write_text("<coverage/>")
    checked = suite_check(load_config(tmp_path, environ={}), evidence, source)
    assert checked.outcome is outcome and summary in checked.summary
    assert (evidence / "junit.xml").is_file() and (evidence / "coverage.xml").is_file()


def test_missing_results_to_reuse_are_inconclusive(tmp_path: Path) -> None:
    checked = suite_check(load_config(tmp_path, environ={}), tmp_path, tmp_path / "nowhere")
    assert checked.outcome is Outcome.INCONCLUSIVE and "junit.xml not found" in checked.reason


def test_ruff_problems_fail_the_ruff_step(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '0'\n")
    (tmp_path / "bad.py").write_text("import os\n")
    checked = ruff_check(load_config(tmp_path, environ={}), tmp_path)
    assert checked.outcome is Outcome.FAILED
    assert any("F401" in problem for problem in checked.problems)
    assert "F401" in (tmp_path / "ruff.txt").read_text()


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch):
    """Replace the steps with fixed results, to test what the command does with them."""
    outcomes: dict[str, Outcome] = {}

    def fake(cfg, *, evidence, strict, base, tests_from, progress):
        evidence.mkdir(parents=True, exist_ok=True)
        results = [
            result(name, outcome, None if outcome in (Outcome.PASSED, Outcome.FAILED) else "why")
            for name, outcome in outcomes.items()
        ]
        return RunReport(results, evidence, strict)

    monkeypatch.setattr(harness.run, "run_all", fake)
    return outcomes


@pytest.mark.parametrize(
    ("outcomes", "strict", "code"),
    [
        ({"tests": Outcome.PASSED, "audit-deps": Outcome.INCONCLUSIVE}, False, 0),
        ({"tests": Outcome.PASSED, "audit-deps": Outcome.INCONCLUSIVE}, True, 3),
        ({"tests": Outcome.FAILED, "golden": Outcome.PASSED}, False, 1),
        ({"tests": Outcome.PASSED, "golden": Outcome.SKIPPED}, True, 1),
    ],
)
def test_run_exits_by_the_documented_codes_and_writes_the_summary(
    fake_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, outcomes, strict: bool, code: int
) -> None:
    fake_run.update(outcomes)
    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    evidence = tmp_path / "evidence"
    args = ["run", "--evidence-dir", str(evidence)] + (["--strict"] if strict else [])
    assert main(args) == code
    out = capsys.readouterr().out
    summary = json.loads((evidence / "summary.json").read_text())
    assert summary["schema_version"] == 1 and [r["check"] for r in summary["results"]] == list(outcomes)
    assert (evidence / "summary.md").read_text() in step_summary.read_text()
    assert "### serena-verify run:" in step_summary.read_text()
    if code == 1:
        assert "::error title=serena-verify tests::tests problem" in out or "::error" in out
    assert "informational" in out


@pytest.fixture
def stubbed_checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Every step of run_all replaced by a passing result; a test swaps one for a failure of the code under test."""
    import harness.gates.audit
    import harness.gates.ci_environment
    import harness.gates.coverage
    import harness.gates.deps
    import harness.invariants.check
    import harness.ledger.check

    def passing(name: str):
        return lambda *args, **kwargs: CheckResult(name, Outcome.PASSED, f"{name} passed")

    class Invariants:
        def check_result(self) -> CheckResult:
            return CheckResult("invariants", Outcome.PASSED, "invariants passed")

    def frontends(*args: object, **kwargs: object):
        return lambda via: CheckResult(f"golden via {via}", Outcome.PASSED, f"golden via {via} passed")

    for module, attribute, name in (
        (harness.run, "ruff_check", "ruff"),
        (harness.run, "suite_check", "tests"),
        (harness.run, "golden_check", "golden"),
        (harness.run, "golden_coverage_check", "golden-coverage"),
        (harness.run, "frontends_checks", None),
        (harness.gates.coverage, "coverage_gate", "coverage"),
        (harness.gates.deps, "deps_gate", "deps"),
        (harness.gates.audit, "audit_gate", "audit-deps"),
        (harness.ledger.check, "ledger_check", "ledger"),
        (harness.gates.ci_environment, "write_environment", "env"),
    ):
        monkeypatch.setattr(module, attribute, passing(name) if name else frontends)
    monkeypatch.setattr(harness.invariants.check, "check_invariants", lambda *args, **kwargs: Invariants())

    def explode(*args: object, **kwargs: object) -> CheckResult:
        raise RuntimeError("the scheduler raised\nin step 3")

    monkeypatch.setattr(harness.run, "golden_check", explode)
    return {}


def test_a_check_that_raises_fails_itself_and_the_others_still_run(stubbed_checks, tmp_path: Path) -> None:
    report = harness.run.run_all(load_config(tmp_path, environ={}), evidence=tmp_path / "evidence")
    checks = [r.check for r in report.results]
    assert checks == [
        "ruff",
        "tests",
        "coverage",
        "golden",
        "golden-coverage",
        "golden via api",
        "golden via cli",
        "invariants",
        "deps",
        "audit-deps",
        "ledger",
        "env",
    ]
    golden = report.results[3]
    assert golden.outcome is Outcome.FAILED
    assert golden.problems == ("unexpected RuntimeError: the scheduler raised in step 3",)
    assert all(r.outcome is Outcome.PASSED for r in report.results if r.check != "golden")
    assert report.overall() is Outcome.FAILED


def test_run_with_a_raising_check_exits_1_and_writes_the_whole_bundle(
    stubbed_checks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SERENA_DEBUG", raising=False)
    evidence = tmp_path / "evidence"
    assert main(["run", "--evidence-dir", str(evidence)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    summary = json.loads((evidence / "summary.json").read_text())
    assert summary["outcome"] == "failed"
    golden = next(r for r in summary["results"] if r["check"] == "golden")
    assert golden["outcome"] == "failed" and "RuntimeError" in golden["summary"]
    assert "golden" in (evidence / "summary.md").read_text() and (evidence / "invariants.json").is_file()
    assert any(line.split()[:2] == ["golden", "FAIL"] for line in captured.out.splitlines())
