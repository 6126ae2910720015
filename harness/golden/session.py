"""A golden run: select cases (filter, shard), run them, judge them, find unused goldens, queue updates."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.config import HarnessConfig
from harness.errors import ConfigError
from harness.golden.cases import Case, load_cases
from harness.golden.compare import PASSING, CaseVerdict, Verdict
from harness.golden.environment import environment_key, fingerprint
from harness.golden.manifest import GoldenSet, PendingUpdate, Tolerances, UpdateQueue, load_golden_set
from harness.golden.runner import isolated_runtime, run_case
from harness.outcome import CheckResult, Outcome

UpdateMode = Literal["missing", "failed", "all"]
Progress = Callable[[Case], None]


@dataclass(frozen=True)
class Selection:
    """Which cases a run covers: id patterns (fnmatch) and a shard k/N."""

    patterns: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None

    @property
    def is_full(self) -> bool:
        return not self.patterns and self.shard is None

    def matches_id(self, case_id: str) -> bool:
        return not self.patterns or any(fnmatch.fnmatchcase(case_id, p) for p in self.patterns)

    def apply(self, cases: Sequence[Case]) -> list[Case]:
        chosen = [case for case in cases if self.matches_id(case.id)]
        if self.shard is not None:
            index, total = self.shard
            chosen = [case for position, case in enumerate(chosen) if position % total == index - 1]
        return chosen

    def to_dict(self) -> dict[str, Any]:
        return {"patterns": list(self.patterns), "shard": list(self.shard) if self.shard else None}


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    index, sep, total = text.partition("/")
    try:
        k, n = int(index), int(total)
    except ValueError:
        raise ConfigError(f"--shard expects k/N, got {text!r}") from None
    if not sep or n < 1 or not 1 <= k <= n:
        raise ConfigError(f"--shard expects k/N with 1 <= k <= N, got {text!r}")
    return k, n


@dataclass
class GoldenReport:
    """Everything a golden run found; renderers take it whole."""

    environment_key: str
    golden_dir: str
    tolerances: Tolerances
    verdicts: list[CaseVerdict]
    unused: list[str]
    selection: Selection
    recorded_ids: list[str]
    warn_unused: bool = False
    skipped_reason: str | None = None
    updated: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        counts = {str(v): 0 for v in Verdict}
        for verdict in self.verdicts:
            counts[str(verdict.verdict)] += 1
        counts[str(Verdict.UNUSED)] = len(self.unused)
        return counts

    def outcome(self) -> Outcome:
        if self.skipped_reason is not None:
            return Outcome.SKIPPED
        if not self.verdicts:
            return Outcome.INCONCLUSIVE
        failing = [v for v in self.verdicts if v.verdict not in PASSING and v.case_id not in self.updated]
        if failing or (self.unused and not self.warn_unused):
            return Outcome.FAILED
        return Outcome.PASSED

    def check_result(self) -> CheckResult:
        outcome = self.outcome()
        counts = {k: v for k, v in self.counts().items() if v}
        summary = f"{len(self.verdicts)} cases on {self.environment_key}: " + ", ".join(
            f"{n} {name}" for name, n in counts.items()
        )
        problems = [
            f"{v.case_id}: {v.verdict}"
            + (f" — {v.reason}" if v.reason else "")
            + (f"; {v.divergence.describe()}" if v.divergence else "")
            for v in self.verdicts
            if v.verdict not in PASSING and v.case_id not in self.updated
        ]
        problems += [f"{case_id}: unused golden (recorded, not run)" for case_id in self.unused]
        reason = self.skipped_reason or ("no case selected" if outcome is Outcome.INCONCLUSIVE else None)
        return CheckResult(
            check="golden",
            outcome=outcome,
            summary=summary if self.verdicts else "no golden case ran",
            reason=reason,
            figures={"counts": counts, "seconds": round(self.seconds, 3)},
            problems=tuple(problems),
        )


def _tolerances(cfg: HarnessConfig, golden_set: GoldenSet) -> Tolerances:
    bits = cfg["golden.phash_bits"]
    mean_abs = cfg["golden.mean_abs"]
    return Tolerances(
        phash_bits=golden_set.tolerances.phash_bits if bits is None else bits,
        mean_abs=golden_set.tolerances.mean_abs if mean_abs is None else mean_abs,
    )


def run_goldens(
    cfg: HarnessConfig,
    *,
    selection: Selection = Selection(),
    device: str = "cpu",
    precision: str = "fp32",
    update: UpdateMode | None = None,
    progress: Progress | None = None,
    case_source: Callable[[Path], list[Case]] = load_cases,
) -> GoldenReport:
    """Run the selected cases and judge them; with `update`, record the chosen ones (queued, flushed once)."""
    import time

    started = time.perf_counter()
    cases_dir = cfg.path("golden.cases_dir")
    goldens_dir = cfg.path("golden.goldens_dir")
    key = environment_key(device, precision)
    all_cases = case_source(cases_dir)
    chosen = selection.apply(all_cases)
    golden_set = load_golden_set(goldens_dir, key)
    tolerances = _tolerances(cfg, golden_set)
    report = GoldenReport(
        environment_key=key,
        golden_dir=str(golden_set.folder),
        tolerances=tolerances,
        verdicts=[],
        unused=[],
        selection=selection,
        recorded_ids=sorted(golden_set.entries),
        warn_unused=cfg["golden.warn_unused"],
    )
    if device == "cuda":
        from harness.golden.environment import cuda_available

        available, detail = cuda_available()
        if not available:
            report.skipped_reason = f"{detail}: the {key} set cannot be run here"
            report.verdicts = [CaseVerdict(c.id, Verdict.SKIPPED, reason=report.skipped_reason) for c in chosen]
            return report
    # recorded minus used, narrowed to what was selected
    defined = {case.id for case in all_cases}
    report.unused = (
        sorted(case_id for case_id in golden_set.entries if case_id not in defined and selection.matches_id(case_id))
        if selection.shard is None
        else []
    )
    queue = UpdateQueue(golden_set)
    threads = cfg["golden.num_threads"]
    from harness.golden.compare import compare_case

    with isolated_runtime(device, precision):
        for case in chosen:
            if progress is not None:
                progress(case)
            run = run_case(case, cases_dir, threads=threads)
            verdict = compare_case(run, golden_set, tolerances)
            report.verdicts.append(verdict)
            if update is not None and _wants_update(update, verdict.verdict):
                if verdict.verdict is Verdict.DEGENERATE:
                    continue  # never recorded
                queue.queue(PendingUpdate(case.id, case.params(), case.digest(), run.images, run.measures, run.traces))
    if update == "all" or update == "failed":
        for case_id in report.unused:
            queue.remove(case_id)
    if update is not None and queue:
        queue.recorded_with = fingerprint(device, threads)
        report.updated = sorted(queue.pending)
        if update in ("all", "failed"):
            report.updated += list(report.unused)
            report.unused = []
        report.written = [str(path) for path in queue.flush()]
    report.seconds = time.perf_counter() - started
    return report


def _wants_update(mode: UpdateMode, verdict: Verdict) -> bool:
    if mode == "all":
        return True
    if mode == "missing":
        return verdict is Verdict.MISSING
    return verdict not in PASSING
