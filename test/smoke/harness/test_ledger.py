"""The ledger check turns red on a row without its folder, contradictions, a runtime change without a ledger update
and a missing base ref; `milestone new` scaffolds and `milestone close` scores from measured evidence only."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import REPO_ROOT

from harness import cli
from harness.config import HarnessConfig, load_config
from harness.ledger.check import ledger_base_check, ledger_check, parse_completed_at
from harness.ledger.close import close_milestone, compute_audit_score
from harness.ledger.model import parse_ledger, read_ledger, sections
from harness.ledger.scaffold import milestone_new
from harness.outcome import Outcome

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with a pyproject.toml, a runtime file, and one commit tagged `base`."""
    root = tmp_path / "repo"
    (root / "serena").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")
    (root / "serena/core.py").write_text("VALUE = 1\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    git(root, "tag", "base")
    return root


def config(root: Path) -> HarnessConfig:
    return load_config(root, environ={})


def ledger_path(root: Path) -> Path:
    return root / "docs/serena.md"


def folder(root: Path, mid: str) -> Path:
    return root / "docs/milestones" / mid


def fill_for_close(root: Path, mid: str, *, verdict: str = "Met.", tick: bool = True) -> None:
    """Write what a person writes before closing: the plan's criteria and every summary section but the evidence."""
    plan = folder(root, mid) / f"{mid}_plan.md"
    plan.write_text(
        plan.read_text(encoding="utf-8").replace("- [ ] …", "- [x] it works" if tick else "- [ ] it works"),
        encoding="utf-8",
    )
    summary = folder(root, mid) / f"{mid}_summary.md"
    text = summary.read_text(encoding="utf-8")
    for heading, body in (
        ("Objective", "Make it work."),
        ("Scope", "core.py"),
        ("Invariants", "none yet"),
        ("Exit Criteria", "all ticked"),
        ("Verdict", verdict),
    ):
        text = text.replace(f"## {heading}\n", f"## {heading}\n\n{body}\n", 1)
    summary.write_text(text, encoding="utf-8")


def evidence(root: Path, *, golden: str | None = "passed") -> Path:
    """An evidence folder: coverage.xml at 90 %, a gates report (one passed, one inconclusive), junit, a golden."""
    ev = root / "build/evidence"
    ev.mkdir(parents=True)
    hits = "".join(f'<line number="{n}" hits="{1 if n <= 9 else 0}"/>' for n in range(1, 11))
    (ev / "coverage.xml").write_text(
        f"<coverage><sources><source>{root}/serena</source></sources><packages><package><classes>"
        f'<class filename="core.py"><lines>{hits}</lines></class></classes></package></packages></coverage>',
        encoding="utf-8",
    )
    gates = {
        "schema_version": 1,
        "results": [
            {"check": "deps", "outcome": "passed", "figures": {}},
            {"check": "audit-deps", "outcome": "inconclusive", "figures": {}},
            {"check": "env", "outcome": "passed", "figures": {}},
        ],
    }
    (ev / "gates.json").write_text(json.dumps(gates), encoding="utf-8")
    (ev / "junit.xml").write_text('<testsuite tests="5" failures="0" errors="0" skipped="1"/>', encoding="utf-8")
    if golden:
        report = {"schema_version": 1, "results": [{"check": "golden", "outcome": golden, "figures": {}}]}
        (ev / "golden.json").write_text(json.dumps(report), encoding="utf-8")
    return ev


# ---------------------------------------------------------------- new


def test_milestone_new_scaffolds_the_folder_and_a_planned_row(repo: Path) -> None:
    result = milestone_new(config(repo), "M01", "The runtime", today="2026-11-23")
    assert result.outcome is Outcome.PASSED
    for artifact in ("plan", "run1", "run2", "audit", "summary"):
        assert (folder(repo, "M01") / f"M01_{artifact}.md").is_file()
    summary = sections((folder(repo, "M01") / "M01_summary.md").read_text(encoding="utf-8"))
    assert list(summary) == ["Objective", "Scope", "Invariants", "Validation & Evidence", "Exit Criteria", "Verdict"]
    row = read_ledger(ledger_path(repo)).row("M01")
    assert row is not None and (row.title, row.status, row.audit_score) == ("The runtime", "planned", "—")
    milestone_new(config(repo), "M02", "Goldens | hashes")
    assert read_ledger(ledger_path(repo)).row("M02").title == "Goldens | hashes"  # a pipe survives the table
    assert ledger_check(config(repo)).outcome is Outcome.PASSED


def test_milestone_new_cli_refuses_a_bad_id_and_a_duplicate(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    assert cli.main(["milestone", "new", "M01", "--title", "First", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["check"] == "milestone-new"
    assert cli.main(["milestone", "new", "M01", "--title", "Again"]) == 2
    assert "[ledger]" in capsys.readouterr().err
    assert cli.main(["milestone", "new", "milestone-2", "--title", "Bad"]) == 2
    assert "expected M followed by 2-3 digits" in capsys.readouterr().err


# ---------------------------------------------------------------- check


def test_a_ledger_row_without_its_folder_fails(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    text = ledger_path(repo).read_text(encoding="utf-8")
    ledger_path(repo).write_text(text + "| M02 | Hand-added | planned | main | — | — | — | — | — |\n", encoding="utf-8")
    result = ledger_check(config(repo))
    assert result.outcome is Outcome.FAILED
    assert result.problems == ("M02: no milestone folder docs/milestones/M02/",)


def test_schema_status_duplicates_and_orphan_folders_are_flagged(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    milestone_new(config(repo), "M02", "Goldens")
    text = ledger_path(repo).read_text(encoding="utf-8")
    text = text.replace("| M02 | Goldens | planned |", "| M01 | Goldens | done |")
    ledger_path(repo).write_text(text, encoding="utf-8")
    problems = ledger_check(config(repo)).problems
    assert any("milestone M01 appears twice" in p for p in problems)
    assert "docs/milestones/M02/ has no row in the ledger" in problems

    ledger_path(repo).write_text(text.replace("| Audit Score |", "| Score |"), encoding="utf-8")
    assert any("table header is" in p for p in ledger_check(config(repo)).problems)

    bad_status = ledger_path(repo).read_text(encoding="utf-8").replace("| Score |", "| Audit Score |")
    ledger_path(repo).write_text(
        bad_status.replace("| M01 | Goldens | done |", "| M03 | Goldens | done |"), encoding="utf-8"
    )
    assert any(
        "status 'done' is not one of planned, in-progress, closed" in p for p in ledger_check(config(repo)).problems
    )


def test_a_hand_typed_score_on_an_open_milestone_is_flagged(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    text = (
        ledger_path(repo)
        .read_text(encoding="utf-8")
        .replace(
            "| The runtime | planned | — | — | — | — | — | — |",
            "| The runtime | planned | — | — | — | — | 95/100 | — |",
        )
    )
    ledger_path(repo).write_text(text, encoding="utf-8")
    (result,) = [ledger_check(config(repo))]
    assert result.outcome is Outcome.FAILED
    assert "only `milestone close` sets it" in result.problems[0]


def test_ledger_check_cli_without_a_ledger_fails(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    assert cli.main(["ledger", "check"]) == 1
    assert "no ledger at docs/serena.md" in capsys.readouterr().out


# ---------------------------------------------------------------- close


def test_close_computes_the_score_from_evidence_and_the_check_then_passes(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    fill_for_close(repo, "M01")
    ev = evidence(repo)

    score = compute_audit_score(ev)
    by_name = {d.name: d for d in score.dimensions}
    # gates: deps passed, audit-deps inconclusive, tests (junit) passed; env is informational → 2/3
    assert by_name["gates passed"].points == pytest.approx(25 * 2 / 3)
    assert by_name["coverage"].measured == "90.0%" and by_name["coverage"].points == pytest.approx(22.5)
    assert by_name["invariants verified"].missing and by_name["invariants verified"].points == 0
    assert by_name["goldens"].points == 25
    assert score.total == 64  # 16.67 + 22.5 + 0 + 25 = 64.17

    result = close_milestone(config(repo), "M01", evidence_dir=ev, now=NOW)
    assert result.outcome is Outcome.PASSED, result.problems
    assert "64/100" in result.summary and "invariants verified missing" in result.summary
    row = read_ledger(ledger_path(repo)).row("M01")
    assert row.status == "closed" and row.audit_score == "64/100"
    assert row.commit == git(repo, "rev-parse", "--short=7", "HEAD")
    assert parse_completed_at(row.completed_at) == NOW
    filled = sections((folder(repo, "M01") / "M01_summary.md").read_text(encoding="utf-8"))["Validation & Evidence"]
    assert "Audit score: **64/100**" in filled
    assert "| invariants verified | missing | 0.0/25 | — |" in filled
    assert "- `coverage.xml` " in filled  # the sha256 of each evidence file read
    assert ledger_check(config(repo)).outcome is Outcome.PASSED

    text = ledger_path(repo).read_text(encoding="utf-8").replace("64/100", "90/100")
    ledger_path(repo).write_text(text, encoding="utf-8")
    assert any("contradicts 64/100 computed" in p for p in ledger_check(config(repo)).problems)


def test_close_refuses_a_met_verdict_with_unticked_criteria(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    fill_for_close(repo, "M01", tick=False)
    before = ledger_path(repo).read_text(encoding="utf-8")
    result = close_milestone(config(repo), "M01", evidence_dir=evidence(repo), now=NOW)
    assert result.outcome is Outcome.FAILED
    assert any("contradiction: the summary's Verdict says Met but 1 exit criteria" in p for p in result.problems)
    assert ledger_path(repo).read_text(encoding="utf-8") == before  # nothing written


def test_a_hand_closed_row_with_contradictions_fails_the_check(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    fill_for_close(repo, "M01", tick=False)
    sha = git(repo, "rev-parse", "--short=7", "HEAD")
    text = (
        ledger_path(repo)
        .read_text(encoding="utf-8")
        .replace(
            "| planned | — | — | — | — | — | — |", f"| closed | main | — | {sha} | — | 99/100 | 2026-11-23T12:00:00Z |"
        )
    )
    ledger_path(repo).write_text(text, encoding="utf-8")
    problems = ledger_check(config(repo)).problems
    assert any("Validation & Evidence holds no computed audit score" in p for p in problems)
    assert any("contradiction: the summary's Verdict says Met" in p for p in problems)


def test_close_strict_refuses_missing_dimensions_and_dry_run_writes_nothing(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    fill_for_close(repo, "M01")
    ev = evidence(repo, golden=None)
    strict = close_milestone(config(repo), "M01", evidence_dir=ev, strict=True, now=NOW)
    assert strict.outcome is Outcome.FAILED
    assert "--strict: no evidence for invariants verified, goldens" in strict.problems[0]
    before = ledger_path(repo).read_text(encoding="utf-8")
    dry = close_milestone(config(repo), "M01", evidence_dir=ev, dry_run=True, now=NOW)
    assert dry.outcome is Outcome.PASSED and "dry run" in dry.summary
    assert ledger_path(repo).read_text(encoding="utf-8") == before


def test_close_cli_shows_each_dimension_and_refuses_to_close_twice(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    fill_for_close(repo, "M01")
    evidence(repo)
    monkeypatch.chdir(repo)
    assert cli.main(["milestone", "close", "M01", "--json"]) == 0
    dimensions = json.loads(capsys.readouterr().out)["results"][0]["figures"]["dimensions"]
    assert set(dimensions) == {"gates passed", "coverage", "invariants verified", "goldens"}
    assert cli.main(["milestone", "close", "M01"]) == 2
    assert "already closed" in capsys.readouterr().err


# ---------------------------------------------------------------- --base


def test_a_runtime_change_without_a_ledger_update_fails(repo: Path) -> None:
    (repo / "serena/core.py").write_text("VALUE = 2\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", "change the runtime")
    result = ledger_base_check(config(repo), "base")
    assert result.outcome is Outcome.FAILED
    assert "1 runtime file(s) changed since base (serena/core.py) but no row of docs/serena.md did" in result.problems


def test_a_runtime_change_with_its_ledger_row_and_folder_passes(repo: Path) -> None:
    (repo / "serena/core.py").write_text("VALUE = 2\n", encoding="utf-8")
    milestone_new(config(repo), "M01", "The runtime")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "change the runtime, recorded")
    result = ledger_base_check(config(repo), "base")
    assert result.outcome is Outcome.PASSED
    assert result.figures["changed_rows_with_folder"] == ["M01"]


def test_a_ledger_row_change_without_its_folder_is_not_enough(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "plan M01")
    git(repo, "tag", "planned")
    (repo / "serena/core.py").write_text("VALUE = 2\n", encoding="utf-8")
    text = ledger_path(repo).read_text(encoding="utf-8").replace("| planned |", "| in-progress |")
    ledger_path(repo).write_text(text, encoding="utf-8")
    git(repo, "commit", "-q", "-am", "runtime change, row only")
    result = ledger_base_check(config(repo), "planned")
    assert result.outcome is Outcome.FAILED
    assert "ledger rows M01 changed but none of their folders under docs/milestones/ did" in result.problems


def test_no_runtime_change_passes(repo: Path) -> None:
    (repo / "README.md").write_text("docs only\n", encoding="utf-8")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "docs")
    assert ledger_base_check(config(repo), "base").outcome is Outcome.PASSED


def test_a_missing_base_ref_fails_loudly(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    monkeypatch.chdir(repo)
    assert cli.main(["ledger", "check", "--base", "origin/main", "--json"]) == 1
    results = {r["check"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert results["ledger"]["outcome"] == "passed"
    assert results["ledger-base"]["outcome"] == "failed"
    assert "base ref 'origin/main' not found" in results["ledger-base"]["problems"][0]


def test_a_shallow_clone_without_the_base_fails_and_says_so(repo: Path, tmp_path: Path) -> None:
    (repo / "serena/core.py").write_text("VALUE = 2\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", "second")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    result = ledger_base_check(config(shallow), "base")
    assert result.outcome is Outcome.FAILED
    assert "shallow" in result.problems[0] and "fetch-depth: 0" in result.problems[0]


def test_the_repository_ledger_passes_its_own_check() -> None:
    """docs/serena.md of this repository: the project's milestones, recorded and consistent."""
    root = REPO_ROOT
    result = ledger_check(load_config(root, environ={}))
    assert result.outcome is Outcome.PASSED, result.problems
    ledger = parse_ledger(ledger_path(root).read_text(encoding="utf-8"), ledger_path(root))
    assert ledger.row("M01") is not None and ledger.row("M01").status == "closed"


def test_help_and_ledger_check_never_import_torch() -> None:
    root = REPO_ROOT
    code = (
        "import contextlib, io, sys\nfrom harness.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [main(['--help']), main(['ledger', 'check'])]\n"
        "print(codes, sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[0, 0] []", completed.stdout + completed.stderr
