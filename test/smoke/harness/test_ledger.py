"""The ledger check turns red on a row without its folder, contradictions, a runtime change without a ledger update
and a missing base ref; `milestone new` scaffolds and `milestone close` scores from measured evidence only."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import REPO_ROOT, RUN_RESULTS, git, verify_document, write_verify

from harness import cli
from harness.config import HarnessConfig, load_config
from harness.ledger.check import ledger_base_check, ledger_check, parse_completed_at
from harness.ledger.close import close_milestone
from harness.ledger.model import parse_ledger, read_ledger, sections
from harness.ledger.plan import parse_plan
from harness.ledger.scaffold import milestone_new
from harness.ledger.score import compute_audit_score
from harness.outcome import Outcome

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


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
    assert list(summary) == [
        "Objective",
        "Scope",
        "Issues, Exceptions & Guardrails",
        "Deferred Work",
        "Authorized Next Step",
    ]
    plan = parse_plan((folder(repo, "M01") / "M01_plan.md").read_text(encoding="utf-8"), Path("plan"))
    baseline = git(repo, "rev-parse", "--short=7", "HEAD")
    assert (plan.milestone, plan.title, plan.posture, plan.baseline) == (
        "M01",
        "The runtime",
        "behavior-preserving",
        baseline,
    )
    assert [c.evidence for c in plan.exit_criteria] == [
        "verify:model-outputs",
        "verify:surfaces",
        "verify:invariants",
        "check:tests",
    ]
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


def test_the_audit_score_counts_what_each_dimension_names_and_leaves_out_what_has_no_verdict() -> None:
    score = compute_audit_score(verify_document("h", claims=("unchanged", "undeclared change")), RUN_RESULTS)
    by_name = {d.name: d for d in score.dimensions}
    gates = by_name["gates passed"]
    # deps passed, ruff failed; audit-deps inconclusive: out of the count, named, its share out of the denominator
    assert gates.measured == "1/2 gates passed (failed: ruff); without a verdict: audit-deps"
    assert (gates.earned, gates.available) == (pytest.approx(20 / 3), pytest.approx(40 / 3))
    assert gates.inconclusive == ("gate audit-deps inconclusive: no network",)
    # coverage is two thresholds, not a line: 90 % meets the 80 % floor, 50 % of the changed lines does not
    assert (by_name["coverage"].earned, by_name["coverage"].available) == (10.0, 20.0)
    assert by_name["invariants verified"].measured == "1/1 invariants verified at the head"
    assert by_name["invariants verified"].available == 10.0  # INV-002 did not run: neither a pass nor a deduction
    assert by_name["model outputs"].measured == "1/2 cases as claimed (1 identical to the baseline)"
    assert by_name["surfaces"].earned == 20.0
    assert score.total == round(100 * (20 / 3 + 10 + 10 + 10 + 20) / (40 / 3 + 20 + 10 + 20 + 20))


def test_close_needs_verify_evidence_of_the_commit_it_closes(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    monkeypatch.chdir(repo)
    assert cli.main(["milestone", "close", "M01"]) == 2
    assert "no verify evidence; run `serena-verify milestone verify M01` first" in capsys.readouterr().err
    write_verify(repo, verify_document("f" * 40))
    assert cli.main(["milestone", "close", "M01"]) == 2
    assert "verified ffffffffff, not" in capsys.readouterr().err


def test_close_refuses_a_milestone_that_is_not_met_and_writes_nothing(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    head = git(repo, "rev-parse", "HEAD")
    write_verify(repo, verify_document(head, verdict="not met"))
    before = ledger_path(repo).read_text(encoding="utf-8")
    result = close_milestone(config(repo), "M01", now=NOW)
    assert result.outcome is Outcome.FAILED
    assert "M01 is not met: golden c0: changed" in result.problems
    assert "write ## Objective in the plan" in " ".join(result.problems)
    assert ledger_path(repo).read_text(encoding="utf-8") == before


def test_close_writes_the_computed_summary_and_the_check_holds_it_to_the_row(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    plan = folder(repo, "M01") / "M01_plan.md"
    plan.write_text(
        plan.read_text(encoding="utf-8")
        .replace("<!-- What this milestone delivers, in one or two sentences. -->", "Make it work.")
        .replace("<!-- In: what changes. Out: what deliberately does not. -->", "core.py"),
        encoding="utf-8",
    )
    head = git(repo, "rev-parse", "HEAD")
    write_verify(repo, verify_document(head))
    dry = close_milestone(config(repo), "M01", dry_run=True, now=NOW)
    assert dry.outcome is Outcome.PASSED and "dry run" in dry.summary
    assert read_ledger(ledger_path(repo)).row("M01").status == "planned"

    result = close_milestone(config(repo), "M01", now=NOW)
    assert result.outcome is Outcome.PASSED, result.problems
    row = read_ledger(ledger_path(repo)).row("M01")
    assert (row.status, row.commit, row.ci_runs) == ("closed", head[:7], "—")
    assert parse_completed_at(row.completed_at) == NOW
    summary = sections((folder(repo, "M01") / "M01_summary.md").read_text(encoding="utf-8"))
    assert summary["Objective"] == "Make it work."
    assert summary["Deferred Work"] == "None recorded."
    assert f"Audit score: **{row.audit_score}**" in summary["Validation & Evidence"]
    assert "- `milestone-verify.json` " in summary["Validation & Evidence"]  # the sha256 of each file read
    assert "gate audit-deps inconclusive: no network" in summary["Issues, Exceptions & Guardrails"]
    assert "\n\n**Met.** Behavior-Preserving milestone verified against" in summary["Final Verdict"]
    assert (
        (repo / "docs/behaviour-changes.md")
        .read_text(encoding="utf-8")
        .endswith("No milestone has changed a golden case or a public surface yet.\n")
    )
    assert ledger_check(config(repo)).outcome is Outcome.PASSED

    text = ledger_path(repo).read_text(encoding="utf-8").replace(row.audit_score, "99/100")
    ledger_path(repo).write_text(text, encoding="utf-8")
    assert any(
        f"contradicts {row.audit_score.split('/')[0]}/100 computed" in p for p in ledger_check(config(repo)).problems
    )


def test_a_hand_closed_row_fails_the_check(repo: Path) -> None:
    milestone_new(config(repo), "M01", "The runtime")
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
    assert any("missing section ## Refactor Classification" in p for p in problems)


def test_close_cli_tags_the_commit_and_refuses_to_close_twice(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    milestone_new(config(repo), "M01", "The runtime")
    plan = folder(repo, "M01") / "M01_plan.md"
    plan.write_text(
        plan.read_text(encoding="utf-8")
        .replace("## Objective\n", "## Objective\n\nGo.\n")
        .replace("## Scope\n", "## Scope\n\nAll.\n"),
        encoding="utf-8",
    )
    head = git(repo, "rev-parse", "HEAD")
    write_verify(repo, verify_document(head))
    monkeypatch.chdir(repo)
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "team/serena")
    assert cli.main(["milestone", "close", "M01", "--tag", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["results"][0]["figures"]
    assert set(figures["score"]["dimensions"]) == {
        "gates passed",
        "coverage",
        "invariants verified",
        "model outputs",
        "surfaces",
    }
    assert figures["tag"] == "v0.0.01-m01" and git(repo, "rev-parse", "v0.0.01-m01^{commit}") == head
    assert read_ledger(ledger_path(repo)).row("M01").ci_runs == "https://github.example/team/serena/actions/runs/42"
    assert cli.main(["milestone", "close", "M01"]) == 2
    assert "already closed" in capsys.readouterr().err


# ---------------------------------------------------------------- --base


def test_a_runtime_change_without_a_ledger_update_fails(repo: Path) -> None:
    (repo / "serena/core.py").write_text("VALUE = 2\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", "change the runtime")
    result = ledger_base_check(config(repo), "base")
    assert result.outcome is Outcome.FAILED
    assert result.problems == (
        "1 runtime file(s) changed since base (serena/core.py) but no milestone of docs/serena.md is in progress "
        "(or closed by this change); open one: status in-progress",
    )


def test_a_runtime_change_with_its_ledger_row_and_folder_passes(repo: Path) -> None:
    (repo / "serena/core.py").write_text("VALUE = 2\n", encoding="utf-8")
    milestone_new(config(repo), "M01", "The runtime")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "change the runtime under a planned milestone")
    planned = ledger_base_check(config(repo), "base")
    assert planned.outcome is Outcome.FAILED  # planned is not open: the work has not started by the ledger
    text = ledger_path(repo).read_text(encoding="utf-8").replace("| planned |", "| in-progress |")
    ledger_path(repo).write_text(text, encoding="utf-8")
    git(repo, "commit", "-q", "-am", "open M01")
    result = ledger_base_check(config(repo), "base")
    assert result.outcome is Outcome.PASSED, result.problems
    assert result.figures["milestones"] == {"M01": "behavior-preserving"}


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
    assert "runtime changed under M01, but none of their folders under docs/milestones/ did" in result.problems


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


@pytest.mark.parametrize("title", ["bell\x07", "lone \ud800 surrogate"])
def test_milestone_new_refuses_a_title_it_cannot_write_and_writes_nothing(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], title: str
) -> None:
    monkeypatch.chdir(repo)
    assert cli.main(["milestone", "new", "M01", "--title", title]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds control or surrogate characters" in err[0]
    assert not (repo / "docs").exists()
