"""`serena-verify milestone verify MNN`: the milestone's claim measured against its baseline, on this machine.

- model outputs: every golden case run on the baseline and on the head (`golden ab`), judged per case;
- surfaces: every snapshot the registry knows, rendered by the same producers at the baseline and at the head;
- invariants, coverage (total and of the changed lines) and the checks of the head's run evidence
  (`serena-verify run --evidence-dir docs/milestones/MNN/evidence`);
- the dependency lock diff and what CI now runs differently;
- the plan's exit criteria, each from its named evidence; the Observability table; the verdict.

The head is the working tree; a head with uncommitted changes outside docs/ cannot be Met (an auditor signs a
commit). Evidence goes to the milestone's evidence folder: milestone-verify.json and .md, golden-ab/, surfaces/.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig, repo_relative
from harness.errors import ConfigError, GoldenError, LedgerError
from harness.gates.coverage import changed_lines_coverage
from harness.git import GitError, dirty_files, git, head_sha, show_file, worktree
from harness.golden.ab import CasesDidNotRun, resolve_base, run_ab
from harness.golden.cases import load_cases
from harness.golden.compare import CaseVerdict
from harness.golden.publish import write_golden_report
from harness.golden.selection import Selection
from harness.invariants import snapshots as snapshot_producers
from harness.invariants.registry import load_registry
from harness.ledger.changes import ci_diff, lock_diff
from harness.ledger.model import artifact_path, read_ledger
from harness.ledger.plan import Plan, check_references, read_plan
from harness.outcome import CheckResult, Outcome
from harness.output import atomic_write_text

SCHEMA_VERSION = 1
DOCUMENT_NAME = "milestone-verify.json"
MARKDOWN_NAME = "milestone-verify.md"
SURFACES_DIR = "surfaces"
GOLDEN_AB_DIR = "golden-ab"
COMMANDS_DIR = "commands"
COMMAND_TIMEOUT = 600
SNAPSHOT_WORKER = Path(snapshot_producers.__file__).with_name("snapshot_worker.py")
MET, NOT_MET, INCONCLUSIVE = "met", "not met", "inconclusive"
# the Observability table's name for each snapshot surface
SURFACE_LABELS = {
    "api-openapi": "API schema (OpenAPI)",
    "api-txt2img-response": "API responses: txt2img",
    "api-img2img-response": "API responses: img2img",
    "cli-help": "CLI output (help pages)",
    "infotext-format": "Infotext format",
    "file-naming": "File naming and formats",
    "extension-callbacks": "Extension callbacks",
    "seam-api": "Seam API (refactor seams)",
    "processed-schema": "Processed schema (Processed.js)",
}
Progress = Callable[[str], None]


@dataclass
class Part:
    """One measured part of the claim: met / not met / inconclusive, with why and the figures."""

    status: str
    summary: str
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "summary": self.summary, "reasons": self.reasons, **self.figures}


def _status(reasons_not_met: list[str], reasons_inconclusive: list[str]) -> str:
    return NOT_MET if reasons_not_met else INCONCLUSIVE if reasons_inconclusive else MET


# -- model outputs ----------------------------------------------------------------------------------------------
def case_ids_at(repo: Path, ref: str, cases_rel: str) -> set[str]:
    """The golden case ids that the case files at `ref` define (read from git, not from the working tree)."""
    ids: set[str] = set()
    listing = git(repo, "ls-tree", "-r", "--name-only", ref, "--", cases_rel)
    for path in listing.splitlines():
        if not path.endswith(".toml"):
            continue
        text = show_file(repo, ref, path) or ""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue
        ids.update(str(case.get("id")) for case in document.get("case", []) if isinstance(case, dict))
    return ids


def _case_entry(verdict: CaseVerdict) -> dict[str, Any]:
    images = [
        {
            "index": image.index,
            "verdict": str(image.verdict),
            "base_sha256": image.golden.sha256 if image.golden else None,
            "head_sha256": image.actual.sha256 if image.actual else None,
            "phash_distance": image.phash_distance,
            "mean_abs": image.mean_abs,
            "ssim": image.ssim,
        }
        for image in verdict.images
    ]
    return {
        "case": verdict.case_id,
        "verdict": str(verdict.verdict),
        "detail": verdict.reason,
        "divergence": verdict.divergence.describe() if verdict.divergence else None,
        "images": images,
    }


def judge_cases(plan: Plan, entries: list[dict[str, Any]]) -> Part:
    """Each case against the claim: undeclared changes and declared changes that did not happen both fail."""
    not_met: list[str] = []
    inconclusive: list[str] = []
    for entry in entries:
        declared = plan.declared("golden", entry["case"])
        verdict = entry["verdict"]
        where = entry["case"]
        if verdict == "added":
            entry["claim"] = "added"
        elif verdict == "degenerate":
            entry["claim"] = "degenerate"
            not_met.append(f"golden {where}: degenerate output at the head ({entry.get('detail')})")
        elif verdict == "identical":
            entry["claim"] = "declared change did not happen" if declared else "unchanged"
            if declared:
                not_met.append(f"golden {where}: declared as changed ({declared.reason}) but identical to the baseline")
        elif verdict == "errored":
            head_failed = "working tree:" in (entry.get("detail") or "")
            entry["claim"] = "errored at the head" if head_failed else "inconclusive"
            (not_met if head_failed else inconclusive).append(f"golden {where}: errored — {entry.get('detail')}")
        elif verdict in ("equivalent", "drifted", "changed", "removed"):
            entry["claim"] = "changed as declared" if declared else "undeclared change"
            if not declared:
                how = entry.get("detail") or verdict
                if verdict == "equivalent":  # a report from before `drifted` existed
                    how = f"not bit-identical (within tolerance: {how})"
                divergence = f"; {entry['divergence']}" if entry.get("divergence") else ""
                not_met.append(f"golden {where}: {verdict} — {how}{divergence}")
        else:
            entry["claim"] = "inconclusive"
            inconclusive.append(f"golden {where}: {verdict} ({entry.get('detail')})")
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["verdict"]] = counts.get(entry["verdict"], 0) + 1
    as_claimed = sum(1 for e in entries if e["claim"] in ("unchanged", "changed as declared", "added"))
    compared = [e for e in entries if e["verdict"] != "added"]
    summary = f"{len(compared)} cases run on baseline and head: " + ", ".join(
        f"{n} {name}" for name, n in sorted(counts.items())
    )
    return Part(
        _status(not_met, inconclusive),
        summary,
        not_met + inconclusive,
        {"counts": counts, "as_claimed": as_claimed, "total": len(entries), "cases": entries},
    )


def measure_goldens(
    cfg: HarnessConfig, plan: Plan, base_sha: str, evidence_dir: Path, progress: Progress | None
) -> Part:
    cases_dir = cfg.path("golden.cases_dir")
    head_ids = {case.id for case in load_cases(cases_dir)}
    base_ids = case_ids_at(cfg.repo_root, base_sha, repo_relative(cases_dir, cfg.repo_root))
    both = sorted(head_ids & base_ids)
    entries: list[dict[str, Any]] = []
    seconds = 0.0
    if both:
        with tempfile.TemporaryDirectory(prefix="serena-milestone-ab-") as work:
            try:
                report = run_ab(cfg, base_sha, selection=Selection(tuple(both)), work_dir=Path(work), progress=progress)
            except CasesDidNotRun as exc:
                status = NOT_MET if exc.side == "head" else INCONCLUSIVE
                return Part(status, f"the golden cases did not run: {exc}", [f"golden: {exc}"], {"cases": []})
            seconds = report.seconds
            folder = evidence_dir / GOLDEN_AB_DIR
            if folder.exists():
                shutil.rmtree(folder)
            write_golden_report(report, folder)
        entries = [_case_entry(v) for v in report.verdicts]
    entries += [
        {"case": cid, "verdict": "added", "detail": "new at the head; no baseline"}
        for cid in sorted(head_ids - base_ids)
    ]
    entries += [
        {"case": cid, "verdict": "removed", "detail": "defined at the baseline, gone at the head"}
        for cid in sorted(base_ids - head_ids)
    ]
    part = judge_cases(plan, entries)
    part.figures["seconds"] = round(seconds, 2)
    part.figures["report"] = f"{GOLDEN_AB_DIR}/golden.html" if both else None
    return part


# -- surfaces ---------------------------------------------------------------------------------------------------
def _render(serena_root: Path, out: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [
            sys.executable,
            str(SNAPSHOT_WORKER),
            "--serena-root",
            str(serena_root),
            "--producers",
            snapshot_producers.__file__,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=serena_root,
    )
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": last, "rendered": {}, "errors": {}}
    return json.loads((out / "done.json").read_text(encoding="utf-8"))


def measure_surfaces(cfg: HarnessConfig, plan: Plan, base_sha: str, evidence_dir: Path) -> Part:
    """Every snapshot surface rendered at the baseline (a worktree) and at the head, each in its own process."""
    import difflib

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serena-milestone-surfaces-") as work:
        root = Path(work)
        with worktree(cfg.repo_root, base_sha, root / "base-worktree") as checkout:
            base = _render(checkout, root / "base")
        head = _render(cfg.repo_root, root / "head")
        folder = evidence_dir / SURFACES_DIR
        if folder.exists():
            shutil.rmtree(folder)
        entries: list[dict[str, Any]] = []
        not_met: list[str] = []
        inconclusive: list[str] = []
        for name, snapshot in snapshot_producers.SNAPSHOTS.items():
            entry: dict[str, Any] = {"surface": name, "label": SURFACE_LABELS.get(name, name), "diff": None}
            declared = plan.declared("snapshot", name)
            problem = None
            if "failed" in head or name in head["errors"]:
                entry["status"] = "error"
                problem = f"the head cannot render it: {head.get('failed') or head['errors'][name]}"
                entry["detail"] = problem
                not_met.append(f"surface {name}: {problem}")
            elif "failed" in base or name in base["errors"]:
                entry["status"] = "not comparable"
                entry["detail"] = f"the baseline cannot render it: {base.get('failed') or base['errors'][name]}"
                if declared:
                    entry["claim"] = "changed as declared"
                else:
                    inconclusive.append(f"surface {name}: {entry['detail']}")
            else:
                before = (root / "base" / snapshot.filename).read_text(encoding="utf-8")
                after = (root / "head" / snapshot.filename).read_text(encoding="utf-8")
                entry["status"] = "unchanged" if before == after else "changed"
                if before != after:
                    diff = "".join(
                        difflib.unified_diff(
                            before.splitlines(keepends=True),
                            after.splitlines(keepends=True),
                            fromfile=f"{name} at baseline {base_sha[:10]}",
                            tofile=f"{name} at head",
                        )
                    )
                    diff_name = f"{SURFACES_DIR}/{name}.diff"
                    atomic_write_text(evidence_dir / diff_name, diff)
                    entry["diff"] = diff_name
                    added = sum(1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
                    removed = sum(
                        1 for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")
                    )
                    entry["detail"] = f"+{added} −{removed} lines; first change: {_first_change(diff)}"
            if "claim" not in entry:
                if entry["status"] == "unchanged":
                    entry["claim"] = "declared change did not happen" if declared else "unchanged"
                    if declared:
                        not_met.append(f"surface {name}: declared as changed ({declared.reason}) but unchanged")
                elif entry["status"] == "changed":
                    entry["claim"] = "changed as declared" if declared else "undeclared change"
                    if not declared:
                        not_met.append(f"surface {name}: changed — {entry['detail']} (diff: {entry['diff']})")
                else:
                    entry["claim"] = "inconclusive" if entry["status"] == "not comparable" else "error"
            if declared:
                entry["reason"] = declared.reason
            entries.append(entry)
    unchanged = sum(1 for e in entries if e["status"] == "unchanged")
    as_claimed = sum(1 for e in entries if e["claim"] in ("unchanged", "changed as declared"))
    return Part(
        _status(not_met, inconclusive),
        f"{len(entries)} surfaces rendered at baseline and head: {unchanged} unchanged, "
        f"{sum(1 for e in entries if e['status'] == 'changed')} changed",
        not_met + inconclusive,
        {
            "surfaces": entries,
            "as_claimed": as_claimed,
            "total": len(entries),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )


def _first_change(diff: str) -> str:
    for line in diff.splitlines():
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
            return line[:120]
    return "whitespace"


# -- the head's run evidence ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunEvidence:
    """The check results of `serena-verify run` in the evidence folder, and the commit they were measured at."""

    results: dict[str, dict[str, Any]]
    git_sha: str | None
    source: str | None


def read_run_evidence(evidence_dir: Path) -> RunEvidence:
    summary = evidence_dir / "summary.json"
    try:
        document = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return RunEvidence({}, None, None)
    results = {
        item["check"]: item
        for item in document.get("results", [])
        if isinstance(item, dict) and isinstance(item.get("check"), str)
    }
    env = results.get("env", {}).get("figures", {})
    return RunEvidence(results, env.get("git sha"), summary.name)


def _run_evidence_problem(evidence: RunEvidence, head: str, shown_dir: str) -> str | None:
    if evidence.source is None:
        return f"no run evidence in {shown_dir} (run `serena-verify run --evidence-dir {shown_dir}` at the head)"
    if evidence.git_sha is None:
        return f"{shown_dir}/summary.json does not say which commit it measured (no env record)"
    if evidence.git_sha != head:
        return f"{shown_dir}/summary.json measured {evidence.git_sha[:10]}, not the head {head[:10]}; run it again"
    return None


def measure_invariants(cfg: HarnessConfig, plan: Plan, evidence: RunEvidence, stale: str | None) -> Part:
    registry = load_registry(cfg.path("invariants.registry"))
    kept = [inv.id for inv in registry] if "all" in plan.invariants or not plan.invariants else list(plan.invariants)
    if stale:
        return Part(INCONCLUSIVE, "invariants at the head not measured", [f"invariants: {stale}"], {"kept": kept})
    result = evidence.results.get("invariants")
    if result is None:
        return Part(INCONCLUSIVE, "no invariants result", ["invariants: the run evidence has no invariants check"])
    statuses = {item["id"]: item["status"] for item in result.get("figures", {}).get("invariants", [])}
    violated = [
        f"invariant {i}: {statuses.get(i, 'absent from the run')}" for i in kept if statuses.get(i) != "verified"
    ]
    not_met = [r for r in violated if "violated" in r or "unverified" in r]
    inconclusive = [r for r in violated if r not in not_met]
    verified = sum(1 for i in statuses.values() if i == "verified")
    return Part(
        _status(not_met, inconclusive),
        f"{verified}/{len(statuses)} invariants verified at the head; {len(kept) - len(violated)}/{len(kept)} of "
        "those the plan keeps",
        not_met + inconclusive,
        {"verified": verified, "total": len(statuses), "kept": kept, "statuses": statuses},
    )


def measure_coverage(
    cfg: HarnessConfig, base_sha: str, evidence: RunEvidence, evidence_dir: Path, stale: str | None
) -> Part:
    if stale:
        return Part(INCONCLUSIVE, "coverage at the head not measured", [f"coverage: {stale}"])
    result = evidence.results.get("coverage")
    if result is None:
        return Part(INCONCLUSIVE, "no coverage result", ["coverage: the run evidence has no coverage check"])
    figures = result.get("figures", {})
    changed: dict[str, Any] | None = None  # None: no coverage.xml, so the changed lines were not measured
    xml = evidence_dir / "coverage.xml"
    if xml.is_file():
        diff = changed_lines_coverage(cfg, base_sha, xml_path=xml)
        changed = {k: diff.figures.get(k) for k in ("changed_measured_lines", "covered", "percent")}
        changed["missed"] = list(diff.problems)
    outcome = result.get("outcome")
    status = MET if outcome == "passed" else NOT_MET if outcome == "failed" else INCONCLUSIVE
    reasons = [] if status == MET else [f"coverage {outcome}: {result.get('reason') or result.get('summary')}"]
    changed_text = (
        "changed lines not measured (no coverage.xml in the evidence)"
        if changed is None
        else "no measured line changed"
        if changed.get("percent") is None
        else f"changed lines {changed['covered']}/{changed['changed_measured_lines']} covered "
        f"({changed['percent']:.1f}%)"
    )
    return Part(
        status,
        f"{_percent(figures.get('total'))} at the head (floor {_percent(figures.get('floor'))}); {changed_text}",
        reasons,
        {"total": figures.get("total"), "floor": figures.get("floor"), "changed_lines": changed},
    )


def _percent(value: Any) -> str:
    return f"{value:.2f}%" if isinstance(value, int | float) else "unknown"


# -- exit criteria ----------------------------------------------------------------------------------------------
def _run_command(command: str, repo: Path, log: Path) -> tuple[str, str]:
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            command, shell=True, cwd=repo, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return NOT_MET, f"did not finish within {COMMAND_TIMEOUT} s"
    seconds = time.perf_counter() - started
    atomic_write_text(
        log, f"$ {command}\n# exit {completed.returncode} after {seconds:.1f} s\n{completed.stdout}{completed.stderr}"
    )
    last = (completed.stdout.strip().splitlines() or completed.stderr.strip().splitlines() or [""])[-1][:160]
    status = MET if completed.returncode == 0 else NOT_MET
    return status, f"exit {completed.returncode} in {seconds:.1f} s: {last}".rstrip(": ")


def evaluate_criteria(
    cfg: HarnessConfig,
    plan: Plan,
    parts: dict[str, Part],
    evidence: RunEvidence,
    stale: str | None,
    evidence_dir: Path,
) -> list[dict[str, Any]]:
    rows = []
    for number, criterion in enumerate(plan.exit_criteria, start=1):
        kind, target = criterion.kind, criterion.target
        if kind == "verify":
            if target == "verdict":
                statuses = [parts[name].status for name in parts]
                status = NOT_MET if NOT_MET in statuses else INCONCLUSIVE if INCONCLUSIVE in statuses else MET
                detail = "; ".join(f"{name} {parts[name].status}" for name in parts)
            else:
                part = parts["model-outputs" if target == "model-outputs" else target]
                status, detail = part.status, part.summary
        elif kind in ("golden", "snapshot"):
            key = "cases" if kind == "golden" else "surfaces"
            name_key = "case" if kind == "golden" else "surface"
            part = parts["model-outputs" if kind == "golden" else "surfaces"]
            chosen = [e for e in part.figures.get(key, []) if fnmatch.fnmatchcase(e[name_key], target)]
            claims = [e.get("claim") for e in chosen]
            if not chosen:
                status, detail = INCONCLUSIVE, f"no {name_key} matches {target!r} in this verify"
            elif any(
                c in ("undeclared change", "declared change did not happen", "degenerate", "error") for c in claims
            ):
                status = NOT_MET
                detail = "; ".join(
                    f"{e[name_key]} {e.get('claim')}"
                    for e in chosen
                    if e.get("claim") not in ("unchanged", "changed as declared", "added")
                )
            elif "inconclusive" in claims:
                status, detail = INCONCLUSIVE, f"{claims.count('inconclusive')} not comparable"
            else:
                status = MET
                detail = f"{len(chosen)} {name_key}{'s' if len(chosen) != 1 else ''} as claimed"
        elif kind == "invariant":
            statuses = parts["invariants"].figures.get("statuses", {})
            if stale or not statuses:
                status, detail = INCONCLUSIVE, stale or "no invariants result in the run evidence"
            else:
                found = statuses.get(target)
                status = MET if found == "verified" else INCONCLUSIVE if found in (None, "not run") else NOT_MET
                detail = f"{target} {found or 'absent from the run'} at the head"
        elif kind == "check":
            result = evidence.results.get(target)
            if stale:
                status, detail = INCONCLUSIVE, stale
            elif result is None:
                status, detail = INCONCLUSIVE, f"no {target!r} check in the run evidence"
            else:
                outcome = result.get("outcome")
                status = MET if outcome == "passed" else NOT_MET if outcome == "failed" else INCONCLUSIVE
                detail = f"{target} {outcome}: {result.get('summary')}"
        else:  # command
            status, detail = _run_command(
                target, cfg.repo_root, evidence_dir / COMMANDS_DIR / f"criterion-{number}.log"
            )
        rows.append(
            {"criterion": criterion.criterion, "evidence": criterion.evidence, "status": status, "detail": detail}
        )
    return rows


# -- the whole verify -------------------------------------------------------------------------------------------
def observability(parts: dict[str, Part]) -> list[dict[str, str]]:
    """Surface → Unchanged / Changed (as declared or not) / Inconclusive, with its evidence."""
    rows = []
    cases = parts["model-outputs"].figures.get("cases", [])
    changed = [c for c in cases if c["verdict"] in ("changed", "equivalent", "drifted", "removed", "degenerate")]
    added = [c for c in cases if c["verdict"] == "added"]
    compared = len(cases) - len(added)
    if parts["model-outputs"].status == INCONCLUSIVE and not changed:
        outputs = "Inconclusive"
    elif changed:
        declared = all(c.get("claim") == "changed as declared" for c in changed)
        outputs = f"Changed ({len(changed)} of {compared} cases{', as declared' if declared else ', undeclared'})"
    else:
        outputs = "Unchanged"
    evidence = f"golden A/B: {parts['model-outputs'].summary}" + (f"; {len(added)} new cases" if added else "")
    rows.append({"surface": "Model outputs (golden cases)", "status": outputs, "evidence": evidence})
    for entry in parts["surfaces"].figures.get("surfaces", []):
        status = {
            "unchanged": "Unchanged",
            "changed": "Changed (as declared)"
            if entry.get("claim") == "changed as declared"
            else "Changed (undeclared)",
            "not comparable": "Inconclusive",
            "error": "Broken at the head",
        }[entry["status"]]
        shown = f"snapshot {entry['surface']} rendered at baseline and head" + (
            f"; diff {entry['diff']}" if entry.get("diff") else ""
        )
        rows.append({"surface": entry["label"], "status": status, "evidence": shown})
    return rows


def verify_milestone(
    cfg: HarnessConfig,
    milestone: str,
    *,
    evidence_dir: Path | None = None,
    progress: Progress | None = None,
) -> CheckResult:
    """Measure the milestone's claim and write the evidence; the result is Met (passed), Not met or inconclusive."""
    started = time.perf_counter()
    milestones_dir = cfg.path("ledger.milestones_dir")
    ledger = read_ledger(cfg.path("ledger.path"))
    if ledger.row(milestone) is None:
        raise LedgerError(f"{repo_relative(ledger.path, cfg.repo_root)}: no row for {milestone}")
    plan_path = artifact_path(milestones_dir, milestone, "plan")
    shown_plan = repo_relative(plan_path, cfg.repo_root)
    plan = read_plan(plan_path, shown_plan)
    registry = load_registry(cfg.path("invariants.registry"))
    try:
        case_ids = {case.id for case in load_cases(cfg.path("golden.cases_dir"))}
    except GoldenError:
        case_ids = None
    check_references(
        plan,
        shown_plan,
        milestone=milestone,
        invariant_ids={inv.id for inv in registry},
        case_ids=None if case_ids is None else case_ids | _base_ids_for(cfg, plan),
        snapshot_names=set(snapshot_producers.SNAPSHOTS),
    )
    base_sha = resolve_base(cfg.repo_root, plan.baseline)
    head = head_sha(cfg.repo_root)
    evidence_dir = evidence_dir or (milestones_dir / milestone / "evidence")
    evidence_dir.mkdir(parents=True, exist_ok=True)
    shown_evidence = repo_relative(evidence_dir, cfg.repo_root)
    dirty = [p for p in dirty_files(cfg.repo_root) if not p.startswith("docs/")]

    if progress:
        progress(f"{milestone}: golden cases on baseline {base_sha[:10]} and head")
    parts: dict[str, Part] = {"model-outputs": measure_goldens(cfg, plan, base_sha, evidence_dir, progress)}
    if progress:
        progress(f"{milestone}: surfaces at baseline and head")
    parts["surfaces"] = measure_surfaces(cfg, plan, base_sha, evidence_dir)
    run_evidence = read_run_evidence(evidence_dir)
    stale = _run_evidence_problem(run_evidence, head, shown_evidence)
    parts["invariants"] = measure_invariants(cfg, plan, run_evidence, stale)
    parts["coverage"] = measure_coverage(cfg, base_sha, run_evidence, evidence_dir, stale)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        parts["head"] = Part(
            INCONCLUSIVE,
            "the head has uncommitted changes",
            [f"head: uncommitted changes in {shown}; commit them so the head is a commit"],
        )
    criteria = evaluate_criteria(cfg, plan, parts, run_evidence, stale, evidence_dir)
    deps = lock_diff(cfg.repo_root, base_sha)
    ci = ci_diff(cfg.repo_root, base_sha)

    reasons = [reason for part in parts.values() for reason in part.reasons]
    reasons += [
        f"exit criterion {row['criterion']!r}: {row['status']} — {row['detail']}"
        for row in criteria
        if row["status"] != MET
    ]
    statuses = [part.status for part in parts.values()] + [row["status"] for row in criteria]
    verdict = NOT_MET if NOT_MET in statuses else INCONCLUSIVE if INCONCLUSIVE in statuses else MET
    seconds = time.perf_counter() - started
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": "serena-milestone-verify",
        "milestone": milestone,
        "plan": plan.to_dict(),
        "baseline": {"ref": plan.baseline, "sha": base_sha},
        "head": {"sha": head, "uncommitted": dirty},
        "verdict": verdict,
        "reasons": reasons,
        "parts": {name: part.to_dict() for name, part in parts.items()},
        "observability": observability(parts),
        "exit_criteria": criteria,
        "dependencies": {**deps.to_dict(), "summary": deps.describe()},
        "ci": {**ci.to_dict(), "summary": ci.describe()},
        "seconds": {
            "total": round(seconds, 2),
            "goldens": parts["model-outputs"].figures.get("seconds"),
            "surfaces": parts["surfaces"].figures.get("seconds"),
        },
    }
    outcome = {MET: Outcome.PASSED, NOT_MET: Outcome.FAILED, INCONCLUSIVE: Outcome.INCONCLUSIVE}[verdict]
    shown_verdict = {MET: "Met", NOT_MET: "Not met", INCONCLUSIVE: "Inconclusive"}[verdict]
    result = CheckResult(
        check="milestone-verify",
        outcome=outcome,
        summary=f"{milestone} ({plan.posture}, baseline {base_sha[:10]}): {shown_verdict} — "
        + "; ".join(f"{name}: {part.summary}" for name, part in parts.items()),
        reason=("; ".join(reasons) or None) if verdict == INCONCLUSIVE else None,
        figures=document,
        problems=tuple(reasons) if verdict == NOT_MET else (),
        evidence=(str(evidence_dir / DOCUMENT_NAME), str(evidence_dir / MARKDOWN_NAME)),
    )
    atomic_write_text(
        evidence_dir / DOCUMENT_NAME,
        json.dumps(
            {"schema_version": SCHEMA_VERSION, "outcome": str(outcome), "strict": False, "results": [result.to_dict()]},
            indent=2,
        )
        + "\n",
    )
    atomic_write_text(evidence_dir / MARKDOWN_NAME, render_verify_markdown(document))
    return result


def _base_ids_for(cfg: HarnessConfig, plan: Plan) -> set[str]:
    """Cases the baseline defines (a declared change may name a case the head removed)."""
    try:
        sha = resolve_base(cfg.repo_root, plan.baseline)
        return case_ids_at(cfg.repo_root, sha, repo_relative(cfg.path("golden.cases_dir"), cfg.repo_root))
    except (GitError, ConfigError):  # an unresolvable baseline is reported by the caller
        return set()


def read_verify_document(evidence_dir: Path) -> dict[str, Any] | None:
    """The milestone-verify document of an evidence folder, or None."""
    try:
        wrapper = json.loads((evidence_dir / DOCUMENT_NAME).read_text(encoding="utf-8"))
        return wrapper["results"][0]["figures"]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        return None


def _cell(text: Any) -> str:
    return str(text).replace("|", "∣").replace("\n", " ")


def render_verify_markdown(document: dict[str, Any]) -> str:
    verdict = {MET: "Met", NOT_MET: "Not met", INCONCLUSIVE: "Inconclusive"}[document["verdict"]]
    plan = document["plan"]
    lines = [
        f"# {document['milestone']} verify — {plan['title']}",
        "",
        f"Posture: **{plan['posture']}**. "
        f"Baseline: `{document['baseline']['sha'][:10]}` ({document['baseline']['ref']}). "
        f"Head: `{document['head']['sha'][:10]}`. Verdict: **{verdict}**. Took {document['seconds']['total']} s "
        f"(golden A/B {document['seconds']['goldens']} s, surfaces {document['seconds']['surfaces']} s).",
        "",
        "## Observability",
        "",
        "| Surface | Status | Evidence |",
        "| --- | --- | --- |",
        *(
            f"| {_cell(r['surface'])} | {_cell(r['status'])} | {_cell(r['evidence'])} |"
            for r in document["observability"]
        ),
        "",
        "## Parts",
        "",
        "| Part | Status | Measured |",
        "| --- | --- | --- |",
        *(f"| {name} | {part['status']} | {_cell(part['summary'])} |" for name, part in document["parts"].items()),
        "",
        "## Exit criteria",
        "",
        "| Criterion | Status | Evidence |",
        "| --- | --- | --- |",
        *(
            f"| {_cell(r['criterion'])} | {r['status']} | `{_cell(r['evidence'])}`: {_cell(r['detail'])} |"
            for r in document["exit_criteria"]
        ),
        "",
        "## Golden cases",
        "",
        "| Case | Verdict | Claim | Detail |",
        "| --- | --- | --- | --- |",
        *(
            f"| {c['case']} | {c['verdict']} | {c.get('claim', '')} | {_cell(c.get('detail') or '')}"
            f"{_cell('; ' + c['divergence']) if c.get('divergence') else ''} |"
            for c in document["parts"]["model-outputs"].get("cases", [])
        ),
        "",
        "## Dependencies and CI",
        "",
        f"- Dependencies: {document['dependencies'].get('summary', '')}",
        f"- CI: {document['ci'].get('summary', '')}",
    ]
    if document["reasons"]:
        lines += ["", "## Why not Met", "", *(f"- {_cell(r)}" for r in document["reasons"])]
    return "\n".join(lines) + "\n"
