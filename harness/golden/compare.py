"""Tiered verdicts: identical → equivalent (or drifted) → changed; and stale, missing, unused, degenerate, skipped.

Two images are compared by three measures, each with the set's tolerance: phash16 bits (layout), mean absolute
pixel difference (colour and brightness) and SSIM (structure: blur, contrast, texture). Within all three is
equivalent, unless the run is on the machine class the golden was recorded on: there outputs are bit-identical
unless the code changed, so an in-tolerance difference is a small change, `drifted`, and fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.golden.manifest import GoldenEntry, GoldenSet, Tolerances
from harness.golden.measures import ImageMeasures, mean_abs_difference, phash_distance, ssim
from harness.golden.runner import CaseRun
from harness.golden.set_key import same_machine_class
from harness.golden.trace import Divergence, RecordedDivergence, first_divergence


class Verdict(StrEnum):
    IDENTICAL = "identical"  # pixels equal
    EQUIVALENT = "equivalent"  # within the set's tolerance, on another machine class than the recording's
    DRIFTED = "drifted"  # within tolerance but not identical on the recording's machine class: a small change
    CHANGED = "changed"  # beyond tolerance: behaviour changed
    STALE = "stale"  # the case's parameters changed since recording (not an output change)
    MISSING = "missing"  # no golden recorded for the case
    UNUSED = "unused"  # recorded but not run in a full run
    DEGENERATE = "degenerate"  # flat / near-uniform / NaN output: cannot be compared, never recorded
    SKIPPED = "skipped"  # could not run here (e.g. no CUDA device), with the reason
    ERRORED = "errored"  # generation raised: the runtime under test failed on this case (its one line kept)


PASSING = frozenset({Verdict.IDENTICAL, Verdict.EQUIVALENT})
_SEVERITY = [
    Verdict.IDENTICAL,
    Verdict.EQUIVALENT,
    Verdict.SKIPPED,
    Verdict.UNUSED,
    Verdict.STALE,
    Verdict.MISSING,
    Verdict.DRIFTED,
    Verdict.CHANGED,
    Verdict.DEGENERATE,
    Verdict.ERRORED,
]


def worst(verdicts: list[Verdict]) -> Verdict:
    return max(verdicts, key=_SEVERITY.index)


@dataclass(frozen=True)
class Judgement:
    """One image pair judged: the verdict, the three distances, and which measures went past their tolerance."""

    verdict: Verdict
    phash_distance: int
    mean_abs: float
    ssim: float
    beyond: tuple[str, ...] = ()


@dataclass
class ImageComparison:
    index: int
    verdict: Verdict
    actual: ImageMeasures | None = None
    golden: ImageMeasures | None = None
    golden_file: str | None = None
    phash_distance: int | None = None
    mean_abs: float | None = None
    note: str | None = None
    actual_file: Path | None = None  # the actual image's PNG, once a report folder holds it
    ssim: float | None = None
    beyond: tuple[str, ...] = ()  # the measures past their tolerance

    @classmethod
    def judged(
        cls, index: int, judgement: Judgement, actual: ImageMeasures, golden: ImageMeasures, golden_file: str | None
    ) -> ImageComparison:
        return cls(
            index,
            judgement.verdict,
            actual,
            golden,
            golden_file,
            judgement.phash_distance,
            judgement.mean_abs,
            ssim=judgement.ssim,
            beyond=judgement.beyond,
        )

    def describe(self, tolerances: Tolerances) -> str:
        """The distances against their tolerances, for a reason line."""
        ssim_text = "" if self.ssim is None else f", SSIM {self.ssim:.4f} (tolerance {tolerances.ssim:g})"
        return (
            f"phash16 distance {self.phash_distance} (tolerance {tolerances.phash_bits}), "
            f"mean abs {self.mean_abs or 0:.3f} (tolerance {tolerances.mean_abs:g}){ssim_text}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "verdict": str(self.verdict),
            "phash_distance": self.phash_distance,
            "mean_abs": None if self.mean_abs is None else round(self.mean_abs, 4),
            "ssim": None if self.ssim is None else round(self.ssim, 6),
            "beyond": list(self.beyond),
            "golden_file": self.golden_file,
            "actual": self.actual.to_dict() if self.actual else None,
            "golden": self.golden.to_dict() if self.golden else None,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageComparison:
        """The inverse of `to_dict` (actual_file is the report's business: see GoldenReport.from_document)."""
        return cls(
            index=int(data["index"]),
            verdict=Verdict(data["verdict"]),
            actual=ImageMeasures.from_dict(data["actual"]) if data.get("actual") else None,
            golden=ImageMeasures.from_dict(data["golden"]) if data.get("golden") else None,
            golden_file=data.get("golden_file"),
            phash_distance=data.get("phash_distance"),
            mean_abs=data.get("mean_abs"),
            note=data.get("note"),
            ssim=data.get("ssim"),
            beyond=tuple(data.get("beyond") or ()),
        )


@dataclass
class CaseVerdict:
    case_id: str
    verdict: Verdict
    images: list[ImageComparison] = field(default_factory=list)
    reason: str | None = None
    divergence: Divergence | RecordedDivergence | None = None
    seconds: float | None = None
    run: CaseRun | None = field(default=None, repr=False)  # kept for reports (actual images)
    quarantine: dict[str, Any] | None = None  # {reason, until, expired} when the case is quarantined
    noise: dict[str, Any] | None = None  # golden ab --noise-runs: how far the base's own reruns moved
    reference: str | None = None  # the accepted alternate judged against, when not the primary images

    @property
    def quarantined(self) -> bool:
        """Quarantined and not yet expired: it reports but does not fail."""
        return self.quarantine is not None and not self.quarantine["expired"]

    @property
    def quarantine_expired(self) -> bool:
        return self.quarantine is not None and bool(self.quarantine["expired"])

    def quarantine_note(self) -> str | None:
        if self.quarantine is None:
            return None
        if self.quarantine["expired"]:
            return (
                f"quarantine expired on {self.quarantine['until']} ({self.quarantine['reason']}): "
                "fix the case or extend its date"
            )
        return f"quarantined until {self.quarantine['until']}: {self.quarantine['reason']}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case_id,
            "verdict": str(self.verdict),
            "reason": self.reason,
            "divergence": self.divergence.describe() if self.divergence else None,
            "divergence_stage": self.divergence.stage if self.divergence else None,
            "seconds": None if self.seconds is None else round(self.seconds, 4),
            "quarantine": self.quarantine,
            "noise": self.noise,
            "reference": self.reference,
            "images": [image.to_dict() for image in self.images],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseVerdict:
        """The inverse of `to_dict`: a verdict as a report file recorded it (no run, so no images in memory)."""
        divergence = data.get("divergence")
        return cls(
            case_id=str(data["case"]),
            verdict=Verdict(data["verdict"]),
            images=[ImageComparison.from_dict(image) for image in data["images"]],
            reason=data.get("reason"),
            divergence=RecordedDivergence(data.get("divergence_stage"), divergence) if divergence else None,
            seconds=data.get("seconds"),
            quarantine=data.get("quarantine"),
            noise=data.get("noise"),
            reference=data.get("reference"),
        )


def compare_images(
    actual_image: Any,
    actual: ImageMeasures,
    golden_image: Any,
    golden: ImageMeasures,
    tolerances: Tolerances,
    *,
    same_environment: bool = False,
) -> Judgement:
    """The verdict for one image pair and the distances behind it.

    `same_environment`: the pair comes from the same machine class (the golden's recording fingerprint matches, or
    both images were made here), where any difference within tolerance is `drifted` rather than `equivalent`.
    """
    if actual.sha256 == golden.sha256:
        return Judgement(Verdict.IDENTICAL, 0, 0.0, 1.0)
    distance = phash_distance(actual.phash16, golden.phash16)
    mean_abs = mean_abs_difference(actual_image, golden_image)
    similarity = ssim(actual_image, golden_image)
    beyond = tuple(
        name
        for name, over in (
            ("phash16", distance > tolerances.phash_bits),
            ("mean abs", mean_abs > tolerances.mean_abs),
            ("SSIM", similarity < tolerances.ssim),
        )
        if over
    )
    if beyond:
        return Judgement(Verdict.CHANGED, distance, mean_abs, similarity, beyond)
    return Judgement(Verdict.DRIFTED if same_environment else Verdict.EQUIVALENT, distance, mean_abs, similarity)


def compare_case(
    run: CaseRun, golden_set: GoldenSet, tolerances: Tolerances, *, machine: dict[str, Any] | None = None
) -> CaseVerdict:
    """Judge one case's run against its recorded golden.

    `machine`: this run's fingerprint, when in-tolerance differences on the golden's own machine class are to be
    judged `drifted` (None: never). A case with an accepted alternate recorded on this machine class is judged
    against the alternate, strictly.
    """
    case_id = run.case.id
    degenerate = [(index, reason) for index, reason in enumerate(run.degenerate) if reason]
    if degenerate:
        index, reason = degenerate[0]
        images = [
            ImageComparison(i, Verdict.DEGENERATE, actual=m, note=run.degenerate[i]) for i, m in enumerate(run.measures)
        ]
        return CaseVerdict(
            case_id, Verdict.DEGENERATE, images, f"image {index}: {reason}", seconds=run.seconds, run=run
        )
    entry = golden_set.entries.get(case_id)
    if entry is None:
        images = [ImageComparison(i, Verdict.MISSING, actual=m) for i, m in enumerate(run.measures)]
        where = golden_set.manifest_path if golden_set.exists else f"{golden_set.manifest_path} (no set recorded)"
        return CaseVerdict(case_id, Verdict.MISSING, images, f"no golden in {where}", seconds=run.seconds, run=run)
    if entry.digest != run.case.digest():
        changed = _changed_params(entry, run.case.params())
        return CaseVerdict(
            case_id,
            Verdict.STALE,
            [],
            f"case parameters changed since recording: {changed}",
            seconds=run.seconds,
            run=run,
        )
    alternate = golden_set.alternate_for(entry, machine)
    reference = alternate.images if alternate is not None else entry.images
    if len(reference) != len(run.images):
        held_by = "golden" if alternate is None else f"alternate {alternate.name!r}"
        reason = f"{len(run.images)} images, {held_by} has {len(reference)}"
        return CaseVerdict(case_id, Verdict.CHANGED, [], reason, seconds=run.seconds, run=run)
    same_environment = alternate is not None or (
        machine is not None and same_machine_class(golden_set.recorded_on(entry), machine)
    )
    comparisons = []
    for index, ((name, golden), image, actual) in enumerate(zip(reference, run.images, run.measures, strict=True)):
        golden_image = golden_set.load_image(name, golden)
        judgement = compare_images(image, actual, golden_image, golden, tolerances, same_environment=same_environment)
        comparisons.append(ImageComparison.judged(index, judgement, actual, golden, name))
    verdict = worst([c.verdict for c in comparisons])
    result = CaseVerdict(case_id, verdict, comparisons, seconds=run.seconds, run=run)
    if alternate is not None:
        result.reference = f"accepted alternate {alternate.name!r} (recorded on this machine class)"
    if verdict is Verdict.DRIFTED:
        drifted = next(c for c in comparisons if c.verdict is Verdict.DRIFTED)
        result.reason = (
            f"image {drifted.index}: not bit-identical on the machine class the golden was recorded on, "
            f"though within tolerance ({drifted.describe(tolerances)})"
        )
    if verdict is Verdict.CHANGED:
        changed = next(c for c in comparisons if c.verdict is Verdict.CHANGED)
        result.reason = f"image {changed.index}: {', '.join(changed.beyond)} beyond tolerance — " + changed.describe(
            tolerances
        )
        stored = golden_set.load_traces(entry) if alternate is None else None  # traces follow the primary images
        if stored is not None and changed.index < len(stored):
            result.divergence = first_divergence(stored[changed.index], run.traces[changed.index])
    return result


def _changed_params(entry: GoldenEntry, params: dict[str, Any]) -> str:
    names = sorted(k for k in set(entry.params) | set(params) if entry.params.get(k) != params.get(k))
    return ", ".join(f"{k} {entry.params.get(k)!r} → {params.get(k)!r}" for k in names) or "digest differs"
