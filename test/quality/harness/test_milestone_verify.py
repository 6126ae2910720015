"""`milestone verify` and `milestone close` through the real CLI, on temporary git repositories holding the runtime:
each rule of the claim turns the verdict red, and a Met milestone closes with its computed summary and tag."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest
from support import REPO_ROOT, git

from harness import cli

CASES = """
[[case]]
id = "t2i-ddim"
mode = "txt2img"
prompt = "a red fox in the snow"
seed = 7
steps = 4
sampler = "DDIM"
cfg_scale = 7.5

[[case]]
id = "t2i-euler-a"
mode = "txt2img"
prompt = "a lighthouse at dusk"
seed = 8
steps = 4
sampler = "Euler a"
cfg_scale = 7.0
"""
LEDGER = """# Ledger

| Milestone | Title | Status | Branch | PR | Commit | CI Run(s) | Audit Score | Completed At |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
"""
# a slip in one sampler's configuration: only the DDIM case can see it
DDIM_SLIP = (
    'SamplerInfo("DDIM", "DDIMScheduler", aliases=("ddim",), uses_eta=True)',
    'SamplerInfo("DDIM", "DDIMScheduler", {"timestep_spacing": "trailing"}, aliases=("ddim",), uses_eta=True)',
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the runtime, the registry, two golden cases and an empty ledger; one commit, tagged base."""
    root = tmp_path_factory.mktemp("milestone") / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "serena", root / "serena", ignore=ignore)
    shutil.copytree(REPO_ROOT / "invariants", root / "invariants", ignore=ignore)
    shutil.copytree(REPO_ROOT / ".github", root / ".github")
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy2(REPO_ROOT / name, root / name)
    (root / "harness/cases").mkdir(parents=True)
    (root / "harness/cases/cases.toml").write_text(CASES, encoding="utf-8")
    (root / "docs").mkdir()
    (root / "docs/serena.md").write_text(LEDGER, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    git(root, "tag", "base")
    return root


@pytest.fixture
def repo(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    return root


def open_milestone(root: Path, posture: str = "behavior-preserving", changes: str = "") -> Path:
    """`milestone new` through the CLI, then the plan's prose and (for behavior-changing) its declared changes."""
    assert cli.main(["milestone", "new", "M90", "--title", "A step", "--posture", posture, "--baseline", "base"]) == 0
    plan = root / "docs/milestones/M90/M90_plan.md"
    text = plan.read_text(encoding="utf-8")
    text = re.sub(r"\n\[\[changes\]\].*?reason = \"why it changes\"\n", "\n", text, flags=re.S)
    text = text.replace('invariants = ["all"]', f'invariants = ["all"]\n{changes}', 1)
    text = text.replace("<!-- What this milestone delivers, in one or two sentences. -->", "Do one step.")
    text = text.replace("<!-- In: what changes. Out: what deliberately does not. -->", "In: serena/. Out: the rest.")
    plan.write_text(text, encoding="utf-8")
    ledger = root / "docs/serena.md"
    ledger.write_text(ledger.read_text(encoding="utf-8").replace("| planned |", "| in-progress |"), encoding="utf-8")
    return plan


def commit_change(root: Path, path: str, old: str, new: str) -> str:
    target = root / path
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the step")
    return git(root, "rev-parse", "HEAD")


def write_run_evidence(root: Path, head: str) -> None:
    """What `serena-verify run --evidence-dir` leaves for the head: the checks verify and close read."""
    registry = tomllib.loads((root / "invariants/registry.toml").read_text(encoding="utf-8"))
    statuses = [{"id": entry["id"], "status": "verified"} for entry in registry["invariant"]]
    results = [
        {"check": "ruff", "outcome": "passed", "summary": "clean", "figures": {}},
        {"check": "tests", "outcome": "passed", "summary": "12 passed", "figures": {"tests": 12}},
        {"check": "coverage", "outcome": "passed", "summary": "95%", "figures": {"total": 95.0, "floor": 80.0}},
        {
            "check": "invariants",
            "outcome": "passed",
            "summary": f"{len(statuses)}/{len(statuses)}",
            "figures": {"invariants": statuses},
        },
        {"check": "audit-deps", "outcome": "inconclusive", "summary": "0 audited", "reason": "no network"},
        {"check": "env", "outcome": "passed", "summary": "recorded", "figures": {"git sha": head}},
    ]
    evidence = root / "docs/milestones/M90/evidence"
    evidence.mkdir(parents=True, exist_ok=True)
    document = {"schema_version": 1, "outcome": "passed", "strict": False, "results": results}
    (evidence / "summary.json").write_text(json.dumps(document), encoding="utf-8")


def verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()  # what came before (the scaffold's report)
    code = cli.main(["milestone", "verify", "M90", "--json"])
    result = json.loads(capsys.readouterr().out)["results"][0]
    return code, result


def test_a_behavior_preserving_milestone_that_changes_one_golden_is_not_met_naming_the_case(repo, capsys):
    open_milestone(repo)
    head = commit_change(repo, "serena/samplers.py", *DDIM_SLIP)
    write_run_evidence(repo, head)

    code, result = verify(capsys)

    assert code == 1
    document = result["figures"]
    assert document["verdict"] == "not met"
    cases = {c["case"]: c for c in document["parts"]["model-outputs"]["cases"]}
    assert cases["t2i-euler-a"]["verdict"] == "identical" and cases["t2i-euler-a"]["claim"] == "unchanged"
    assert cases["t2i-ddim"]["claim"] == "undeclared change"
    reason = next(r for r in document["reasons"] if r.startswith("golden t2i-ddim"))
    assert "first diverged at" in reason or "diverged in the VAE decode" in reason, reason
    assert document["observability"][0]["status"] == "Changed (1 of 2 cases, undeclared)"
    # the schedule snapshot sees the slip too, without running a model; every other surface is unchanged
    surfaces = {s["surface"]: s for s in document["parts"]["surfaces"]["surfaces"]}
    assert [name for name, s in surfaces.items() if s["status"] != "unchanged"] == ["sampler-schedules"]
    assert surfaces["sampler-schedules"]["claim"] == "undeclared change"
    evidence = repo / "docs/milestones/M90/evidence"
    assert (evidence / "golden-ab/golden.html").is_file()
    assert "golden t2i-ddim" in (evidence / "milestone-verify.md").read_text(encoding="utf-8")


def test_an_undeclared_snapshot_change_is_not_met_with_its_diff(repo, capsys):
    open_milestone(repo)
    commit_change(repo, "serena/filenames.py", '"the image\'s seed"', '"the image\'s seed number"')
    code, result = verify(capsys)

    document = result["figures"]
    assert code == 1 and document["verdict"] == "not met"
    surfaces = {s["surface"]: s for s in document["parts"]["surfaces"]["surfaces"]}
    changed = [name for name, s in surfaces.items() if s["status"] == "changed"]
    assert changed == ["file-naming"]
    assert surfaces["file-naming"]["claim"] == "undeclared change"
    diff = (repo / "docs/milestones/M90/evidence" / surfaces["file-naming"]["diff"]).read_text(encoding="utf-8")
    assert "-[seed]: the image's seed\n+[seed]: the image's seed number\n" in diff
    assert any(r.startswith("surface file-naming: changed") for r in document["reasons"])
    assert document["parts"]["model-outputs"]["status"] == "met"


def test_a_declared_change_that_did_not_happen_is_not_met(repo, capsys):
    changes = '\n[[changes]]\nsurface = "snapshot:infotext-format"\nreason = "a new infotext field"\n'
    open_milestone(repo, "behavior-changing", changes)
    commit_change(
        repo,
        "serena/processing.py",
        '"""',
        '"""A comment-only change.\n\n',
    )
    code, result = verify(capsys)

    document = result["figures"]
    assert code == 1 and document["verdict"] == "not met"
    assert "surface infotext-format: declared as changed (a new infotext field) but unchanged" in document["reasons"]


def test_a_declared_golden_change_is_met_and_closes_with_summary_tag_and_behaviour_page(repo, capsys):
    changes = (
        '\n[[changes]]\nsurface = "golden:t2i-ddim"\nreason = "DDIM spaces its timesteps from the end"\n'
        '\n[[changes]]\nsurface = "snapshot:sampler-schedules"\nreason = "DDIM\'s timesteps, trailing"\n'
    )
    open_milestone(repo, "behavior-changing", changes)
    head = commit_change(repo, "serena/samplers.py", *DDIM_SLIP)
    write_run_evidence(repo, head)

    code, result = verify(capsys)
    assert (code, result["figures"]["verdict"]) == (0, "met"), result["figures"]["reasons"]

    assert cli.main(["milestone", "close", "M90", "--tag", "--ci-run", "https://ci.example/runs/7"]) == 0
    capsys.readouterr()
    summary = (repo / "docs/milestones/M90/M90_summary.md").read_text(encoding="utf-8")
    for heading in ("Refactor Classification", "Work Executed", "Governance Outcomes", "Canonical References"):
        assert f"## {heading}" in summary
    assert "Change type: **Behavior-Changing**" in summary
    assert "| Model outputs (golden cases) | Changed (1 of 2 cases, as declared) |" in summary
    assert "**Met.**" in summary and "Do one step." in summary
    # audit-deps was inconclusive: shown as such, left out of the count, never a pass or a silent deduction
    assert "gate audit-deps inconclusive" in summary
    assert "2/2 gates passed; without a verdict: audit-deps" in summary
    row = next(line for line in (repo / "docs/serena.md").read_text(encoding="utf-8").splitlines() if "M90" in line)
    assert f"| closed | — | — | {head[:7]} | https://ci.example/runs/7 |" in row
    assert git(repo, "rev-parse", "v0.0.90-m90^{commit}") == head
    page = (repo / "docs/behaviour-changes.md").read_text(encoding="utf-8")
    assert "## M90 — A step" in page and "DDIM spaces its timesteps from the end" in page
    assert re.search(r"\| t2i-ddim \| 0 \| `[0-9a-f]{12}` → `[0-9a-f]{12}` \| \d+ \|", page)
    assert cli.main(["ledger", "check"]) == 0


def test_goldens_re_recorded_in_a_behavior_preserving_change_fail_ledger_check_base(repo, capsys):
    manifest = repo / "harness/goldens/cpu-fp32/manifest.json"
    manifest.parent.mkdir(parents=True)
    entry = {"images": [{"file": "t2i-ddim-0-aaaa.png", "sha256": "aa"}], "trace": None}
    manifest.write_text(json.dumps({"cases": {"t2i-ddim": entry}}), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "recorded")
    git(repo, "tag", "-f", "base")
    open_milestone(repo)
    entry["images"][0]["sha256"] = "bb"
    manifest.write_text(json.dumps({"cases": {"t2i-ddim": entry}}), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "re-record")
    capsys.readouterr()

    assert cli.main(["ledger", "check", "--base", "base", "--json"]) == 1
    problems = json.loads(capsys.readouterr().out)["results"][1]["problems"]
    assert problems == [
        "golden t2i-ddim re-recorded or removed since base: a behavior-preserving milestone (M90) cannot re-record "
        "goldens"
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('posture = "behavior-preserving"', 'posture = "cautious"', "field posture is 'cautious'"),
        ('baseline = "base"', 'baseline = "no-such-ref"', "field baseline is 'no-such-ref'"),
        ('invariants = ["all"]', 'invariants = ["INV-999"]', "field invariants names 'INV-999'"),
        (
            'invariants = ["all"]',
            'invariants = ["all"]\n[[changes]]\nsurface = "golden:t2i-nope"\nreason = "r"',
            "field changes declares 'golden:t2i-nope' but posture is behavior-preserving",
        ),
        ('evidence = "check:tests"', 'evidence = "vibes"', "field exit_criteria[3].evidence is 'vibes'"),
    ],
)
def test_a_malformed_front_matter_is_exit_2_naming_file_field_and_value(repo, capsys, old, new, message):
    plan = open_milestone(repo)
    plan.write_text(plan.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    capsys.readouterr()

    assert cli.main(["ledger", "check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("serena-verify: error: [ledger] docs/milestones/M90/M90_plan.md: ") and message in err, err
    assert len(err.splitlines()) == 1
