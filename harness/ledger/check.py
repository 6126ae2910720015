"""`serena-verify ledger check`: the ledger's schema, each milestone's artifacts, contradictions, and — against a
base ref — that a runtime change came with its ledger row and milestone folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.config import HarnessConfig, repo_relative
from harness.errors import HarnessError
from harness.git import GitError, changed_files, git, is_shallow, ref_exists, show_file
from harness.golden.cases import load_cases
from harness.invariants.registry import load_registry
from harness.invariants.snapshots import SNAPSHOTS
from harness.ledger.model import (
    ARTIFACTS,
    COMPUTED_SHAPE_MARK,
    EMPTY,
    MILESTONE_ID,
    RECORDED_SCORE,
    SCORE,
    STATUSES,
    SUMMARY_SECTIONS,
    SUMMARY_SECTIONS_COMPUTED,
    Ledger,
    LedgerRow,
    artifact_path,
    finish_ledger_write,
    has_content,
    heading_line,
    parse_ledger,
    read_ledger,
    sections,
    unticked_criteria,
    verdict_of,
)
from harness.ledger.plan import Plan, PlanError, check_references, has_front_matter, parse_plan
from harness.outcome import CheckResult, Finding, Outcome

RUNTIME_DIR = "serena/"
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def parse_completed_at(text: str) -> datetime | None:
    """An ISO 8601 timestamp with a UTC offset (`2026-11-23T09:12:03Z`), else None."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def milestone_findings(
    row: LedgerRow, milestones_dir: Path, repo_root: Path, *, check_commit: bool, row_at: tuple[str, int]
) -> list[Finding]:
    """What is wrong with one row and its folder, each at its place: the row's line of the ledger (`row_at`: the
    ledger as shown, and the line) or the document at fault. Empty when the row is consistent."""
    ledger_shown, line_no = row_at
    findings: list[Finding] = []

    def at_row(rule: str, text: str) -> None:
        findings.append(Finding(rule, text, ledger_shown, line_no))

    mid = row.milestone
    folder = milestones_dir / mid
    if not row.title.strip() or row.title == EMPTY:
        at_row("row", f"{mid}: the Title cell is empty")
    if row.status not in STATUSES:
        at_row("row", f"{mid}: status {row.status!r} is not one of {', '.join(STATUSES)}")
    if not folder.is_dir():
        at_row("artifacts", f"{mid}: no milestone folder {repo_relative(folder, repo_root)}/")
        return findings
    plan_path = artifact_path(milestones_dir, mid, "plan")
    if not plan_path.is_file():
        at_row("artifacts", f"{mid}: missing {repo_relative(plan_path, repo_root)}")
    if row.status != "closed":
        for name, cell in (("Audit Score", row.audit_score), ("Completed At", row.completed_at)):
            if cell != EMPTY:
                at_row("row", f"{mid}: status {row.status} but {name} is {cell!r}; only `milestone close` sets it")
        return findings

    missing = [a for a in ARTIFACTS if not artifact_path(milestones_dir, mid, a).is_file()]
    for artifact in missing:
        shown = repo_relative(artifact_path(milestones_dir, mid, artifact), repo_root)
        at_row("artifacts", f"{mid}: closed but {shown} is missing")
    if not _COMMIT.match(row.commit):
        at_row("row", f"{mid}: Commit {row.commit!r} is not a git sha (7-40 hex digits)")
    elif check_commit:
        try:
            git(repo_root, "cat-file", "-e", f"{row.commit}^{{commit}}")
        except GitError:
            at_row("row", f"{mid}: Commit {row.commit} is not in this repository's history")
    score = SCORE.match(row.audit_score)
    if not score or int(score.group(1)) > 100:
        at_row("row", f"{mid}: Audit Score {row.audit_score!r} is not N/100 (set by `serena-verify milestone close`)")
    if parse_completed_at(row.completed_at) is None:
        at_row("row", f"{mid}: Completed At {row.completed_at!r} is not ISO 8601 UTC, like 2026-11-23T09:12:03Z")
    if "summary" in missing:
        return findings

    summary_path = artifact_path(milestones_dir, mid, "summary")
    return findings + summary_findings(
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
    and a stated verdict. A summary closed before milestones declared their claim keeps the shape it had then:
    six sections, and no Met verdict while exit criteria of the plan are unticked."""
    located = summary_findings(
        mid, summary_text, where, plan_text=plan_text, plan_where=plan_where, row_score=row_score
    )
    return [finding.message for finding in located]


def summary_findings(
    mid: str, summary_text: str, where: str, *, plan_text: str | None, plan_where: str, row_score: str
) -> list[Finding]:
    """`summary_problems`, each at its place: the summary's section heading (`where` is the summary as shown), or
    the plan's Exit Criteria for unticked criteria."""
    findings: list[Finding] = []

    def at(text: str, heading: str | None = None, *, document: str = where, markdown: str = summary_text) -> None:
        findings.append(Finding("summary", text, document, heading_line(markdown, heading) if heading else None))

    summary = sections(summary_text)
    computed = COMPUTED_SHAPE_MARK in summary or (plan_text is not None and has_front_matter(plan_text))
    required = SUMMARY_SECTIONS_COMPUTED if computed else SUMMARY_SECTIONS
    for heading in required:
        if heading not in summary:
            at(f"{where}: missing section ## {heading}")
        elif not has_content(summary[heading]):
            at(f"{where}: section ## {heading} is empty", heading)
    recorded = RECORDED_SCORE.search(summary.get("Validation & Evidence", ""))
    score = SCORE.match(row_score)
    if recorded is None:
        at(
            f"{where}: Validation & Evidence holds no computed audit score (`serena-verify milestone close`)",
            "Validation & Evidence",
        )
    elif score and recorded.group(1) != score.group(1):
        at(
            f"{mid}: ledger Audit Score {row_score} contradicts {recorded.group(1)}/100 computed in {where}",
            "Validation & Evidence",
        )
    verdict_heading = "Final Verdict" if computed else "Verdict"
    verdict = verdict_of(summary.get(verdict_heading, ""))
    if verdict_heading in summary and verdict == "none":
        at(f"{where}: the {verdict_heading} says neither Met nor Not met", verdict_heading)
    if computed and verdict == "not met":
        at(f"{where}: the Final Verdict is Not met; a milestone closes Met", verdict_heading)
    if verdict == "met" and plan_text is not None and not has_front_matter(plan_text):
        open_items = unticked_criteria(plan_text)
        if open_items:
            listed = "; ".join(open_items[:3]) + (" …" if len(open_items) > 3 else "")
            at(
                f"{mid}: contradiction: the summary's Verdict says Met but {len(open_items)} exit criteria of "
                f"{plan_where} are unticked ({listed})",
                "Exit Criteria",
                document=plan_where,
                markdown=plan_text,
            )
    return findings


def plan_problem(
    cfg: HarnessConfig, row: LedgerRow, milestones_dir: Path, *, check_baseline: bool, known: Known
) -> str | None:
    """What is wrong with the plan's front matter (one line naming file, field and value), or None.

    Every milestone declares its claim in front matter, except one closed before claims existed (its summary has
    the old six-section shape)."""
    plan_path = artifact_path(milestones_dir, row.milestone, "plan")
    if not plan_path.is_file():
        return None  # reported as a missing artifact
    shown = repo_relative(plan_path, cfg.repo_root)
    text = plan_path.read_text(encoding="utf-8")
    if not has_front_matter(text):
        summary_path = artifact_path(milestones_dir, row.milestone, "summary")
        legacy = (
            row.status == "closed"
            and summary_path.is_file()
            and COMPUTED_SHAPE_MARK not in sections(summary_path.read_text(encoding="utf-8"))
        )
        if legacy:
            return None
    try:
        plan = parse_plan(text, plan_path, shown)
        check_references(
            plan,
            shown,
            milestone=row.milestone,
            invariant_ids=known.invariants,
            case_ids=known.cases,
            snapshot_names=known.snapshots,
        )
        if check_baseline and not ref_exists(cfg.repo_root, plan.baseline):
            raise PlanError(f"{shown}: field baseline is {plan.baseline!r}, which is not a commit in this repository")
    except PlanError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Known:
    """What a plan may name: invariant ids, golden case ids, snapshot names (None: could not be read)."""

    invariants: frozenset[str] | None
    cases: frozenset[str] | None
    snapshots: frozenset[str]


def known_names(cfg: HarnessConfig) -> Known:
    try:
        invariants = frozenset(inv.id for inv in load_registry(cfg.path("invariants.registry")))
    except HarnessError:
        invariants = None
    try:
        cases = frozenset(case.id for case in load_cases(cfg.path("golden.cases_dir")))
    except HarnessError:
        cases = None
    return Known(invariants, cases, frozenset(SNAPSHOTS))


def ledger_check(cfg: HarnessConfig) -> CheckResult:
    """The table's schema, unique ids and status values, and each milestone against its folder."""
    ledger_path = cfg.path("ledger.path")
    milestones_dir = cfg.path("ledger.milestones_dir")
    finish_ledger_write(ledger_path)  # before looking at the folders: a killed `milestone new` may have committed
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
    ledger_shown = repo_relative(ledger_path, cfg.repo_root)
    findings = [
        Finding("table", problem.replace(str(ledger_path), ledger_shown), ledger_shown, line_no)
        for problem, line_no in zip(ledger.problems, ledger.problem_lines, strict=True)
    ]
    try:
        git(cfg.repo_root, "rev-parse", "--git-dir")
        # a shallow clone may lack a closed milestone's commit: not a ledger fault, so not checked there
        check_commit = not is_shallow(cfg.repo_root)
    except GitError:
        check_commit = False
    known = known_names(cfg)
    plan_errors: list[str] = []
    seen: dict[str, int] = {}
    for row, line_no in zip(ledger.rows, ledger.row_lines, strict=True):
        where = f"{ledger_shown}:{line_no}"
        if not MILESTONE_ID.match(row.milestone):
            text = f"{where}: milestone id {row.milestone!r} is not M followed by 2-3 digits (M01)"
            findings.append(Finding("table", text, ledger_shown, line_no))
            continue
        if row.milestone in seen:
            text = f"{where}: milestone {row.milestone} appears twice (first on line {seen[row.milestone]})"
            findings.append(Finding("table", text, ledger_shown, line_no))
            continue
        seen[row.milestone] = line_no
        findings += milestone_findings(
            row, milestones_dir, cfg.repo_root, check_commit=check_commit, row_at=(ledger_shown, line_no)
        )
        found = plan_problem(cfg, row, milestones_dir, check_baseline=check_commit, known=known)
        if found:
            plan_errors.append(found)
    if plan_errors:
        more = f" (and {len(plan_errors) - 1} more plan problems)" if len(plan_errors) > 1 else ""
        raise PlanError(plan_errors[0] + more)
    if milestones_dir.is_dir():
        for folder in sorted(p for p in milestones_dir.iterdir() if p.is_dir()):
            if MILESTONE_ID.match(folder.name) and folder.name not in seen:
                # the row that is missing belongs in the ledger: the file, no line
                text = f"{repo_relative(folder, cfg.repo_root)}/ has no row in the ledger"
                findings.append(Finding("artifacts", text, ledger_shown))
    by_status = {status: sum(1 for row in ledger.rows if row.status == status) for status in STATUSES}
    return CheckResult(
        check="ledger",
        outcome=Outcome.FAILED if findings else Outcome.PASSED,
        summary=f"{len(ledger.rows)} milestones (" + ", ".join(f"{n} {s}" for s, n in by_status.items()) + ")",
        figures={"milestones": len(ledger.rows), **by_status, "commits_verified": check_commit},
        problems=tuple(finding.message for finding in findings),
        evidence=(str(ledger_path),),
        findings=tuple(findings),
    )


def _rows_at(text: str | None, path: Path) -> dict[str, LedgerRow]:
    if text is None:
        return {}
    ledger: Ledger = parse_ledger(text, path)
    return {row.milestone: row for row in ledger.rows}


def _plan_at(cfg: HarnessConfig, ref: str, milestone: str) -> Plan | None:
    rel = repo_relative(artifact_path(cfg.path("ledger.milestones_dir"), milestone, "plan"), cfg.repo_root)
    text = show_file(cfg.repo_root, ref, rel)
    if text is None or not has_front_matter(text):
        return None
    return parse_plan(text, Path(rel), rel)


def golden_cases_changed(cfg: HarnessConfig, base: str, changed: list[str]) -> tuple[list[str], list[str]]:
    """(re-recorded or removed case ids, added case ids) from the goldens' manifests at `base` and at HEAD.

    A recorded file outside every manifest entry is reported under its own path, so nothing changes unseen."""
    goldens_rel = repo_relative(cfg.path("golden.goldens_dir"), cfg.repo_root)
    touched = [p for p in changed if p.startswith(goldens_rel + "/")]
    sets = sorted({p[len(goldens_rel) + 1 :].split("/", 1)[0] for p in touched})
    modified: set[str] = set()
    added: set[str] = set()
    explained: set[str] = set()
    for name in sets:
        manifest_rel = f"{goldens_rel}/{name}/manifest.json"
        entries = []
        for ref in (base, "HEAD"):
            text = show_file(cfg.repo_root, ref, manifest_rel)
            try:
                entries.append(json.loads(text).get("cases", {}) if text else {})
            except (json.JSONDecodeError, AttributeError):
                entries.append({})
        before, after = entries
        for case_id in set(before) | set(after):
            if case_id not in before:
                added.add(case_id)
            elif before.get(case_id) != after.get(case_id):
                modified.add(case_id)
        for entry in (*before.values(), *after.values()):
            files = [image.get("file") for image in entry.get("images", [])] + [entry.get("trace")]
            explained.update(f"{goldens_rel}/{name}/{f}" for f in files if f)
        explained.add(manifest_rel)
    unexplained = [p for p in touched if p not in explained]
    return sorted(modified | set(unexplained)), sorted(added)


def ledger_base_check(cfg: HarnessConfig, base: str) -> CheckResult:
    """What a pull request since `base` may change, given the milestones it works under.

    - a change under serena/ belongs to a milestone that is in progress at HEAD or closed by this change (its row and
      folder changed);
    - goldens re-recorded (or removed) belong to a behavior-changing milestone that declares those cases; goldens
      added for new cases to an additive or behavior-changing one; a behavior-preserving milestone records none;
    - a changed snapshot belongs to a behavior-changing or additive milestone that declares it.
    A base that does not exist here fails: a shallow clone must not turn this check into a pass.
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
    snapshots_rel = repo_relative(cfg.path("invariants.snapshots_dir"), cfg.repo_root)
    changed = changed_files(cfg.repo_root, base)
    runtime = [path for path in changed if path.startswith(RUNTIME_DIR)]
    snapshot_files = [p for p in changed if p.startswith(snapshots_rel + "/")]
    recorded, added_cases = golden_cases_changed(cfg, base, changed)
    figures: dict[str, object] = {
        "base": base,
        "changed_files": len(changed),
        "runtime_changes": runtime,
        "goldens_re_recorded": recorded,
        "goldens_added": added_cases,
        "snapshots_changed": snapshot_files,
    }
    if not (runtime or snapshot_files or recorded or added_cases):
        return CheckResult(
            check, Outcome.PASSED, f"no runtime, golden or snapshot change since {base}", figures=figures
        )

    before = _rows_at(show_file(cfg.repo_root, base, ledger_rel), Path(ledger_rel))
    after = _rows_at(show_file(cfg.repo_root, "HEAD", ledger_rel), Path(ledger_rel))
    working = sorted(
        mid
        for mid, row in after.items()
        if row.status == "in-progress"
        or (row.status == "closed" and (mid not in before or before[mid].status != "closed"))
    )
    plans: dict[str, Plan] = {}
    for mid in working:
        plan = _plan_at(cfg, "HEAD", mid)
        if plan is not None:
            plans[mid] = plan
    figures["milestones"] = {mid: plans[mid].posture if mid in plans else "no front matter" for mid in working}
    # each problem at the file a fix belongs in: the ledger (no line: the row is what is missing) or the snapshot
    findings: list[Finding] = []
    shown = ", ".join(runtime[:5]) + (f" and {len(runtime) - 5} more" if len(runtime) > 5 else "")
    if runtime:
        if not working:
            text = (
                f"{len(runtime)} runtime file(s) changed since {base} ({shown}) but no milestone of {ledger_rel} is "
                "in progress (or closed by this change); open one: status in-progress"
            )
            findings.append(Finding("runtime-change", text, ledger_rel))
        else:
            with_folder = [m for m in working if any(p.startswith(f"{milestones_rel}/{m}/") for p in changed)]
            if not with_folder:
                text = (
                    f"runtime changed under {', '.join(working)}, but none of their folders under {milestones_rel}/ did"
                )
                findings.append(Finding("runtime-change", text, ledger_rel))

    def owners(kind: str, name: str, postures: tuple[str, ...]) -> list[str]:
        return [m for m, plan in plans.items() if plan.posture in postures and plan.declared(kind, name)]

    preserving = [m for m, plan in plans.items() if plan.posture == "behavior-preserving"]
    for case_id in recorded:
        if not owners("golden", case_id, ("behavior-changing",)):
            why = (
                f"a behavior-preserving milestone ({', '.join(preserving)}) cannot re-record goldens"
                if preserving and len(preserving) == len(plans)
                else "no behavior-changing milestone of this change declares it"
            )
            text = f"golden {case_id} re-recorded or removed since {base}: {why}"
            findings.append(Finding("golden-change", text, ledger_rel))
    for case_id in added_cases:
        if not [m for m, plan in plans.items() if plan.posture in ("behavior-changing", "additive")]:
            text = (
                f"golden {case_id} recorded since {base}: new goldens belong to an additive or behavior-changing "
                "milestone"
            )
            findings.append(Finding("golden-change", text, ledger_rel))
    by_file = {snapshot.filename: name for name, snapshot in SNAPSHOTS.items()}
    for path in snapshot_files:
        name = by_file.get(path[len(snapshots_rel) + 1 :], path)
        if not owners("snapshot", name, ("behavior-changing", "additive")):
            text = (
                f"snapshot {name} changed since {base} ({path}): no behavior-changing or additive milestone of this "
                "change declares it"
            )
            findings.append(Finding("snapshot-change", text, path))
    summary = (
        f"{len(runtime)} runtime file(s), {len(recorded)} goldens re-recorded, {len(added_cases)} added, "
        f"{len(snapshot_files)} snapshots changed since {base}; milestones: {', '.join(working) or 'none'}"
    )
    return CheckResult(
        check,
        Outcome.FAILED if findings else Outcome.PASSED,
        summary,
        figures=figures,
        problems=tuple(finding.message for finding in findings),
        findings=tuple(findings),
    )
