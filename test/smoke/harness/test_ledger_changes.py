"""A milestone's changes: the lock diff names pins added, removed and bumped (PEP 503 names, hashes and comments
ignored); the CI diff says what the workflows, .ci/run and the Makefile now run differently, and nothing for a
comment, whitespace or key-order change."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import REPO_ROOT
from support import git as run_git

from harness.git import GitError
from harness.ledger.changes import (
    CiDiff,
    LockDiff,
    WorkflowChange,
    ci_diff,
    diff_locks,
    diff_workflow_texts,
    lock_diff,
)

CHECKOUT_OLD = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"
CHECKOUT_NEW = "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8"

WORKFLOW = f"""\
# Every pull request.
name: pr

on:
  pull_request:
    paths: ["serena/**"]

permissions:
  contents: read

jobs:
  test:
    runs-on: ubuntu-22.04
    timeout-minutes: 45
    steps:
      - uses: {CHECKOUT_OLD} # v4.2.2
        with:
          fetch-depth: 0
      - name: Run tests
        run: make test
      - name: Upload evidence
        if: always()
        uses: actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02
"""

CI_RUN = "#!/usr/bin/env bash\nset -euo pipefail\n" + "".join(f"step{n}\n" for n in range(1, 21))


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def details(path: str, base: str | None, head: str | None) -> tuple[str, ...]:
    change = diff_workflow_texts(path, base, head)
    assert change is not None
    return change.details


# ---------------------------------------------------------------- the lock


def test_lock_added_removed_and_bumped_are_named_with_their_versions() -> None:
    base = "torch==2.12.0\nnumpy==1.26.4\nrequests==2.32.3\n"
    head = "torch==2.13.0\nnumpy==1.26.4\npillow==11.0.0\naiohttp==3.10.0\n"
    diff = diff_locks(base, head)
    assert diff == LockDiff(
        added=(("aiohttp", "3.10.0"), ("pillow", "11.0.0")),
        removed=(("requests", "2.32.3"),),
        bumped=(("torch", "2.12.0", "2.13.0"),),
    )
    assert diff.changed
    assert diff.describe() == (
        "2 added (aiohttp 3.10.0, pillow 11.0.0), 1 removed (requests 2.32.3), 1 bumped (torch 2.12.0 → 2.13.0)"
    )
    assert diff.to_dict() == {
        "changed": True,
        "added": [{"name": "aiohttp", "version": "3.10.0"}, {"name": "pillow", "version": "11.0.0"}],
        "removed": [{"name": "requests", "version": "2.32.3"}],
        "bumped": [{"name": "torch", "old": "2.12.0", "new": "2.13.0"}],
    }


def test_an_unchanged_lock_moves_nothing_whatever_its_hashes_comments_and_name_spelling() -> None:
    base = (
        "# pinned by hand\n"
        "Foo_Bar==1.0 \\\n"
        "    --hash=sha256:aaaa \\\n"
        "    --hash=sha256:bbbb\n"
        "torch==2.13.0  # the CPU wheel\n"
        "--extra-index-url https://download.pytorch.org/whl/cpu\n"
    )
    head = "foo-bar==1.0.0 --hash=sha256:cccc\n\n# a new comment\ntorch==2.13.0\n"
    diff = diff_locks(base, head)
    assert diff == LockDiff()
    assert not diff.changed
    assert diff.describe() == "no dependency moved"
    assert diff.to_dict() == {"changed": False, "added": [], "removed": [], "bumped": []}


def test_a_bump_across_name_spellings_is_one_bump_under_the_heads_name() -> None:
    assert diff_locks("Foo_Bar==1.0\n", "foo-bar==1.1\n").bumped == (("foo-bar", "1.0", "1.1"),)


def test_a_missing_base_lock_adds_every_pin_and_a_missing_head_removes_them() -> None:
    lock = "torch==2.13.0\nnumpy==1.26.4\n"
    assert diff_locks(None, lock) == LockDiff(added=(("numpy", "1.26.4"), ("torch", "2.13.0")))
    assert diff_locks(lock, None) == LockDiff(removed=(("numpy", "1.26.4"), ("torch", "2.13.0")))
    assert diff_locks(None, None) == LockDiff()


def test_a_name_pinned_per_marker_keeps_one_entry_per_marker() -> None:
    base = (
        "pywin32==306; sys_platform == 'win32'\n"
        "uvloop==0.19.0; sys_platform != 'win32'\n"
        "uvloop==0.17.0; sys_platform == 'win32'\n"
    )
    head = (
        'pywin32==306 ; sys_platform=="win32"\n'
        'uvloop==0.21.0; sys_platform != "win32"\n'
        'uvloop==0.17.0; sys_platform == "win32"\n'
    )
    assert diff_locks(base, head) == LockDiff(bumped=(('uvloop; sys_platform != "win32"', "0.19.0", "0.21.0"),))


def test_a_long_lock_diff_describes_the_first_pins_and_counts_the_rest() -> None:
    head = "".join(f"pkg{n}==1.{n}\n" for n in range(8))
    assert diff_locks("", head).describe() == (
        "8 added (pkg0 1.0, pkg1 1.1, pkg2 1.2, pkg3 1.3, pkg4 1.4, pkg5 1.5, … and 2 more)"
    )


# ---------------------------------------------------------------- workflows


def test_equal_texts_and_comment_whitespace_or_key_order_changes_are_no_change() -> None:
    assert diff_workflow_texts("w.yml", WORKFLOW, WORKFLOW) is None
    assert diff_workflow_texts("w.yml", None, None) is None
    reordered = f"""\
# a different comment
jobs:
  test:
    steps:
      - with: {{fetch-depth: 0}}
        uses: {CHECKOUT_OLD}
      - {{run: make test, name: Run tests}}
      - uses: actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02
        name: Upload evidence
        if: always()
    timeout-minutes: 45
    runs-on: ubuntu-22.04
permissions: {{contents: read}}
"on":
    pull_request: {{paths: ['serena/**']}}
name: pr
"""
    assert diff_workflow_texts("w.yml", WORKFLOW, reordered) is None


def test_a_job_added_and_a_job_removed() -> None:
    golden = "  golden:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make golden\n"
    head = WORKFLOW + golden
    change = diff_workflow_texts(".github/workflows/pr.yml", WORKFLOW, head)
    assert change == WorkflowChange(
        path=".github/workflows/pr.yml", kind="changed", details=('job "golden" added (runs-on ubuntu-latest, 1 step)',)
    )
    assert details("w.yml", head, WORKFLOW) == ('job "golden" removed',)


def test_a_step_command_change_names_the_old_and_new_command() -> None:
    head = edit(WORKFLOW, "run: make test", "run: make test-all")
    assert details("w.yml", WORKFLOW, head) == (
        'job "test": step "Run tests" command changed: make test → make test-all',
    )


def test_a_multi_line_command_change_counts_and_shows_the_changed_lines() -> None:
    base = edit(WORKFLOW, "run: make test", "run: |\n          make install\n          make test\n          make lint")
    head = edit(base, "make test\n", "make test-all\n")
    assert details("w.yml", base, head) == (
        'job "test": step "Run tests" command changed: +1 −1 lines',
        "    -make test",
        "    +make test-all",
    )


def test_a_step_removed_and_a_step_added() -> None:
    head = edit(
        WORKFLOW,
        "      - name: Upload evidence\n        if: always()\n"
        "        uses: actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02\n",
        "      - name: Goldens\n        run: make golden\n",
    )
    assert details("w.yml", WORKFLOW, head) == (
        'job "test": step "Goldens" added (run: make golden)',
        'job "test": step "Upload evidence" removed',
    )


def test_a_runner_timeout_and_condition_change() -> None:
    head = edit(
        WORKFLOW, "runs-on: ubuntu-22.04\n    timeout-minutes: 45", "runs-on: ubuntu-24.04\n    timeout-minutes: 60"
    )
    head = edit(head, "        if: always()\n", "")
    assert details("w.yml", WORKFLOW, head) == (
        'job "test": runs-on changed: ubuntu-22.04 → ubuntu-24.04',
        'job "test": timeout-minutes changed: 45 → 60',
        'job "test": step "Upload evidence" if removed',
    )


def test_an_action_pin_change_and_a_with_change() -> None:
    head = edit(WORKFLOW, CHECKOUT_OLD, CHECKOUT_NEW)
    head = edit(head, "fetch-depth: 0", "fetch-depth: 1\n          persist-credentials: false")
    assert details("w.yml", WORKFLOW, head) == (
        'job "test": step uses "actions/checkout" action actions/checkout pinned to '
        "08c6903cd8c0fde910a37f88322edcfb5dd907a8 (was 11bd71901bbe5b1630ceea73d27597364c9af683)",
        'job "test": step uses "actions/checkout" with fetch-depth changed: 0 → 1',
        'job "test": step uses "actions/checkout" with persist-credentials added: false',
    )


def test_trigger_permission_and_matrix_changes() -> None:
    base = edit(WORKFLOW, "    timeout-minutes: 45\n", "    strategy:\n      matrix:\n        python: ['3.11']\n")
    head = edit(base, 'paths: ["serena/**"]', 'paths: ["serena/**", "harness/**"]\n  workflow_dispatch:')
    head = edit(head, "contents: read", "contents: write")
    head = edit(head, "python: ['3.11']", "python: ['3.11', '3.12']")
    assert details("w.yml", base, head) == (
        'on: pull_request paths changed: ["serena/**"] → ["serena/**", "harness/**"]',
        "on: workflow_dispatch added",
        "permissions: contents changed: read → write",
        'job "test": strategy matrix python changed: ["3.11"] → ["3.11", "3.12"]',
    )


def test_needs_env_concurrency_and_step_order_changes() -> None:
    base = "concurrency: {group: pr, cancel-in-progress: true}\nenv: {A: '1'}\njobs:\n  t:\n    needs: lint\n"
    base += "    steps:\n      - {name: one, run: a}\n      - {name: two, run: b}\n      - {run: c}\n"
    head = "concurrency: {group: pr, cancel-in-progress: false}\nenv: {A: '2'}\njobs:\n  t:\n    needs: [lint, build]\n"
    head += "    steps:\n      - {name: two, run: b}\n      - {name: one, run: a, env: {X: y}}\n      - {run: d}\n"
    assert details("w.yml", base, head) == (
        "concurrency: cancel-in-progress changed: true → false",
        "env: A changed: 1 → 2",
        'job "t": needs changed: lint → ["lint", "build"]',
        'job "t": step "one" env added: {"X": "y"}',
        'job "t": step #3 command changed: c → d',
        'job "t": steps run in a new order',
    )


def test_the_same_triggers_spelled_differently_are_no_change_and_the_yaml_on_key_is_read_as_on() -> None:
    assert diff_workflow_texts("w.yml", "on: push\njobs: {}\n", "on: [push]\njobs: {}\n") is None
    assert details("w.yml", "on: push\n", "on: [push, pull_request]\n") == ("on: pull_request added",)


def test_an_unparseable_side_is_a_detail_line_then_a_line_diff() -> None:
    head = edit(WORKFLOW, "runs-on: ubuntu-22.04", "runs-on: [ubuntu-22.04")
    assert details("w.yml", WORKFLOW, head) == (
        "head: does not parse as YAML (line 14, column 20: while parsing a flow sequence, "
        "expected ',' or ']', but got ':')",
        "at line 13: +1 −1 lines",
        "    -    runs-on: ubuntu-22.04",
        "    +    runs-on: [ubuntu-22.04",
    )
    assert details("w.yml", "- a list\n", "- another\n") == (
        "base: is not a YAML mapping but a list",
        "head: is not a YAML mapping but a list",
        "at line 1: +1 −1 lines",
        "    -- a list",
        "    +- another",
    )


def test_a_workflow_added_or_removed_whole() -> None:
    added = diff_workflow_texts("w.yml", None, "on: push\njobs:\n  lint:\n    runs-on: ubuntu-latest\n    steps: []\n")
    assert added == WorkflowChange(
        path="w.yml",
        kind="added",
        details=('on added: {"push": null}', 'job "lint" added (runs-on ubuntu-latest, 0 steps)'),
    )
    removed = diff_workflow_texts(
        "w.yml", "on: push\njobs:\n  lint:\n    uses: org/repo/.github/workflows/l.yml@v1\n", None
    )
    assert removed == WorkflowChange(path="w.yml", kind="removed", details=("on removed", 'job "lint" removed'))


# ---------------------------------------------------------------- other CI files


def test_a_script_change_is_summarised_per_hunk() -> None:
    head = edit(CI_RUN, "step2\n", "step2b\n")
    head = edit(head, "step18\n", "step18\nextra\n")
    assert details(".ci/run", CI_RUN, head) == (
        "at line 4: +1 −1 lines",
        "    -step2",
        "    +step2b",
        "at line 21: +1 −0 line",
        "    +extra",
    )


def test_a_long_hunk_shows_eight_changed_lines_then_counts_the_rest() -> None:
    head = CI_RUN.replace("step", "stage")
    change = diff_workflow_texts(".ci/run", CI_RUN, head)
    assert change is not None
    assert change.details == (
        "at line 3: +20 −20 lines",
        *(f"    -step{n}" for n in range(1, 9)),
        "    … and 32 more",
    )
    assert change.count == 1
    assert CiDiff((change,)).describe() == "1 file changed: .ci/run (1 change)"


def test_a_trailing_newline_alone_is_no_change_of_a_script() -> None:
    assert diff_workflow_texts("Makefile", "test:\n\tpytest\n", "test:\n\tpytest") is None


def test_ci_diff_describe_and_to_dict() -> None:
    assert CiDiff().describe() == "CI unchanged"
    assert not CiDiff().changed
    diff = CiDiff(
        (
            WorkflowChange(".github/workflows/pr.yml", "changed", ("a", "b", "c")),
            WorkflowChange(".ci/run", "added", ("at line 1: +1 −0 line", "    +x")),
        )
    )
    assert diff.changed
    assert diff.describe() == "2 files changed: .github/workflows/pr.yml (3 changes), .ci/run (added, 1 change)"
    assert diff.to_dict()["changes"][1] == {
        "path": ".ci/run",
        "kind": "added",
        "count": 1,
        "details": ["at line 1: +1 −0 line", "    +x"],
    }


# ---------------------------------------------------------------- against a git repository


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a lock, a workflow, .ci/run and a Makefile, committed and tagged `base`."""
    root = tmp_path / "repo"
    (root / ".github/workflows").mkdir(parents=True)
    (root / ".ci").mkdir()
    (root / "requirements.lock").write_text("torch==2.12.0\nrequests==2.32.3\n", encoding="utf-8")
    (root / ".github/workflows/pr.yml").write_text(WORKFLOW, encoding="utf-8")
    (root / ".github/workflows/old.yml").write_text("on: push\njobs: {}\n", encoding="utf-8")
    (root / ".ci/run").write_text(CI_RUN, encoding="utf-8")
    (root / "Makefile").write_text("test:\n\tpytest\n", encoding="utf-8")
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", ".")
    run_git(root, "commit", "-q", "-m", "base")
    run_git(root, "tag", "base")
    return root


def test_lock_diff_reads_the_base_from_git_and_the_head_from_the_working_tree(repo: Path) -> None:
    (repo / "requirements.lock").write_text("torch==2.13.0\nrequests==2.32.3\npillow==11.0.0\n", encoding="utf-8")
    assert lock_diff(repo, "base") == LockDiff(added=(("pillow", "11.0.0"),), bumped=(("torch", "2.12.0", "2.13.0"),))
    (repo / "requirements.lock").unlink()
    assert lock_diff(repo, "base") == LockDiff(removed=(("requests", "2.32.3"), ("torch", "2.12.0")))
    assert lock_diff(repo, "base", "missing.lock") == LockDiff()


def test_ci_diff_expands_folders_on_both_sides(repo: Path) -> None:
    (repo / ".github/workflows/pr.yml").write_text(edit(WORKFLOW, "make test", "make test-all"), encoding="utf-8")
    (repo / ".github/workflows/old.yml").unlink()
    (repo / ".github/workflows/golden.yml").write_text("on: push\n", encoding="utf-8")  # untracked: still the head
    (repo / ".ci/run").write_text(edit(CI_RUN, "step20\n", "step20\nmake golden\n"), encoding="utf-8")
    (repo / "Makefile").write_text(
        "# only a comment moved? no: a Makefile is text\ntest:\n\tpytest\n", encoding="utf-8"
    )
    diff = ci_diff(repo, "base")
    assert diff.changes == (
        WorkflowChange(".ci/run", "changed", ("at line 23: +1 −0 line", "    +make golden")),
        WorkflowChange(".github/workflows/golden.yml", "added", ('on added: {"push": null}',)),
        WorkflowChange(".github/workflows/old.yml", "removed", ("on removed",)),
        WorkflowChange(
            ".github/workflows/pr.yml",
            "changed",
            ('job "test": step "Run tests" command changed: make test → make test-all',),
        ),
        WorkflowChange(
            "Makefile", "changed", ("at line 1: +1 −0 line", "    +# only a comment moved? no: a Makefile is text")
        ),
    )
    assert diff.describe() == (
        "5 files changed: .ci/run (1 change), .github/workflows/golden.yml (added, 1 change), "
        ".github/workflows/old.yml (removed, 1 change), .github/workflows/pr.yml (1 change), Makefile (1 change)"
    )
    assert ci_diff(repo, "base", (".ci/run",)).describe() == "1 file changed: .ci/run (1 change)"


def test_ci_diff_of_an_untouched_tree_is_unchanged_and_a_comment_edit_too(repo: Path) -> None:
    assert ci_diff(repo, "base") == CiDiff()
    (repo / ".github/workflows/pr.yml").write_text("# reworded\n" + WORKFLOW.replace("\n\n", "\n"), encoding="utf-8")
    assert ci_diff(repo, "base").describe() == "CI unchanged"


def test_an_unknown_base_is_a_git_error(repo: Path) -> None:
    with pytest.raises(GitError, match="'nope' is not a commit"):
        lock_diff(repo, "nope")
    with pytest.raises(GitError, match="'nope' is not a commit"):
        ci_diff(repo, "nope")


@pytest.mark.parametrize("name", ["pr.yml", "post-merge.yml"])
def test_the_repositorys_own_workflows_rewritten_without_comments_and_sorted_are_no_change(name: str) -> None:
    text = (REPO_ROOT / ".github/workflows" / name).read_text(encoding="utf-8")
    rewritten = yaml.safe_dump(yaml.safe_load(text), sort_keys=True)  # `on` comes back as `true:`
    assert "true:" in rewritten and "#" not in rewritten.split("jobs:")[0]
    assert diff_workflow_texts(name, text, rewritten) is None
