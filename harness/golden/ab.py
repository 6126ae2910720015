"""`golden ab --base REF`: the same cases on the base commit (a git worktree, its own process) and the working tree.

Both sides run on this machine in fresh processes, so no stored goldens are needed and no cross-platform drift
enters the verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.config import HarnessConfig
from harness.errors import ConfigError, GoldenError, RuntimeFailure
from harness.git import GitError, git
from harness.git import worktree as git_worktree
from harness.golden.cases import Case, init_image, load_cases
from harness.golden.compare import CaseVerdict, ImageComparison, Verdict, compare_images, worst
from harness.golden.manifest import Tolerances
from harness.golden.measures import degenerate_reason, measure
from harness.golden.report import GoldenReport
from harness.golden.runner import CaseRun
from harness.golden.selection import Selection
from harness.golden.trace import first_divergence, load_traces

WORKER = Path(__file__).with_name("ab_worker.py")
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
) -> GoldenReport:
    """Run the selected cases on `base_ref` and on the working tree; judge head against base image by image."""
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
    job = {"threads": cfg["golden.num_threads"], "cases": []}
    (root / "init").mkdir(exist_ok=True)
    for case in cases:
        entry = {"id": case.id, "params": case.params()}
        if case.mode == "img2img":
            init_file = root / "init" / f"{case.id}.png"
            init_image(case, cases_dir).save(init_file, "PNG")
            entry["init_file"] = str(init_file)
        job["cases"].append(entry)
    job_file = root / "job.json"
    job_file.write_text(json.dumps(job), encoding="utf-8")
    with git_worktree(repo, base_sha, root / "base-worktree") as checkout:
        if progress:
            progress(f"base {base_sha[:10]}: running {len(cases)} cases")
        base = _run_worker(checkout, job_file, root / "base", f"base {base_ref}", side="base")
        if progress:
            progress(f"working tree: running {len(cases)} cases")
        head = _run_worker(repo, job_file, root / "head", "working tree", side="head")
    # both sides ran here, on one machine class: an in-tolerance difference is drifted unless configured otherwise
    same_environment = cfg["golden.drift"] == "fail"
    verdicts = [
        _judge(case, base["cases"][case.id], head["cases"][case.id], root, tolerances, same_environment)
        for case in cases
    ]
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


def _judge(
    case: Case, base: dict, head: dict, root: Path, tolerances: Tolerances, same_environment: bool
) -> CaseVerdict:
    from PIL import Image

    errors = [
        f"{side}: generation raised {data['error']}"
        for side, data in (("base", base), ("working tree", head))
        if "error" in data
    ]
    if errors:
        return CaseVerdict(case.id, Verdict.ERRORED, reason="; ".join(errors))

    def load(side: str, name: str):
        with Image.open(root / side / name) as image:
            return image.convert("RGB")

    head_images = [load("head", name) for name in head["images"]]
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
        base_image = load("base", name)
        base_measures = measure(base_image)
        judgement = compare_images(
            image, measures, base_image, base_measures, tolerances, same_environment=same_environment
        )
        comparisons.append(ImageComparison.judged(index, judgement, measures, base_measures, name))
    result = CaseVerdict(case.id, worst([c.verdict for c in comparisons]), comparisons, run=run)
    notes = []
    for side, data in (("base", base), ("working tree", head)):
        if data["skipped_overrides"]:
            notes.append(f"{side} does not know option(s) {', '.join(data['skipped_overrides'])}")
    if result.verdict is Verdict.DRIFTED:
        drifted = next(c for c in comparisons if c.verdict is Verdict.DRIFTED)
        notes.insert(0, f"image {drifted.index}: not bit-identical, within tolerance — {drifted.describe(tolerances)}")
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
