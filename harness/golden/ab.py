"""`golden ab --base REF`: the same cases on the base commit (a git worktree, its own process) and the working tree.

Both sides run on this machine in fresh processes, so no stored goldens are needed and no cross-platform drift
enters the verdict. With `noise_runs`, the base runs that many more times: where its reruns are not bit-identical
(a GPU, say), each case's head-vs-base distance is judged against its base-vs-base distance, the old-twice trick of
differential testing: within the base's own noise is equivalent, beyond it but within tolerance drifted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig
from harness.errors import ConfigError, GoldenError, RuntimeFailure
from harness.git import GitError, git
from harness.git import worktree as git_worktree
from harness.golden.cases import Case, init_image, load_cases
from harness.golden.compare import CaseVerdict, ImageComparison, Judgement, Verdict, compare_images, worst
from harness.golden.manifest import Tolerances
from harness.golden.measures import (
    degenerate_reason,
    mean_abs_difference,
    measure,
    phash_distance,
    pixel_sha256,
    ssim,
)
from harness.golden.report import GoldenReport
from harness.golden.runner import STYLES_FILE, CaseRun
from harness.golden.selection import Selection
from harness.golden.trace import first_divergence, load_traces

WORKER = Path(__file__).with_name("ab_worker.py")


@dataclass(frozen=True)
class Noise:
    """How far the base's reruns of a case moved from its first run: the worst over reruns and images."""

    phash_distance: int
    mean_abs: float
    ssim: float
    runs: int

    @property
    def silent(self) -> bool:
        """Every rerun bit-identical: the base is deterministic here."""
        return self.phash_distance == 0 and self.mean_abs == 0.0 and self.ssim == 1.0

    def covers(self, judgement: Judgement) -> bool:
        """Whether a head-vs-base distance is no larger than the base-vs-base one, by every measure."""
        return (
            judgement.phash_distance <= self.phash_distance
            and judgement.mean_abs <= self.mean_abs
            and judgement.ssim >= self.ssim
        )

    def describe(self) -> str:
        return (
            f"{self.runs} rerun(s): phash16 up to {self.phash_distance} bits, mean abs up to {self.mean_abs:.3f}, "
            f"SSIM down to {self.ssim:.4f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "phash_distance": self.phash_distance,
            "mean_abs": round(self.mean_abs, 4),
            "ssim": round(self.ssim, 6),
        }


Progress = Callable[[str], None]


def resolve_base(repo: Path, ref: str) -> str:
    """The commit `ref` names; ConfigError (a usage error) when this clone does not have it."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except GitError:
        raise ConfigError(
            f"--base {ref!r}: no such commit here (a shallow clone? fetch with full history: fetch-depth 0)"
        ) from None


class CasesDidNotRun(RuntimeFailure):
    """One side of the A/B could not run its cases; `side` says which (base or head)."""

    def __init__(self, message: str, side: str) -> None:
        super().__init__(message)
        self.side = side


def _run_worker(serena_root: Path, job_file: Path, out: Path, label: str, *, side: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(WORKER), "--serena-root", str(serena_root), "--job", str(job_file), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=serena_root,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise CasesDidNotRun(f"{label}: the cases could not run ({last})", side)
    return json.loads((out / "done.json").read_text(encoding="utf-8"))


def run_ab(
    cfg: HarnessConfig,
    base_ref: str,
    *,
    selection: Selection = Selection(),
    work_dir: Path | None = None,
    progress: Progress | None = None,
    noise_runs: int = 0,
) -> GoldenReport:
    """Run the selected cases on `base_ref` and on the working tree; judge head against base image by image.

    `noise_runs`: run the base this many more times and judge each case against the base's own rerun distance.
    """
    if noise_runs < 0:
        raise ConfigError(f"--noise-runs {noise_runs}: expected 0 or more")
    import time

    started = time.perf_counter()
    repo = cfg.repo_root
    base_sha = resolve_base(repo, base_ref)
    cases_dir = cfg.path("golden.cases_dir")
    cases = selection.apply(load_cases(cases_dir))
    if not cases:
        raise GoldenError("golden ab: no case matches the selection")
    tolerances = Tolerances.resolve(cfg, None)  # no recorded set: both sides run fresh
    root = Path(work_dir or tempfile.mkdtemp(prefix="serena-ab-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    job = {"threads": cfg["golden.num_threads"], "cases": [], "styles_file": str(cases_dir / STYLES_FILE)}
    (root / "init").mkdir(exist_ok=True)
    for case in cases:
        entry = {"id": case.id, "params": case.params()}
        if case.mode == "img2img":
            init_file = root / "init" / f"{case.id}.png"
            init_image(case, cases_dir).save(init_file, "PNG")
            entry["init_file"] = str(init_file)
            if case.mask_image is not None:
                entry["mask_file"] = str(cases_dir / case.mask_image)
        job["cases"].append(entry)
    job_file = root / "job.json"
    job_file.write_text(json.dumps(job), encoding="utf-8")
    with git_worktree(repo, base_sha, root / "base-worktree") as checkout:
        if progress:
            progress(f"base {base_sha[:10]}: running {len(cases)} cases")
        base = _run_worker(checkout, job_file, root / "base", f"base {base_ref}", side="base")
        reruns = []
        for run in range(1, noise_runs + 1):
            if progress:
                progress(f"base {base_sha[:10]}: rerun {run} of {noise_runs} (noise)")
            folder = f"base-rerun-{run}"
            reruns.append((folder, _run_worker(checkout, job_file, root / folder, f"base {base_ref}", side="base")))
        if progress:
            progress(f"working tree: running {len(cases)} cases")
        head = _run_worker(repo, job_file, root / "head", "working tree", side="head")
    # both sides ran here, on one machine class: an in-tolerance difference is drifted unless configured otherwise
    same_environment = cfg["golden.drift"] == "fail"
    verdicts = []
    for case in cases:
        noise = _base_noise(case.id, base, reruns, root) if reruns else None
        verdicts.append(
            _judge(case, base["cases"][case.id], head["cases"][case.id], root, tolerances, same_environment, noise)
        )
    report = GoldenReport(
        environment_key=f"ab {base_sha[:10]}..working-tree",
        golden_dir=str(root / "base"),
        tolerances=tolerances,
        verdicts=verdicts,
        unused=[],
        selection=selection,
        recorded_ids=[case.id for case in cases],
    )
    report.seconds = time.perf_counter() - started
    return report


def _load(root: Path, side: str, name: str) -> Any:
    from PIL import Image

    with Image.open(root / side / name) as image:
        return image.convert("RGB")


def _base_noise(case_id: str, base: dict, reruns: list[tuple[str, dict]], root: Path) -> Noise | None:
    """How far the base's reruns of one case are from its first run (the worst over reruns and images); None when a
    rerun errored or made another number of images (no noise figure can be had)."""
    first = base["cases"][case_id]
    if "error" in first:
        return None
    worst = Noise(0, 0.0, 1.0, len(reruns))
    for folder, rerun in reruns:
        data = rerun["cases"][case_id]
        if "error" in data or len(data["images"]) != len(first["images"]):
            return None
        for name, other in zip(first["images"], data["images"], strict=True):
            image, again = _load(root, "base", name), _load(root, folder, other)
            if pixel_sha256(image) == pixel_sha256(again):
                continue
            worst = Noise(
                max(worst.phash_distance, phash_distance(measure(image).phash16, measure(again).phash16)),
                max(worst.mean_abs, mean_abs_difference(image, again)),
                min(worst.ssim, ssim(image, again)),
                len(reruns),
            )
    return worst


def _judge(
    case: Case,
    base: dict,
    head: dict,
    root: Path,
    tolerances: Tolerances,
    same_environment: bool,
    noise: Noise | None = None,
) -> CaseVerdict:
    errors = [
        f"{side}: generation raised {data['error']}"
        for side, data in (("base", base), ("working tree", head))
        if "error" in data
    ]
    if errors:
        return CaseVerdict(case.id, Verdict.ERRORED, reason="; ".join(errors))

    head_images = [_load(root, "head", name) for name in head["images"]]
    head_measures = [measure(image) for image in head_images]
    run = CaseRun(case, head_images, head_measures, [], [], 0.0)
    degenerate = [degenerate_reason(image, m) for image, m in zip(head_images, head_measures, strict=True)]
    if any(degenerate):
        reason = next(r for r in degenerate if r)
        return CaseVerdict(case.id, Verdict.DEGENERATE, reason=f"working tree: {reason}", run=run)
    if len(base["images"]) != len(head["images"]):
        reason = f"working tree made {len(head['images'])} images, base {len(base['images'])}"
        return CaseVerdict(case.id, Verdict.CHANGED, reason=reason, run=run)
    comparisons = []
    for index, (name, image, measures) in enumerate(zip(base["images"], head_images, head_measures, strict=True)):
        base_image = _load(root, "base", name)
        base_measures = measure(base_image)
        # a base whose reruns differ is no one machine class for this case: its noise decides instead
        noisy = noise is not None and not noise.silent
        judgement = compare_images(
            image, measures, base_image, base_measures, tolerances, same_environment=same_environment and not noisy
        )
        if noisy and judgement.verdict is Verdict.EQUIVALENT and not noise.covers(judgement):
            judgement = replace(judgement, verdict=Verdict.DRIFTED)
        comparisons.append(ImageComparison.judged(index, judgement, measures, base_measures, name))
    result = CaseVerdict(case.id, worst([c.verdict for c in comparisons]), comparisons, run=run)
    result.noise = noise.to_dict() if noise is not None else None
    notes = []
    for side, data in (("base", base), ("working tree", head)):
        if data["skipped_overrides"]:
            notes.append(f"{side} does not know option(s) {', '.join(data['skipped_overrides'])}")
    if result.verdict is Verdict.DRIFTED:
        drifted = next(c for c in comparisons if c.verdict is Verdict.DRIFTED)
        beyond = f"beyond the base's own rerun noise ({noise.describe()})" if noise and not noise.silent else ""
        notes.insert(
            0,
            f"image {drifted.index}: not bit-identical, within tolerance{' but ' + beyond if beyond else ''} — "
            + drifted.describe(tolerances),
        )
    elif result.verdict is Verdict.EQUIVALENT and noise is not None:
        notes.insert(0, f"within the base's own rerun noise ({noise.describe()})")
    if result.verdict is Verdict.CHANGED:
        changed = next(c for c in comparisons if c.verdict is Verdict.CHANGED)
        notes.insert(
            0, f"image {changed.index}: {', '.join(changed.beyond)} beyond tolerance — " + changed.describe(tolerances)
        )
        if base["trace"] and head["trace"]:
            base_traces = load_traces(root / "base" / base["trace"])
            head_traces = load_traces(root / "head" / head["trace"])
            if changed.index < min(len(base_traces), len(head_traces)):
                result.divergence = first_divergence(base_traces[changed.index], head_traces[changed.index])
    result.reason = "; ".join(notes) or None
    return result
