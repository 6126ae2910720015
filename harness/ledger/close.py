"""`serena-verify milestone close`: the summary an auditor signs, computed from the milestone's verify evidence.

Close reads `milestone-verify.json` (written by `serena-verify milestone verify` at the commit being closed) and
the head's run evidence (`serena-verify run`) in the milestone's evidence folder; it computes the audit score
(harness/ledger/score.py, docs/audit-rubric.md), writes the summary's computed sections and the audit's Computed
score, regenerates docs/behaviour-changes.md, and closes the ledger row with commit, CI runs and completion time.
With --tag it creates the annotated tag v0.0.NN-mNN. A milestone whose verify is not Met does not close.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from harness.config import HarnessConfig, repo_relative
from harness.errors import HarnessError, LedgerError
from harness.git import GitError, commit_time, git
from harness.ledger.behaviour import behaviour_changes_text
from harness.ledger.check import summary_problems
from harness.ledger.model import ARTIFACTS, EMPTY, artifact_path, read_ledger, replace_section, write_ledger_files
from harness.ledger.plan import read_plan
from harness.ledger.score import compute_audit_score
from harness.ledger.summary import Closing, prose, render_summary, score_block
from harness.ledger.verify import DOCUMENT_NAME, read_run_evidence, read_verify_document
from harness.outcome import CheckResult, Outcome


def tag_name(milestone: str) -> str:
    """M08 → v0.0.08-m08."""
    return f"v0.0.{milestone[1:]}-m{milestone[1:]}"


def ci_run_references(given: tuple[str, ...] = (), environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """CI runs to record: those given, and the hosted run this close runs in (GITHUB_RUN_ID) when there is one."""
    env = os.environ if environ is None else environ
    runs = list(given)
    run_id = env.get("GITHUB_RUN_ID")
    if run_id:
        server, repository = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
        runs.append(f"{server}/{repository}/actions/runs/{run_id}" if server and repository else f"run {run_id}")
    return tuple(dict.fromkeys(runs))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def close_milestone(
    cfg: HarnessConfig,
    milestone: str,
    *,
    evidence_dir: Path | None = None,
    commit_ref: str = "HEAD",
    completed_at: Literal["now", "commit"] = "now",
    dry_run: bool = False,
    tag: bool = False,
    ci_runs: tuple[str, ...] = (),
    now: datetime | None = None,
) -> CheckResult:
    """Compute the score and the summary from the verify evidence, regenerate behaviour-changes.md, close the row.

    Nothing is written when the verify evidence is missing, stale (another commit) or not Met, when the closed
    milestone would fail `ledger check`, or with --dry-run. The summary, the audit, behaviour-changes.md and the
    ledger row are written as one file set, so a close killed at any moment leaves all four as they were or all four
    closed; the tag is created after them.
    """
    ledger_path = cfg.path("ledger.path")
    milestones_dir = cfg.path("ledger.milestones_dir")
    shown_ledger = repo_relative(ledger_path, cfg.repo_root)
    ledger = read_ledger(ledger_path)
    if ledger.problems:
        raise LedgerError(f"{ledger.problems[0]}; fix the ledger before closing a milestone")
    row = ledger.row(milestone)
    if row is None:
        raise LedgerError(f"{shown_ledger}: no row for {milestone}; add it with `serena-verify milestone new`")
    if row.status == "closed":
        raise LedgerError(f"{shown_ledger}: {milestone} is already closed ({row.completed_at}, {row.audit_score})")
    missing = [a for a in ARTIFACTS if not artifact_path(milestones_dir, milestone, a).is_file()]
    if missing:
        names = ", ".join(artifact_path(milestones_dir, milestone, a).name for a in missing)
        raise LedgerError(f"{milestones_dir / milestone}: missing {names}; a milestone closes with all its artifacts")
    plan_path = artifact_path(milestones_dir, milestone, "plan")
    plan = read_plan(plan_path, repo_relative(plan_path, cfg.repo_root))
    evidence_dir = Path(evidence_dir) if evidence_dir is not None else milestones_dir / milestone / "evidence"
    shown_dir = repo_relative(evidence_dir, cfg.repo_root)
    document = read_verify_document(evidence_dir)
    if document is None:
        raise LedgerError(
            f"{shown_dir}/{DOCUMENT_NAME}: no verify evidence; run `serena-verify milestone verify {milestone}` first"
        )
    try:
        commit = git(cfg.repo_root, "rev-parse", f"{commit_ref}^{{commit}}").strip()
        moment = datetime.fromisoformat(commit_time(cfg.repo_root, commit)) if completed_at == "commit" else None
    except HarnessError as exc:
        raise LedgerError(f"cannot resolve commit {commit_ref!r}: {exc}") from None
    if document["head"]["sha"] != commit:
        raise LedgerError(
            f"{shown_dir}/{DOCUMENT_NAME} verified {document['head']['sha'][:10]}, not {commit[:10]} being closed; "
            f"run `serena-verify milestone verify {milestone}` at {commit[:10]}"
        )
    base_sha = document["baseline"]["sha"]
    try:
        commits = git(cfg.repo_root, "log", "--reverse", "--format=%h %s", f"{base_sha}..{commit}")
        files = git(cfg.repo_root, "diff", "--name-status", "--no-renames", base_sha, commit)
    except HarnessError as exc:
        raise LedgerError(f"the baseline {base_sha[:10]} of the verify evidence is not here: {exc}") from None
    if document["plan"] != plan.to_dict():
        raise LedgerError(f"{shown_dir}/{DOCUMENT_NAME} verified another version of the plan; verify again")
    run = read_run_evidence(evidence_dir).results
    score = compute_audit_score(document, run)
    when = _utc(moment or now or datetime.now(UTC))
    name = tag_name(milestone) if tag else None
    runs = ci_run_references(ci_runs)
    problems: list[str] = []
    if document["verdict"] != "met":
        problems.append(f"{milestone} is {document['verdict']}: " + "; ".join(document["reasons"][:3]))
    if name:
        try:
            existing = git(cfg.repo_root, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}").strip()
        except GitError:
            existing = ""
        if existing and existing != commit:
            problems.append(f"tag {name} already exists at {existing[:10]}, not {commit[:10]}")

    summary_path = artifact_path(milestones_dir, milestone, "summary")
    audit_path = artifact_path(milestones_dir, milestone, "audit")
    used = sorted({"milestone-verify.json", *(s for d in score.dimensions for s in d.sources)})
    digests = tuple(
        (n, hashlib.sha256((evidence_dir / n).read_bytes()).hexdigest()) for n in used if (evidence_dir / n).is_file()
    )
    block = score_block(score, milestone, shown_dir, _utc(now or datetime.now(UTC)), digests)
    documents = (
        *(repo_relative(artifact_path(milestones_dir, milestone, a), cfg.repo_root) for a in ARTIFACTS),
        repo_relative(cfg.path("ledger.behaviour_changes"), cfg.repo_root),
        "docs/audit-rubric.md",
    )
    closing = Closing(
        milestone=milestone,
        title=row.title,
        commit=commit,
        completed_at=when,
        tag=name,
        ci_runs=runs,
        commits=tuple(line for line in commits.splitlines() if line),
        files=tuple(line for line in files.splitlines() if line),
        evidence_dir=shown_dir,
        documents=documents,
    )
    prose_sections = prose(plan.body, summary_path.read_text(encoding="utf-8"))
    missing_prose = [h for h in ("Objective", "Scope") if not prose_sections[h].strip()]
    problems += [f"{plan_path.name}: write ## {h} in the plan (or the summary) before closing" for h in missing_prose]
    summary_text = render_summary(document, run, score, closing, prose_sections, block)
    audit_text = replace_section(audit_path.read_text(encoding="utf-8"), "Computed score", block)
    closed = replace(
        row,
        status="closed",
        commit=commit[:7],
        ci_runs=", ".join(runs) if runs else EMPTY,
        audit_score=f"{score.total}/100",
        completed_at=when,
    )
    problems += summary_problems(
        milestone,
        summary_text,
        summary_path.name,
        plan_text=plan_path.read_text(encoding="utf-8"),
        plan_where=plan_path.name,
        row_score=closed.audit_score,
    )
    figures = {
        "milestone": milestone,
        "audit_score": score.total,
        "score": score.to_dict(),
        "commit": commit,
        "tag": name,
        "ci_runs": list(runs),
        "completed_at": when,
        "evidence_dir": str(evidence_dir),
        "verdict": document["verdict"],
    }
    if problems:
        return CheckResult(
            check="milestone-close",
            outcome=Outcome.FAILED,
            summary=f"{milestone} not closed (would score {score.total}/100 = {score.describe()}); nothing written",
            figures=figures,
            problems=tuple(problems),
        )
    if dry_run:
        return CheckResult(
            check="milestone-close",
            outcome=Outcome.PASSED,
            summary=f"{milestone} would close at {commit[:7]}: {score.total}/100 = {score.describe()} (dry run)",
            figures=figures,
        )
    updated = ledger.with_rows([closed if r.milestone == milestone else r for r in ledger.rows])
    behaviour_path = cfg.path("ledger.behaviour_changes")
    behaviour_text = behaviour_changes_text(cfg, extra={milestone: (plan, document)})
    write_ledger_files(
        ledger_path,
        {summary_path: summary_text, audit_path: audit_text, behaviour_path: behaviour_text, ledger_path: updated},
    )
    if name:
        git(
            cfg.repo_root,
            "tag",
            "-a",
            "-f",
            name,
            commit,
            "-m",
            f"{milestone} {row.title}: Met, audit {score.total}/100",
        )
    return CheckResult(
        check="milestone-close",
        outcome=Outcome.PASSED,
        summary=f"{milestone} closed at {commit[:7]}: audit score {score.total}/100 = {score.describe()}"
        + (f"; tagged {name}" if name else ""),
        figures=figures,
        evidence=(str(summary_path), str(audit_path), str(behaviour_path), str(ledger_path)),
    )
