"""The one git runner of the harness: refs, HEAD, files and lines changed since a base (gates, ledger, golden ab)."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


class GitError(HarnessError):
    """git is missing, the folder is not a repository, or a git command failed."""

    slug = "git"


def git(repo_root: Path, *args: str) -> str:
    """Run git in `repo_root` and return its standard output; a failure is a GitError naming the command."""
    if shutil.which("git") is None:
        raise GitError("git is not installed or not on PATH")
    completed = subprocess.run(
        ["git", *args], cwd=repo_root, capture_output=True, text=True, check=False, encoding="utf-8"
    )
    if completed.returncode != 0:
        detail = (completed.stderr.strip().splitlines() or ["no message"])[-1]
        raise GitError(f"`git {' '.join(args)}` failed in {repo_root}: {detail}")
    return completed.stdout


def head_sha(repo_root: Path, *, short: bool = False) -> str:
    return git(repo_root, "rev-parse", *(["--short=7"] if short else []), "HEAD").strip()


def ref_exists(repo_root: Path, ref: str) -> bool:
    """Whether `ref` names a commit here (False in a shallow clone that never fetched it)."""
    try:
        git(repo_root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        return False
    return True


def is_shallow(repo_root: Path) -> bool:
    try:
        return git(repo_root, "rev-parse", "--is-shallow-repository").strip() == "true"
    except GitError:
        return False


def is_dirty(repo_root: Path) -> bool:
    return bool(git(repo_root, "status", "--porcelain", "--untracked-files=no").strip())


def commit_time(repo_root: Path, ref: str = "HEAD") -> str:
    """The committer date of `ref`, strict ISO 8601."""
    return git(repo_root, "show", "-s", "--format=%cI", ref).strip()


def changed_files(repo_root: Path, base: str) -> list[str]:
    """Paths (relative to `repo_root`) changed by the commits since `base` (`base...HEAD`)."""
    output = git(repo_root, "diff", "--name-only", "--relative", "--no-renames", f"{base}...HEAD")
    return [line for line in output.splitlines() if line]


def changed_lines(repo_root: Path, base: str) -> dict[str, set[int]]:
    """New-side line numbers added or modified by the commits since `base`, per path relative to `repo_root`."""
    output = git(repo_root, "diff", "-U0", "--no-color", "--relative", "--no-renames", f"{base}...HEAD")
    lines: dict[str, set[int]] = {}
    current: str | None = None
    for text in output.splitlines():
        if text.startswith("+++ "):
            target = text[4:]
            current = None if target == "/dev/null" else target.removeprefix("b/")
            if current is not None:
                lines.setdefault(current, set())
            continue
        match = _HUNK.match(text)
        if match and current is not None:
            start, count = int(match.group(1)), int(match.group(2) if match.group(2) is not None else 1)
            lines[current].update(range(start, start + count))
    return lines


def show_file(repo_root: Path, ref: str, path: str) -> str | None:
    """The text of `path` (relative to `repo_root`) at `ref`, or None when it did not exist there."""
    try:
        return git(repo_root, "show", f"{ref}:./{path}")
    except GitError:
        return None


@contextlib.contextmanager
def worktree(repo_root: Path, sha: str, path: Path) -> Iterator[Path]:
    """A detached checkout of `sha` at `path` for the duration of the block, removed afterwards."""
    git(repo_root, "worktree", "add", "--detach", "--force", str(path), sha)
    try:
        yield path
    finally:
        with contextlib.suppress(GitError):  # cleaning up must not hide the block's own error
            git(repo_root, "worktree", "remove", "--force", str(path))


def dirty_files(repo_root: Path) -> list[str]:
    """Tracked files whose working-tree content differs from HEAD, and untracked files git does not ignore."""
    output = git(repo_root, "status", "--porcelain", "--untracked-files=all")
    return [line[3:] for line in output.splitlines() if line]
