"""`invariants check`: resolve every verifier, run it (or read this run's results), and judge each invariant."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig, repo_relative
from harness.errors import HarnessError, InvariantsError
from harness.invariants.registry import Invariant, VerifierRef, load_registry
from harness.invariants.snapshots import SNAPSHOTS, compare_snapshot
from harness.outcome import CheckResult, Finding, Outcome
from harness.output import finish_file_set
from harness.pytest_runner import junit_results, run_pytest

Progress = Callable[[str], None]


class InvariantStatus(StrEnum):
    VERIFIED = "verified"  # every verifier ran and passed
    VIOLATED = "violated"  # a verifier ran and failed
    UNVERIFIED = "unverified"  # no verifier, or one that does not exist
    NOT_RUN = "not run"  # verifiers exist but at least one did not run (absent from results, or skipped)


class VerifierStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not run"
    MISSING = "missing"


@dataclass
class VerifierOutcome:
    ref: VerifierRef
    status: VerifierStatus
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"verifier": str(self.ref), "status": str(self.status), "detail": self.detail}


@dataclass
class InvariantOutcome:
    invariant: Invariant
    status: InvariantStatus
    verifiers: list[VerifierOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        inv = self.invariant
        return {
            "id": inv.id,
            "title": inv.title,
            "surface": inv.surface,
            "severity": inv.severity,
            "introduced_in": inv.introduced_in,
            "status": str(self.status),
            "verifiers": [v.to_dict() for v in self.verifiers],
        }


def judge(invariant: Invariant, outcomes: list[VerifierOutcome]) -> InvariantStatus:
    if not outcomes or any(o.status is VerifierStatus.MISSING for o in outcomes):
        return InvariantStatus.UNVERIFIED
    if any(o.status is VerifierStatus.FAILED for o in outcomes):
        return InvariantStatus.VIOLATED
    if any(o.status is VerifierStatus.NOT_RUN for o in outcomes):
        return InvariantStatus.NOT_RUN
    return InvariantStatus.VERIFIED


# -- pytest -----------------------------------------------------------------------------------
def _split_node(node: str) -> tuple[str, str]:
    path, sep, rest = node.partition("::")
    if not sep or not path.endswith(".py") or not rest:
        raise InvariantsError(f"pytest verifier {node!r}: expected <file.py>::<test>")
    return path, rest


def collect_nodes(repo: Path, files: Iterable[str]) -> set[str]:
    """Node ids pytest collects from `files` (only the ones that exist)."""
    existing = sorted({f for f in files if (repo / f).is_file()})
    if not existing:
        return set()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *existing],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if result.returncode not in (0, 5):
        last = (result.stdout.strip().splitlines() or result.stderr.strip().splitlines() or ["?"])[-1]
        raise InvariantsError(f"pytest could not collect {', '.join(existing)}: {last}")
    return {line.strip() for line in result.stdout.splitlines() if "::" in line}


def _node_matches(node: str, collected_or_run: str) -> bool:
    return collected_or_run == node or collected_or_run.startswith(node + "[")


def read_junit(path: Path, repo: Path) -> dict[str, str]:
    """node id → passed / failed / not run, from a JUnit XML written by pytest."""
    try:
        return junit_results(path, repo)
    except HarnessError as exc:
        raise InvariantsError(str(exc)) from None


def _pytest_outcomes(
    refs: list[VerifierRef], repo: Path, junits: tuple[Path, ...], run: bool
) -> dict[str, VerifierOutcome]:
    """Each pytest verifier resolved and judged. With `junits` (the results this workflow just wrote), a verifier in
    them was collected by that run, so pytest collects only the files of verifiers they lack: missing, or not run.
    A node in several of them is failed if one says so, else passed if one says so."""
    rank = {"not run": 0, "passed": 1, "failed": 2}
    reported: dict[str, str] = {}
    for path in junits:
        for node, status in read_junit(path, repo).items():
            if rank.get(status, 2) >= rank.get(reported.get(node, "not run"), 2):
                reported[node] = status

    def in_junit(ref: VerifierRef) -> bool:
        return any(_node_matches(ref.target, node) for node in reported)

    collected = collect_nodes(repo, {_split_node(ref.target)[0] for ref in refs if not in_junit(ref)})
    outcomes: dict[str, VerifierOutcome] = {}
    resolved = []
    for ref in refs:
        path, _ = _split_node(ref.target)
        if not (repo / path).is_file():
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.MISSING, f"{path} does not exist")
        elif not in_junit(ref) and not any(_node_matches(ref.target, node) for node in collected):
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.MISSING, "pytest collects no such test")
        else:
            resolved.append(ref)
    if not resolved:
        return outcomes
    if junits:
        results = reported
    elif run:
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "junit.xml"
            run_pytest(repo, *sorted({ref.target for ref in resolved}), junit=report)
            results = read_junit(report, repo) if report.is_file() else {}
    else:
        results = {}
    for ref in resolved:
        matched = [status for node, status in results.items() if _node_matches(ref.target, node)]
        if not matched:
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.NOT_RUN, "not in this run's results")
        elif "failed" in matched:
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.FAILED, f"{matched.count('failed')} failed")
        elif "not run" in matched:
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.NOT_RUN, "skipped")
        else:
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.PASSED, f"{len(matched)} passed")
    return outcomes


# -- golden -----------------------------------------------------------------------------------
def _golden_outcomes(
    refs: list[VerifierRef], cfg: HarnessConfig, golden_report: Path | None, run: bool, progress: Progress | None
) -> dict[str, VerifierOutcome]:
    from harness.golden.cases import load_cases
    from harness.golden.compare import PASSING, Verdict

    if not refs:
        return {}
    case_ids = [case.id for case in load_cases(cfg.path("golden.cases_dir"))]
    outcomes: dict[str, VerifierOutcome] = {}
    matches = {ref.target: [c for c in case_ids if fnmatch.fnmatchcase(c, ref.target)] for ref in refs}
    wanted = sorted({case for found in matches.values() for case in found})
    verdicts: dict[str, str] = {}
    if golden_report is not None:
        from harness.golden.document import read_report

        verdicts = {v.case_id: str(v.verdict) for v in read_report(golden_report).verdicts}
    elif run and wanted:
        from harness.golden.selection import Selection
        from harness.golden.session import run_goldens

        if progress:
            progress(f"golden: running {len(wanted)} cases")
        report = run_goldens(cfg, selection=Selection(tuple(wanted)))
        verdicts = {v.case_id: str(v.verdict) for v in report.verdicts}
    for ref in refs:
        found = matches[ref.target]
        if not found:
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.MISSING, "no golden case matches")
            continue
        ran = {case: verdicts[case] for case in found if case in verdicts}
        failing = sorted(case for case, verdict in ran.items() if Verdict(verdict) not in PASSING)
        if failing:
            detail = ", ".join(f"{case} {ran[case]}" for case in failing)
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.FAILED, detail)
        elif len(ran) < len(found):
            missing = ", ".join(sorted(set(found) - set(ran)))
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.NOT_RUN, f"not run: {missing}")
        else:
            outcomes[ref.target] = VerifierOutcome(
                ref, VerifierStatus.PASSED, f"{len(found)} cases identical/equivalent"
            )
    return outcomes


# -- snapshots --------------------------------------------------------------------------------
def _snapshot_outcomes(refs: list[VerifierRef], snapshots_dir: Path, run: bool) -> dict[str, VerifierOutcome]:
    finish_file_set(snapshots_dir)  # a `snapshot --update` killed after it committed: its texts are the snapshots
    outcomes: dict[str, VerifierOutcome] = {}
    for ref in refs:
        snapshot = SNAPSHOTS.get(ref.target)
        if snapshot is None:
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.MISSING, "no such snapshot")
        elif not snapshot.path(snapshots_dir).is_file():
            where = snapshot.path(snapshots_dir)
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.MISSING, f"{where} not committed")
        elif not run:
            outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.NOT_RUN, "not compared")
        else:
            result = compare_snapshot(snapshot, snapshots_dir)
            if result.status == "match":
                detail = f"matches ({result.detail})" if result.detail else "matches"
                outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.PASSED, detail)
            elif result.status == "differs":
                outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.FAILED, "differs:\n" + result.diff)
            else:
                outcomes[ref.target] = VerifierOutcome(ref, VerifierStatus.FAILED, result.detail)
    return outcomes


# -- the check --------------------------------------------------------------------------------
_ID_LINE = re.compile(r"""^\s*id\s*=\s*["'](?P<id>[^"']+)["']""")


@dataclass(frozen=True)
class Places:
    """Where an invariant's problem is shown: its `id = …` line of the registry, or a snapshot file at fault
    (paths as the repository shows them)."""

    registry: str
    id_lines: Mapping[str, int]
    snapshots: Mapping[str, str]  # snapshot name → its committed file


def locate_places(registry: Path, snapshots_dir: Path, repo_root: Path) -> Places:
    """Each invariant's `id = "INV-…"` line of `registry`, and each snapshot's file (an unreadable registry gives
    no lines: its problems are then shown on the file as a whole)."""
    try:
        lines = registry.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    id_lines: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        match = _ID_LINE.match(line)
        if match:
            id_lines.setdefault(match.group("id"), number)
    snapshots = {name: repo_relative(snapshot.path(snapshots_dir), repo_root) for name, snapshot in SNAPSHOTS.items()}
    return Places(repo_relative(registry, repo_root), id_lines, snapshots)


_RULES = {
    InvariantStatus.VIOLATED: "violated",
    InvariantStatus.UNVERIFIED: "unverified",
    InvariantStatus.NOT_RUN: "not-run",
}


@dataclass
class InvariantsReport:
    outcomes: list[InvariantOutcome]
    places: Places | None = None  # None: the problems are not placed in files

    def check_result(self) -> CheckResult:
        counts: dict[str, int] = {str(s): 0 for s in InvariantStatus}
        for outcome in self.outcomes:
            counts[str(outcome.status)] += 1
        blocking = [o for o in self.outcomes if o.invariant.blocking and o.status is not InvariantStatus.VERIFIED]
        problems = tuple(
            f"{o.invariant.id} ({o.invariant.severity}) {o.status}: "
            + "; ".join(
                f"{v.ref} {v.status}" + (f" ({v.detail.splitlines()[0]})" if v.detail else "")
                for v in o.verifiers
                if v.status is not VerifierStatus.PASSED
            )
            for o in self.outcomes
            if o.status is not InvariantStatus.VERIFIED
        )
        unverified = [o for o in self.outcomes if o.status is not InvariantStatus.VERIFIED]
        findings: tuple[Finding, ...] = ()
        if self.places is not None:
            findings = tuple(_placed(o, text, self.places) for o, text in zip(unverified, problems, strict=True))
        summary = f"{counts['verified']}/{len(self.outcomes)} invariants verified" + "".join(
            f", {n} {name}" for name, n in counts.items() if n and name != "verified"
        )
        return CheckResult(
            check="invariants",
            outcome=Outcome.FAILED if blocking else Outcome.PASSED,
            summary=summary,
            figures={"counts": counts, "invariants": [o.to_dict() for o in self.outcomes]},
            problems=problems,
            findings=findings,
        )


def _placed(outcome: InvariantOutcome, text: str, where: Places) -> Finding:
    """A snapshot that differs from the code is the file at fault; anything else (a snapshot not committed
    included: there is no file to point at) is shown at the invariant's entry of the registry. An advisory
    invariant fails nothing, so its finding is a warning at most."""
    rule = _RULES[outcome.status]
    level = None if outcome.invariant.blocking else "warning"
    for verifier in outcome.verifiers:
        snapshot = where.snapshots.get(verifier.ref.target) if verifier.ref.kind == "snapshot" else None
        if snapshot and verifier.status is VerifierStatus.FAILED:
            return Finding(rule, text, snapshot, level=level)
    return Finding(rule, text, where.registry, where.id_lines.get(outcome.invariant.id), level=level)


def check_invariants(
    cfg: HarnessConfig,
    *,
    registry: Path | None = None,
    junit: Path | Sequence[Path] | None = None,
    golden_report: Path | None = None,
    run: bool = True,
    progress: Progress | None = None,
) -> InvariantsReport:
    """Validate the registry, resolve and run (or read) every verifier, and judge each invariant. `junit` is this
    run's JUnit XML, or several when the workflow split its tests over jobs."""
    junits = (junit,) if isinstance(junit, Path) else tuple(junit or ())
    registry = registry or cfg.path("invariants.registry")
    invariants = load_registry(registry)
    refs = [ref for inv in invariants for ref in inv.verified_by]
    by_kind: dict[str, list[VerifierRef]] = {"pytest": [], "golden": [], "snapshot": []}
    for ref in refs:
        if ref not in by_kind[ref.kind]:
            by_kind[ref.kind].append(ref)
    if progress:
        shown = ", ".join(str(path) for path in junits)
        progress(f"pytest: {len(by_kind['pytest'])} verifiers" + (f" from {shown}" if junits else ""))
    results: dict[tuple[str, str], VerifierOutcome] = {}
    for target, outcome in _pytest_outcomes(by_kind["pytest"], cfg.repo_root, junits, run).items():
        results[("pytest", target)] = outcome
    for target, outcome in _golden_outcomes(by_kind["golden"], cfg, golden_report, run, progress).items():
        results[("golden", target)] = outcome
    for target, outcome in _snapshot_outcomes(by_kind["snapshot"], cfg.path("invariants.snapshots_dir"), run).items():
        results[("snapshot", target)] = outcome
    outcomes = []
    for invariant in invariants:
        verifier_outcomes = [results[(ref.kind, ref.target)] for ref in invariant.verified_by]
        outcomes.append(InvariantOutcome(invariant, judge(invariant, verifier_outcomes), verifier_outcomes))
    return InvariantsReport(outcomes, locate_places(registry, cfg.path("invariants.snapshots_dir"), cfg.repo_root))
