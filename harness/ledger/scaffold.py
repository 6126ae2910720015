"""`serena-verify milestone new`: a milestone folder from the templates and a planned row in the ledger."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from pathlib import Path

from harness.config import HarnessConfig
from harness.errors import LedgerError
from harness.git import GitError, head_sha, ref_exists
from harness.ledger.model import (
    ARTIFACTS,
    EMPTY,
    MILESTONE_ID,
    LedgerRow,
    artifact_path,
    read_ledger,
    write_ledger_files,
)
from harness.ledger.plan import POSTURES
from harness.outcome import CheckResult, Outcome

TEMPLATES = Path(__file__).parent / "templates"


def render_template(name: str, **values: str) -> str:
    """A template of harness/ledger/templates with its $placeholders filled."""
    return string.Template((TEMPLATES / name).read_text(encoding="utf-8")).substitute(values)


CHANGES_EXAMPLE = (
    "\n[[changes]]  # one table per surface this milestone changes on purpose\n"
    'surface = "golden:CASE-ID"  # golden:<case id or glob> or snapshot:<name>\n'
    'reason = "why it changes"\n'
)
NO_CHANGES = "# [[changes]] tables declare the surfaces a behavior-changing or additive milestone changes\n"


def artifact_text(
    artifact: str, milestone: str, title: str, today: str, *, posture: str = "", baseline: str = ""
) -> str:
    if artifact in ("run1", "run2"):
        return render_template("run.md", milestone=milestone, title=title, run=artifact[-1], date=today)
    if artifact == "plan":
        return render_template(
            "plan.md",
            milestone=milestone,
            title=title,
            title_toml=json.dumps(title, ensure_ascii=False),
            posture=posture,
            baseline=baseline,
            changes=CHANGES_EXAMPLE if posture == "behavior-changing" else NO_CHANGES,
            date=today,
        )
    return render_template(f"{artifact}.md", milestone=milestone, title=title, date=today)


def milestone_new(
    cfg: HarnessConfig,
    milestone: str,
    title: str,
    *,
    branch: str = EMPTY,
    posture: str = "behavior-preserving",
    baseline: str | None = None,
    today: str | None = None,
) -> CheckResult:
    """Scaffold docs/milestones/MNN/ (plan with its front matter, run1, run2, audit, summary) and add a planned row.

    The baseline defaults to the commit checked out now (the milestone compares its head with where it started).

    The folder and the ledger row are written as one file set: a run killed at any moment leaves neither or both.
    """
    if not MILESTONE_ID.match(milestone):
        raise LedgerError(f"milestone id {milestone!r}: expected M followed by 2-3 digits, like M04")
    title = " ".join(title.split())
    if not title:
        raise LedgerError(f"{milestone}: --title is empty; give the milestone a title")
    if not title.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in title):
        raise LedgerError(f"{milestone}: --title {title!r} holds control or surrogate characters; use plain text")
    if posture not in POSTURES:
        raise LedgerError(f"--posture {posture!r}: expected one of {', '.join(POSTURES)}")
    if baseline is None:
        try:
            baseline = head_sha(cfg.repo_root, short=True)
        except GitError as exc:
            raise LedgerError(f"no --baseline given and no commit to default to ({exc})") from None
    elif not ref_exists(cfg.repo_root, baseline):
        raise LedgerError(f"--baseline {baseline!r} is not a commit in this repository")
    ledger_path = cfg.path("ledger.path")
    milestones_dir = cfg.path("ledger.milestones_dir")
    if ledger_path.is_file():
        ledger = read_ledger(ledger_path)
        if ledger.problems:
            raise LedgerError(f"{ledger.problems[0]}; fix the ledger before adding to it")
        rows = list(ledger.rows)
        if ledger.row(milestone):
            raise LedgerError(f"{ledger_path}: {milestone} already has a row")
    else:
        ledger = None
        rows = []
    folder = milestones_dir / milestone
    if folder.exists():
        raise LedgerError(f"{folder}: already exists; choose another id or add its row by hand")
    today = today or datetime.now(UTC).date().isoformat()

    files = {
        artifact_path(milestones_dir, milestone, artifact): artifact_text(
            artifact, milestone, title, today, posture=posture, baseline=baseline
        )
        for artifact in ARTIFACTS
    }
    written = [str(path) for path in files]
    row = LedgerRow(milestone, title, "planned", branch or EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY)
    if ledger is None:
        files[ledger_path] = render_template("ledger.md").rstrip("\n") + "\n" + row.render() + "\n"
    else:
        files[ledger_path] = ledger.with_rows([*rows, row])
    write_ledger_files(ledger_path, files)
    return CheckResult(
        check="milestone-new",
        outcome=Outcome.PASSED,
        summary=f"{milestone} planned: {len(written)} files in {folder.name}/, row added to {ledger_path.name}",
        figures={
            "milestone": milestone,
            "title": title,
            "posture": posture,
            "baseline": baseline,
            "folder": str(folder),
        },
        evidence=(*written, str(ledger_path)),
    )
