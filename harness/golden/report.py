"""The golden report value: every case's verdict, and the one home of the rules that turn verdicts into an outcome.

A single run, a report read back from golden.json and a merge of shard reports all derive their counts, outcome
and check result here, from the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import GoldenError
from harness.golden.compare import PASSING, CaseVerdict, Verdict
from harness.golden.manifest import Tolerances
from harness.golden.selection import Selection
from harness.outcome import CheckResult, Outcome

DOCUMENT_SCHEMA_VERSION = 1
DOCUMENT_KIND = "serena-golden-report"
ACTUAL_DIR = "actual"  # a report folder keeps each case's actual images here, as <case>-<index>.png
# zlib level of the PNGs a report writes (actual images, differences, comment thumbnails): about three times faster
# than PIL's default 6 on these images, and about a tenth larger. Goldens themselves keep the default.
REPORT_PNG_LEVEL = 3


@dataclass(frozen=True)
class UpdateChange:
    """One thing a golden update wrote: an image recorded new or replaced, or a case removed."""

    case_id: str
    index: int | None  # the image; None for a whole case (removed)
    action: str  # "new", "replaced" or "removed"
    old_sha256: str | None = None
    new_sha256: str | None = None
    verdict: str | None = None  # the image's verdict before the update
    phash_distance: int | None = None
    mean_abs: float | None = None
    ssim: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case_id,
            "index": self.index,
            "action": self.action,
            "old_sha256": self.old_sha256,
            "new_sha256": self.new_sha256,
            "verdict": self.verdict,
            "phash_distance": self.phash_distance,
            "mean_abs": None if self.mean_abs is None else round(self.mean_abs, 4),
            "ssim": None if self.ssim is None else round(self.ssim, 6),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpdateChange:
        return cls(
            case_id=str(data["case"]),
            index=data.get("index"),
            action=str(data["action"]),
            old_sha256=data.get("old_sha256"),
            new_sha256=data.get("new_sha256"),
            verdict=data.get("verdict"),
            phash_distance=data.get("phash_distance"),
            mean_abs=data.get("mean_abs"),
            ssim=data.get("ssim"),
            note=data.get("note"),
        )


def update_changes(verdict: CaseVerdict, entry: Any, pending: Any) -> list[UpdateChange]:
    """What re-recording one case writes, image by image (kept images are not changes)."""
    changes = []
    compared = {image.index: image for image in verdict.images}
    for index, measures in enumerate(pending.measures):
        if index in pending.keep:
            continue
        old = entry.images[index][1] if entry is not None and index < len(entry.images) else None
        image = compared.get(index)
        note = None
        if verdict.verdict is Verdict.STALE:
            note = verdict.reason
        elif old is None:
            note = "no golden before" if entry is None else f"image {index} is new (was {len(entry.images)} images)"
        changes.append(
            UpdateChange(
                verdict.case_id,
                index,
                "new" if old is None else "replaced",
                old.sha256 if old else None,
                measures.sha256,
                str(image.verdict if image else verdict.verdict),
                image.phash_distance if image else None,
                image.mean_abs if image else None,
                image.ssim if image else None,
                note,
            )
        )
    if entry is not None and len(entry.images) > len(pending.measures):
        for index in range(len(pending.measures), len(entry.images)):
            changes.append(
                UpdateChange(
                    verdict.case_id, index, "removed", entry.images[index][1].sha256, note="the case makes fewer images"
                )
            )
    return changes


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
    changes: list[UpdateChange] = field(default_factory=list)  # what an update wrote, image by image

    def counts(self) -> dict[str, int]:
        counts = {str(v): 0 for v in Verdict}
        for verdict in self.verdicts:
            counts[str(verdict.verdict)] += 1
        counts[str(Verdict.UNUSED)] = len(self.unused)
        return counts

    def failing(self) -> list[CaseVerdict]:
        """Verdicts that fail the run: neither identical nor equivalent, not re-recorded by this run and not under
        quarantine; and every case whose quarantine has expired."""
        return [
            v
            for v in self.verdicts
            if v.quarantine_expired
            or (v.verdict not in PASSING and v.case_id not in self.updated and not v.quarantined)
        ]

    def quarantined(self) -> list[CaseVerdict]:
        """Cases under a quarantine that has not expired, whatever their verdict."""
        return [v for v in self.verdicts if v.quarantined]

    def outcome(self) -> Outcome:
        if self.skipped_reason is not None:
            return Outcome.SKIPPED
        if not self.verdicts:
            return Outcome.INCONCLUSIVE
        if self.failing() or (self.unused and not self.warn_unused):
            return Outcome.FAILED
        return Outcome.PASSED

    def reason(self) -> str | None:
        """Why the outcome is skipped or inconclusive; None otherwise."""
        if self.skipped_reason is not None:
            return self.skipped_reason
        return "no case selected" if self.outcome() is Outcome.INCONCLUSIVE else None

    def check_result(self) -> CheckResult:
        counts = {k: v for k, v in self.counts().items() if v}
        summary = f"{len(self.verdicts)} cases on {self.environment_key}: " + ", ".join(
            f"{n} {name}" for name, n in counts.items()
        )
        if quarantined := self.quarantined():
            summary += f" ({len(quarantined)} quarantined, not failing: {', '.join(v.case_id for v in quarantined)})"
        problems = [
            f"{v.case_id}: {v.verdict}"
            + (f" — {v.reason}" if v.reason else "")
            + (f"; {v.divergence.describe()}" if v.divergence else "")
            + (f"; {v.quarantine_note()}" if v.quarantine_expired else "")
            for v in self.failing()
        ]
        problems += [f"{case_id}: unused golden (recorded, not run)" for case_id in self.unused]
        return CheckResult(
            check="golden",
            outcome=self.outcome(),
            summary=summary if self.verdicts else "no golden case ran",
            reason=self.reason(),
            figures={
                "counts": counts,
                "seconds": round(self.seconds, 3),
                "quarantined": [v.case_id for v in self.quarantined()],
            },
            problems=tuple(problems),
        )

    # -- the document (golden.json) --------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """The versioned JSON form (schema_version 1); actual images as `actual/<name>` inside the report folder."""
        cases = []
        for verdict in self.verdicts:
            case = verdict.to_dict()
            for image, entry in zip(verdict.images, case["images"], strict=True):
                if image.actual_file is not None:
                    entry["actual_file"] = f"{ACTUAL_DIR}/{image.actual_file.name}"
            cases.append(case)
        return {
            "schema_version": DOCUMENT_SCHEMA_VERSION,
            "kind": DOCUMENT_KIND,
            "environment_key": self.environment_key,
            "golden_dir": self.golden_dir,
            "tolerances": self.tolerances.to_dict(),
            "selection": self.selection.to_dict(),
            "outcome": str(self.outcome()),
            "reason": self.reason(),
            "counts": self.counts(),
            "seconds": round(self.seconds, 3),
            "warn_unused": self.warn_unused,
            "recorded_ids": self.recorded_ids,
            "unused": self.unused,
            "updated": self.updated,
            "changes": [change.to_dict() for change in self.changes],
            "cases": cases,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any], folder: Path) -> GoldenReport:
        """The report a golden.json in `folder` records; its actual images are the files under `folder`.

        The stored outcome, reason and counts are not read: they are derived again, by the same rules.
        """
        verdicts = []
        for case in document["cases"]:
            verdict = CaseVerdict.from_dict(case)
            for image, entry in zip(verdict.images, case["images"], strict=True):
                if entry.get("actual_file"):
                    image.actual_file = folder / entry["actual_file"]
            verdicts.append(verdict)
        return cls(
            environment_key=str(document["environment_key"]),
            golden_dir=str(document["golden_dir"]),
            tolerances=Tolerances.from_dict(document["tolerances"]),
            verdicts=verdicts,
            unused=list(document["unused"]),
            selection=Selection.from_dict(document["selection"]),
            recorded_ids=list(document["recorded_ids"]),
            warn_unused=bool(document["warn_unused"]),
            # in a document, the reason of a skipped outcome is why the run was skipped
            skipped_reason=document.get("reason") if document["outcome"] == str(Outcome.SKIPPED) else None,
            updated=list(document.get("updated") or []),
            changes=[UpdateChange.from_dict(change) for change in document.get("changes") or []],
            seconds=float(document["seconds"]),
        )

    # -- shards ------------------------------------------------------------------------------------
    @classmethod
    def merge(cls, reports: Sequence[GoldenReport]) -> GoldenReport:
        """Shard reports as one: their inputs combined, then judged by the same rules as a single run.

        Unused goldens are recorded minus run over all shards, once the shards of a full suite are all present.
        """
        if not reports:
            raise GoldenError("golden merge needs at least one report")
        keys = {report.environment_key for report in reports}
        if len(keys) != 1:
            raise GoldenError(f"cannot merge reports of different environments: {', '.join(sorted(keys))}")
        verdicts: list[CaseVerdict] = []
        seen: set[str] = set()
        for report in reports:
            for verdict in report.verdicts:
                if verdict.case_id in seen:
                    raise GoldenError(f"case {verdict.case_id!r} appears in more than one shard report")
                seen.add(verdict.case_id)
                verdicts.append(verdict)
        shards = [report.selection.shard for report in reports]
        if all(shards):
            totals = {total for _, total in shards}  # type: ignore[misc]
            if len(totals) != 1:
                raise GoldenError(f"cannot merge shards of different splits: of {', '.join(map(str, sorted(totals)))}")
            (total,) = totals
            missing = sorted(set(range(1, total + 1)) - {index for index, _ in shards})  # type: ignore[misc]
            if missing:
                named = ", ".join(f"{index}/{total}" for index in missing)
                raise GoldenError(f"golden merge: shard {named} missing; a merge of part of a suite would pass it")
        recorded = sorted(set().union(*(report.recorded_ids for report in reports)))
        if _covers_every_shard([report.selection for report in reports]):
            unused = sorted(case_id for case_id in recorded if case_id not in seen)
        else:
            unused = sorted({case_id for report in reports for case_id in report.unused})
        # skipped only when every shard was (e.g. no CUDA device anywhere); the distinct reasons, in order
        skipped = all(report.skipped_reason is not None for report in reports)
        skip_reasons = dict.fromkeys(report.skipped_reason for report in reports)
        first = reports[0]
        return cls(
            environment_key=first.environment_key,
            golden_dir=first.golden_dir,
            tolerances=first.tolerances,
            verdicts=sorted(verdicts, key=lambda v: v.case_id),
            unused=unused,
            selection=Selection(merged_from=len(reports)),
            recorded_ids=recorded,
            warn_unused=all(report.warn_unused for report in reports),
            skipped_reason="; ".join(r for r in skip_reasons if r) if skipped else None,
            updated=list(dict.fromkeys(case_id for report in reports for case_id in report.updated)),
            changes=[change for report in reports for change in report.changes],
            seconds=sum(report.seconds for report in reports),
        )


def _covers_every_shard(selections: Sequence[Selection]) -> bool:
    """Whether the selections are the shards 1..N of one unfiltered suite (so every case ran somewhere)."""
    if any(selection.patterns for selection in selections):
        return False
    shards = [selection.shard for selection in selections if selection.shard is not None]
    totals = {total for _, total in shards}
    if len(shards) != len(selections) or len(totals) != 1:
        return False
    [total] = totals
    return {index for index, _ in shards} == set(range(1, total + 1))
