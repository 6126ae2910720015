"""`serena-verify milestone new`: a milestone folder from the templates and a planned row in the ledger."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from pathlib import Path

from harness.config import HarnessConfig
from harness.errors import LedgerError
from harness.ledger.model import ARTIFACTS, EMPTY, MILESTONE_ID, LedgerRow, artifact_path, read_ledger
from harness.outcome import CheckResult, Outcome
from harness.output import atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"


def render_template(name: str, **values: str) -> str:
    """A template of harness/ledger/templates with its $placeholders filled."""
    return string.Template((TEMPLATES / name).read_text(encoding="utf-8")).substitute(values)


def artifact_text(artifact: str, milestone: str, title: str, today: str) -> str:
    if artifact in ("run1", "run2"):
        return render_template("run.md", milestone=milestone, title=title, run=artifact[-1], date=today)
    return render_template(f"{artifact}.md", milestone=milestone, title=title, date=today)


def milestone_new(
    cfg: HarnessConfig, milestone: str, title: str, *, branch: str = EMPTY, today: str | None = None
) -> CheckResult:
    """Scaffold docs/milestones/MNN/ (plan, run1, run2, audit, summary) and append a planned row.

    The folder is written first and the ledger row last, each file atomically: an interrupted run leaves at worst
    a folder without a row, which `ledger check` reports.
    """
    if not MILESTONE_ID.match(milestone):
        raise LedgerError(f"milestone id {milestone!r}: expected M followed by 2-3 digits, like M04")
    title = " ".join(title.split())
    if not title:
        raise LedgerError(f"{milestone}: --title is empty; give the milestone a title")
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

    written = []
    for artifact in ARTIFACTS:
        path = artifact_path(milestones_dir, milestone, artifact)
        atomic_write_text(path, artifact_text(artifact, milestone, title, today))
        written.append(str(path))
    row = LedgerRow(milestone, title, "planned", branch or EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY)
    if ledger is None:
        text = render_template("ledger.md").rstrip("\n") + "\n" + row.render() + "\n"
    else:
        text = ledger.with_rows([*rows, row])
    atomic_write_text(ledger_path, text)
    return CheckResult(
        check="milestone-new",
        outcome=Outcome.PASSED,
        summary=f"{milestone} planned: {len(written)} files in {folder.name}/, row added to {ledger_path.name}",
        figures={"milestone": milestone, "title": title, "folder": str(folder)},
        evidence=(*written, str(ledger_path)),
    )
