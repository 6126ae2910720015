"""`serena-verify ledger check`: the ledger's schema, each milestone's artifacts, contradictions, and — against a
base ref — that a runtime change came with its ledger row and milestone folder.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from harness.config import HarnessConfig, repo_relative
from harness.git import GitError, changed_files, git, is_shallow, ref_exists, show_file
from harness.ledger.model import (
    ARTIFACTS,
    EMPTY,
    MILESTONE_ID,
    RECORDED_SCORE,
    SCORE,
    STATUSES,
    SUMMARY_SECTIONS,
    Ledger,
    LedgerRow,
    artifact_path,
    has_content,
    parse_ledger,
    read_ledger,
    sections,
    unticked_criteria,
    verdict_of,
)
from harness.outcome import CheckResult, Outcome

RUNTIME_DIR = "serena/"
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def parse_completed_at(text: str) -> datetime | None:
    """An ISO 8601 timestamp with a UTC offset (`2026-11-23T09:12:03Z`), else None."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def milestone_problems(row: LedgerRow, milestones_dir: Path, repo_root: Path, *, check_commit: bool) -> list[str]:
    """What is wrong with one row and its folder; empty when it is consistent."""
    problems: list[str] = []
    mid = row.milestone
    folder = milestones_dir / mid
    if not row.title.strip() or row.title == EMPTY:
        problems.append(f"{mid}: the Title cell is empty")
    if row.status not in STATUSES:
        problems.append(f"{mid}: status {row.status!r} is not one of {', '.join(STATUSES)}")
    if not folder.is_dir():
        problems.append(f"{mid}: no milestone folder {repo_relative(folder, repo_root)}/")
        return problems
    plan_path = artifact_path(milestones_dir, mid, "plan")
    if not plan_path.is_file():
        problems.append(f"{mid}: missing {repo_relative(plan_path, repo_root)}")
    if row.status != "closed":
        for name, cell in (("Audit Score", row.audit_score), ("Completed At", row.completed_at)):
            if cell != EMPTY:
                problems.append(f"{mid}: status {row.status} but {name} is {cell!r}; only `milestone close` sets it")
        return problems

    missing = [a for a in ARTIFACTS if not artifact_path(milestones_dir, mid, a).is_file()]
    problems += [
        f"{mid}: closed but {repo_relative(artifact_path(milestones_dir, mid, a), repo_root)} is missing"
        for a in missing
    ]
    if not _COMMIT.match(row.commit):
        problems.append(f"{mid}: Commit {row.commit!r} is not a git sha (7-40 hex digits)")
    elif check_commit:
        try:
            git(repo_root, "cat-file", "-e", f"{row.commit}^{{commit}}")
        except GitError:
            problems.append(f"{mid}: Commit {row.commit} is not in this repository's history")
    score = SCORE.match(row.audit_score)
    if not score or int(score.group(1)) > 100:
        problems.append(f"{mid}: Audit Score {row.audit_score!r} is not N/100 (set by `serena-verify milestone close`)")
    if parse_completed_at(row.completed_at) is None:
        problems.append(f"{mid}: Completed At {row.completed_at!r} is not ISO 8601 UTC, like 2026-11-23T09:12:03Z")
    if "summary" in missing:
        return problems

    summary_path = artifact_path(milestones_dir, mid, "summary")
    return problems + summary_problems(
        mid,
        summary_path.read_text(encoding="utf-8"),
        repo_relative(summary_path, repo_root),
        plan_text=plan_path.read_text(encoding="utf-8") if plan_path.is_file() else None,
        plan_where=repo_relative(plan_path, repo_root),
        row_score=row.audit_score,
    )


def summary_problems(
    mid: str, summary_text: str, where: str, *, plan_text: str | None, plan_where: str, row_score: str
) -> list[str]:
    """A closed milestone's summary: every section present and filled, its computed score equal to the row's,
    a stated verdict, and no Met verdict while exit criteria of the plan are unticked."""
    problems: list[str] = []
    summary = sections(summary_text)
    for heading in SUMMARY_SECTIONS:
        if heading not in summary:
            problems.append(f"{where}: missing section ## {heading}")
        elif not has_content(summary[heading]):
            problems.append(f"{where}: section ## {heading} is empty")
    recorded = RECORDED_SCORE.search(summary.get("Validation & Evidence", ""))
    score = SCORE.match(row_score)
    if recorded is None:
        problems.append(
            f"{where}: Validation & Evidence holds no computed audit score (`serena-verify milestone close`)"
        )
    elif score and recorded.group(1) != score.group(1):
        problems.append(
            f"{mid}: ledger Audit Score {row_score} contradicts {recorded.group(1)}/100 computed in {where}"
        )
    verdict = verdict_of(summary.get("Verdict", ""))
    if "Verdict" in summary and verdict == "none":
        problems.append(f"{where}: the Verdict says neither Met nor Not met")
    if verdict == "met" and plan_text is not None:
        open_items = unticked_criteria(plan_text)
        if open_items:
            listed = "; ".join(open_items[:3]) + (" …" if len(open_items) > 3 else "")
            problems.append(
                f"{mid}: contradiction: the summary's Verdict says Met but {len(open_items)} exit criteria of "
                f"{plan_where} are unticked ({listed})"
            )
    return problems


def ledger_check(cfg: HarnessConfig) -> CheckResult:
    """The table's schema, unique ids and status values, and each milestone against its folder."""
    ledger_path = cfg.path("ledger.path")
    milestones_dir = cfg.path("ledger.milestones_dir")
    if not ledger_path.is_file():
        return CheckResult(
            check="ledger",
            outcome=Outcome.FAILED,
            summary=f"no ledger at {repo_relative(ledger_path, cfg.repo_root)}",
            problems=(
                f"{repo_relative(ledger_path, cfg.repo_root)} is missing; `serena-verify milestone new` creates it",
            ),
        )
    ledger = read_ledger(ledger_path)
    problems = [
        problem.replace(str(ledger_path), repo_relative(ledger_path, cfg.repo_root)) for problem in ledger.problems
    ]
    try:
        git(cfg.repo_root, "rev-parse", "--git-dir")
        # a shallow clone may lack a closed milestone's commit: not a ledger fault, so not checked there
        check_commit = not is_shallow(cfg.repo_root)
    except GitError:
        check_commit = False
    seen: dict[str, int] = {}
    for row, line_no in zip(ledger.rows, ledger.row_lines, strict=True):
        where = f"{repo_relative(ledger_path, cfg.repo_root)}:{line_no}"
        if not MILESTONE_ID.match(row.milestone):
            problems.append(f"{where}: milestone id {row.milestone!r} is not M followed by 2-3 digits (M01)")
            continue
        if row.milestone in seen:
            problems.append(f"{where}: milestone {row.milestone} appears twice (first on line {seen[row.milestone]})")
            continue
        seen[row.milestone] = line_no
        problems += milestone_problems(row, milestones_dir, cfg.repo_root, check_commit=check_commit)
    if milestones_dir.is_dir():
        for folder in sorted(p for p in milestones_dir.iterdir() if p.is_dir()):
            if MILESTONE_ID.match(folder.name) and folder.name not in seen:
                problems.append(f"{repo_relative(folder, cfg.repo_root)}/ has no row in the ledger")
    by_status = {status: sum(1 for row in ledger.rows if row.status == status) for status in STATUSES}
    return CheckResult(
        check="ledger",
        outcome=Outcome.FAILED if problems else Outcome.PASSED,
        summary=f"{len(ledger.rows)} milestones (" + ", ".join(f"{n} {s}" for s, n in by_status.items()) + ")",
        figures={"milestones": len(ledger.rows), **by_status, "commits_verified": check_commit},
        problems=tuple(problems),
        evidence=(str(ledger_path),),
    )


def _rows_at(text: str | None, path: Path) -> dict[str, LedgerRow]:
    if text is None:
        return {}
    ledger: Ledger = parse_ledger(text, path)
    return {row.milestone: row for row in ledger.rows}


def ledger_base_check(cfg: HarnessConfig, base: str) -> CheckResult:
    """A change under serena/ since `base` must change a ledger row and that milestone's folder.

    Compares the commits `base...HEAD` (uncommitted edits are not seen). A base that does not exist here fails:
    a shallow clone must not turn this check into a pass.
    """
    check = "ledger-base"
    try:
        git(cfg.repo_root, "rev-parse", "--git-dir")
    except GitError as exc:
        return CheckResult(check, Outcome.FAILED, f"cannot compare with {base}", problems=(str(exc),))
    if not ref_exists(cfg.repo_root, base):
        hint = " This clone is shallow: check out with fetch-depth: 0." if is_shallow(cfg.repo_root) else ""
        return CheckResult(
            check,
            Outcome.FAILED,
            f"base ref {base!r} does not exist here",
            problems=(f"base ref {base!r} not found; fetch it (git fetch origin …) before comparing.{hint}",),
        )
    ledger_rel = repo_relative(cfg.path("ledger.path"), cfg.repo_root)
    milestones_rel = repo_relative(cfg.path("ledger.milestones_dir"), cfg.repo_root)
    changed = changed_files(cfg.repo_root, base)
    runtime = [path for path in changed if path.startswith(RUNTIME_DIR)]
    figures: dict[str, object] = {"base": base, "changed_files": len(changed), "runtime_changes": runtime}
    if not runtime:
        return CheckResult(check, Outcome.PASSED, f"no runtime change since {base}", figures=figures)

    before = _rows_at(show_file(cfg.repo_root, base, ledger_rel), Path(ledger_rel))
    after = _rows_at(show_file(cfg.repo_root, "HEAD", ledger_rel), Path(ledger_rel))
    changed_rows = sorted(mid for mid, row in after.items() if before.get(mid) != row)
    with_folder = [mid for mid in changed_rows if any(p.startswith(f"{milestones_rel}/{mid}/") for p in changed)]
    figures.update({"changed_rows": changed_rows, "changed_rows_with_folder": with_folder})
    shown = ", ".join(runtime[:5]) + (f" and {len(runtime) - 5} more" if len(runtime) > 5 else "")
    problems = []
    if not changed_rows:
        problems.append(f"{len(runtime)} runtime file(s) changed since {base} ({shown}) but no row of {ledger_rel} did")
    elif not with_folder:
        problems.append(
            f"ledger rows {', '.join(changed_rows)} changed but none of their folders under {milestones_rel}/ did"
        )
    summary = f"{len(runtime)} runtime file(s) changed since {base}; " + (
        f"recorded under {', '.join(with_folder)}" if with_folder else "not recorded in the ledger"
    )
    return CheckResult(
        check, Outcome.FAILED if problems else Outcome.PASSED, summary, figures=figures, problems=tuple(problems)
    )
