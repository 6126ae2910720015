"""A golden run: select the cases, run and judge them, find unused goldens, queue updates and flush them once."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from harness.config import HarnessConfig
from harness.errors import CaseErrored, GoldenError
from harness.golden.cases import Case, load_cases, run_order
from harness.golden.compare import PASSING, CaseVerdict, Verdict, compare_case
from harness.golden.manifest import (
    ALTERNATE_NAME,
    GoldenEntry,
    PendingAlternate,
    PendingUpdate,
    Tolerances,
    UpdateQueue,
    load_golden_set,
)
from harness.golden.measures import ImageMeasures
from harness.golden.report import GoldenReport, UpdateChange, update_changes
from harness.golden.runner import CaseRun, isolated_runtime, run_case
from harness.golden.selection import Selection
from harness.golden.set_key import environment_key, fingerprint, machine_class

UpdateMode = Literal["missing", "failed", "all"]
# called before each case runs: the case, its 1-based position and how many cases the run will run
Progress = Callable[[Case, int, int], None]
# told each case's in-process run (or why it errored) as soon as it is made, inside the run's isolated runtime
CaseObserver = Callable[[Case, CaseRun | CaseErrored], None]


def run_goldens(
    cfg: HarnessConfig,
    *,
    selection: Selection = Selection(),
    device: str = "cpu",
    precision: str = "fp32",
    update: UpdateMode | None = None,
    force: bool = False,
    alternate: str | None = None,
    progress: Progress | None = None,
    case_source: Callable[[Path], list[Case]] = load_cases,
    alongside: Callable[[], AbstractContextManager[CaseObserver]] | None = None,
) -> GoldenReport:
    """Run the selected cases and judge them; with `update`, record the chosen ones (queued, flushed once).

    `alongside` opens, inside the run's isolated runtime, an observer told each case's run (the front ends' check
    makes the case through the API and the CLI against it), so the in-process images are made once for both.

    An update never rewrites an image that is identical or equivalent to its golden (no churn in review), unless
    `force`: `--all` without it re-records exactly what `--failed` does. What it wrote is in `report.changes`.
    `alternate`: record this machine class's images as the accepted alternate of that name for each selected case
    that is not identical to its golden (the primary images stay).
    """
    if alternate is not None and (update is not None or not ALTERNATE_NAME.match(alternate)):
        raise GoldenError(
            f"alternate {alternate!r}: a name matching {ALTERNATE_NAME.pattern}, without --missing/--failed/--all"
        )
    started = time.perf_counter()
    cases_dir = cfg.path("golden.cases_dir")
    goldens_dir = cfg.path("golden.goldens_dir")
    key = environment_key(device, precision)
    all_cases = case_source(cases_dir)
    chosen = selection.apply(all_cases)
    golden_set = load_golden_set(goldens_dir, key)
    tolerances = Tolerances.resolve(cfg, golden_set)
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
        from harness.golden.set_key import cuda_available

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
    here = fingerprint(device, threads)
    today = datetime.now(UTC).date()
    drift_machine = here if cfg["golden.drift"] == "fail" else None
    with isolated_runtime(device, precision, cases_dir), (alongside or nullcontext)() as observe:
        for position, case in enumerate(run_order(chosen), start=1):
            if progress is not None:
                progress(case, position, len(chosen))
            try:
                run = run_case(case, cases_dir, threads=threads)
            except CaseErrored as exc:
                if observe is not None:
                    observe(case, exc)
                errored = CaseVerdict(case.id, Verdict.ERRORED, reason=f"generation raised {exc}")
                errored.quarantine = case.quarantine.to_dict(today) if case.quarantine else None
                report.verdicts.append(errored)
                continue
            if observe is not None:
                observe(case, run)
            verdict = compare_case(run, golden_set, tolerances, machine=drift_machine)
            verdict.quarantine = case.quarantine.to_dict(today) if case.quarantine else None
            report.verdicts.append(verdict)
            if alternate is not None:
                _queue_alternate(queue, report, verdict, alternate, machine_class(here), run)
            if update is not None and _wants_update(update, verdict.verdict, force):
                if verdict.verdict is Verdict.DEGENERATE:
                    continue  # never recorded
                keep = {} if force else kept_images(verdict, golden_set.entries.get(case.id))
                if len(keep) == len(run.images) and golden_set.entries[case.id].digest == case.digest():
                    continue  # every image stays: nothing to write
                pending = PendingUpdate(
                    case.id,
                    case.params(),
                    case.digest(),
                    run.images,
                    run.measures,
                    run.traces,
                    machine_class(here),
                    keep,
                )
                queue.queue(pending)
                report.changes.extend(update_changes(verdict, golden_set.entries.get(case.id), pending))
    listed = {case.id: position for position, case in enumerate(chosen)}
    report.verdicts.sort(key=lambda verdict: listed[verdict.case_id])
    report.changes.sort(key=lambda change: listed[change.case_id])
    if update == "all" or update == "failed":
        for case_id in report.unused:
            queue.remove(case_id)
            report.changes.append(UpdateChange(case_id, None, "removed", note="no case defines it any more"))
    if alternate is not None and queue:
        report.updated = sorted(queue.alternates)
        report.written = [str(path) for path in queue.flush()]
    if update is not None and queue:
        # the set's fingerprint stands for the entries recorded without their own machine class, so it changes only
        # when the set is new or every entry is re-recorded now
        if not golden_set.recorded_with or set(golden_set.entries) <= set(queue.pending) | queue.removals:
            queue.recorded_with = here
        report.updated = sorted(queue.pending)
        if update in ("all", "failed"):
            report.updated += list(report.unused)
            report.unused = []
        report.written = [str(path) for path in queue.flush()]
    report.seconds = time.perf_counter() - started
    return report


def _queue_alternate(
    queue: UpdateQueue, report: GoldenReport, verdict: CaseVerdict, name: str, machine: dict[str, Any], run: Any
) -> None:
    """Queue this run's images as the case's accepted alternate `name`, when the case has a current golden that this
    machine class does not reproduce bit for bit."""
    if verdict.verdict is Verdict.IDENTICAL:
        return  # this machine class makes the golden (or its alternate) exactly: nothing to accept
    if verdict.verdict in (Verdict.MISSING, Verdict.STALE, Verdict.DEGENERATE):
        note = f"{verdict.verdict}: an alternate needs a recorded, current golden and a usable image; record the case"
        report.changes.append(UpdateChange(verdict.case_id, None, "skipped", note=note))
        return
    queue.queue_alternate(PendingAlternate(verdict.case_id, name, machine, run.images, run.measures))
    for image in verdict.images:
        report.changes.append(
            UpdateChange(
                verdict.case_id,
                image.index,
                "alternate",
                image.golden.sha256 if image.golden else None,
                image.actual.sha256 if image.actual else None,
                str(image.verdict),
                image.phash_distance,
                image.mean_abs,
                image.ssim,
                f"accepted as alternate {name!r} for this machine class",
            )
        )


def ci_is_set() -> bool:
    """CI as GitHub Actions and most CI services set it: present and not empty, 0 or false. Goldens are recorded
    locally and committed; an update that writes them from CI is refused unless asked for."""
    import os

    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _wants_update(mode: UpdateMode, verdict: Verdict, force: bool) -> bool:
    if mode == "all" and force:
        return True
    if mode == "missing":
        return verdict is Verdict.MISSING
    return verdict not in PASSING


def kept_images(verdict: CaseVerdict, entry: GoldenEntry | None) -> dict[int, tuple[str, ImageMeasures]]:
    """The recorded images a re-recording keeps: those identical or equivalent to what the run made.

    A stale case (its parameters changed) keeps none: its old images answer other parameters. A drifted image is
    rewritten: on its own machine class the set should be bit-identical again.
    """
    if entry is None or verdict.verdict is Verdict.STALE or len(entry.images) != len(verdict.images):
        return {}
    return {
        image.index: entry.images[image.index]
        for image in verdict.images
        if image.verdict in (Verdict.IDENTICAL, Verdict.EQUIVALENT)
    }
