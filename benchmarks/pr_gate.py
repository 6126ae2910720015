"""The PR gate, measured: each step of the PR workflow run here cold, in its own process, and the total; and the
whole-process `serena-verify golden run` against a plain-diffusers script that makes the same images (the floor),
in turns.

Usage: python benchmarks/pr_gate.py [--turns 3] [--base origin/main] [--skip-steps] [--skip-floor]

It also prints, per case, the golden run's and the floor's seconds where they differ most.

The steps are read from .github/workflows/pr.yml, so the figures follow the workflow: every `run:` step of the jobs
that gate a pull request, except installing the environment (CI caches it) and uploads and downloads. A step's
`${VAR}` values come from the workflow's env and matrix. The total is both serial (this machine, one step after
another) and the critical path when the jobs run side by side as the workflow's `needs` allow (the verify job, the
verifier tests and the slowest golden shard at once, then the merge). Goals: golden run within 1.10x of the floor;
the gate under 90 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "pr.yml"
SKIPPED_RUNS = ("make install",)  # CI restores the environment from its cache; measured separately if at all
GATE_GOAL_S = 90.0
FLOOR_GOAL = 1.10


# -- the floor: the same images from diffusers alone ----------------------------------------------------------
def floor_worker(out: Path, threads: int) -> int:
    """Make every golden case's images with diffusers alone (pipelines loaded from the model folder, the sampler's
    scheduler, seeds, sizes): no options, no trace, no measures, no comparison. Writes the pixel hashes."""
    sys.path.insert(0, str(REPO_ROOT))
    import hashlib

    import torch
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from PIL import Image

    from harness.golden.cases import init_image, load_cases, mask_image
    from serena import models, samplers

    torch.set_num_threads(threads)
    pipelines: dict[str, tuple[Any, Any, dict[str, Any], Any]] = {}
    shipped = (
        (models.TINY_MODEL_NAME, models.TINY_MODEL_DIR),
        (models.TINY_EPS_MODEL_NAME, models.TINY_EPS_MODEL_DIR),
        (models.TINY_INPAINT_MODEL_NAME, models.TINY_INPAINT_MODEL_DIR),
    )
    for name, folder in shipped:
        txt2img = StableDiffusionPipeline.from_pretrained(
            folder, local_files_only=True, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, low_cpu_mem_usage=False,
        )  # fmt: skip
        txt2img.set_progress_bar_config(disable=True)
        # diffusers' inpainting pipeline: for the mask cases of a 4-channel model (it holds the unmasked latents), and
        # for every pass of an inpainting model (see inpainting_inputs below)
        inpaint = StableDiffusionInpaintPipeline(**txt2img.components)
        inpaint.set_progress_bar_config(disable=True)
        if txt2img.unet.config.in_channels == models.INPAINTING_IN_CHANNELS:
            txt2img = img2img = inpaint
        else:
            img2img = StableDiffusionImg2ImgPipeline(**txt2img.components)
        img2img.set_progress_bar_config(disable=True)
        pipelines[name] = (txt2img, img2img, dict(txt2img.scheduler.config), inpaint)

    def scheduler(name: str, config: dict[str, Any], schedule: str | None) -> Any:
        """Constructed per case, as a plain script does (Serena's map from web-UI names to diffusers classes and
        configs, but not its cache of built schedulers)."""
        cls, recipe, overrides = samplers.scheduler_recipe(
            samplers.find_sampler(name), config, samplers.find_schedule_type(schedule)
        )
        return cls.from_config(recipe, **overrides)

    def inpainting_inputs(case: Any) -> dict[str, Any]:
        """An inpainting model's extra inputs: the case's mask, or everything masked; a grey image for txt2img."""
        white = Image.new("L", (case.width, case.height), 255)
        mask = white if case.mask_image is None else mask_image(case, cases_dir).convert("L")
        extra: dict[str, Any] = {"mask_image": mask, "width": case.width, "height": case.height}
        if case.mode == "txt2img":
            extra.update(image=[Image.new("RGB", (case.width, case.height), (127, 127, 127))], strength=1.0)
        return extra

    def hires(
        case: Any, pipe: Any, img2img: Any, config: dict[str, Any], kwargs: dict[str, Any], seeds: list[int]
    ) -> Any:
        """The hires fix with diffusers alone: the first pass, upscaled (latents bilinear, or the image with Lanczos),
        then img2img at the larger size with fresh generators."""
        options = case.generation
        scale = options.get("hr_scale", 2.0)
        width = options.get("hr_resize_x") or int(case.width * scale)
        height = options.get("hr_resize_y") or int(case.height * scale)
        latent = str(options.get("hr_upscaler", "Latent")).startswith("Latent")
        first = pipe(width=case.width, height=case.height, output_type="latent" if latent else "pil", **kwargs).images
        if latent:
            upscaled = torch.nn.functional.interpolate(first, size=(height // 8, width // 8), mode="bilinear")
        else:
            upscaled = [image.resize((width, height), Image.Resampling.LANCZOS) for image in first]
        img2img.scheduler = scheduler(
            options.get("hr_sampler_name") or case.sampler,
            config,
            options.get("hr_scheduler") or options.get("scheduler"),
        )
        second = {
            **kwargs,
            "num_inference_steps": options.get("hr_second_pass_steps") or case.steps,
            "generator": [torch.Generator("cpu").manual_seed(seed) for seed in seeds],
        }
        return img2img(image=upscaled, strength=case.denoising_strength or 0.75, **second).images

    cases_dir = REPO_ROOT / "harness" / "cases"
    hashes: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for case in load_cases(cases_dir):
        started = time.perf_counter()
        model = case.override_settings.get("sd_model_checkpoint", models.TINY_MODEL_NAME)
        txt2img, img2img, config, inpaint = pipelines[model]
        pipe = img2img if case.mode == "img2img" else txt2img
        if case.mask_image is not None:
            pipe = inpaint
        pipe.scheduler = scheduler(case.sampler, config, case.generation.get("scheduler"))
        images = []
        for batch in range(case.n_iter):
            seeds = [case.seed + batch * case.batch_size + i for i in range(case.batch_size)]
            kwargs: dict[str, Any] = {
                "prompt": [case.prompt] * case.batch_size,
                "negative_prompt": [case.negative_prompt] * case.batch_size,
                "num_inference_steps": case.steps,
                "guidance_scale": case.cfg_scale,
                "generator": [torch.Generator("cpu").manual_seed(seed) for seed in seeds],
                "eta": case.override_settings.get("eta_ddim", 0.0),
                "clip_skip": (case.override_settings.get("CLIP_stop_at_last_layers", 1) - 1) or None,
            }
            if isinstance(pipe, StableDiffusionInpaintPipeline):
                kwargs.update(inpainting_inputs(case))
            elif case.mask_image is not None:  # a 4-channel model's mask case
                kwargs["mask_image"] = mask_image(case, cases_dir).convert("L")
            if case.mode == "img2img":
                init = init_image(case, cases_dir).resize((case.width, case.height), Image.Resampling.LANCZOS)
                images += pipe(image=[init] * case.batch_size, strength=case.denoising_strength, **kwargs).images
            elif case.generation.get("enable_hr"):
                images += hires(case, pipe, img2img, config, kwargs, seeds)
            else:
                images += pipe(**{"width": case.width, "height": case.height, **kwargs}).images
        hashes[case.id] = [
            hashlib.sha256(f"{im.width}x{im.height}:".encode() + im.convert("RGB").tobytes()).hexdigest()
            for im in images
        ]
        seconds[case.id] = time.perf_counter() - started
    (out / "floor.json").write_text(json.dumps(hashes), encoding="utf-8")
    (out / "floor-seconds.json").write_text(json.dumps(seconds), encoding="utf-8")
    return 0


def case_gaps(report_dir: Path, floor_seconds: dict[str, float]) -> list[tuple[str, float, float]]:
    """(case, golden run seconds, floor seconds) for every case, the largest gap first; the first case of each side
    carries its imports and model load, so it is left out."""
    document = json.loads((report_dir / "golden.json").read_text(encoding="utf-8"))
    ours = {case["case"]: case["seconds"] or 0.0 for case in document["cases"]}
    first = {document["cases"][0]["case"], next(iter(floor_seconds), "")}
    rows = [(case, ours[case], floor_seconds[case]) for case in ours if case in floor_seconds and case not in first]
    return sorted(rows, key=lambda row: row[2] - row[1])


def golden_hashes(report_dir: Path) -> dict[str, list[str]]:
    document = json.loads((report_dir / "golden.json").read_text(encoding="utf-8"))
    return {
        case["case"]: [image["actual"]["sha256"] for image in case["images"] if image.get("actual")]
        for case in document["cases"]
    }


def timed(command: list[str] | str, *, env: dict[str, str] | None = None, shell: bool = False) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, shell=shell, capture_output=True, text=True, check=False
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1):
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  ! {command if isinstance(command, str) else ' '.join(command)} exited {result.returncode}: {tail}")
    return seconds, result.returncode


def measure_floor(turns: int, threads: int) -> dict[str, Any]:
    """`serena-verify golden run` and the floor script, each a whole fresh process, alternating which goes first."""
    serena_verify = str(Path(sys.executable).with_name("serena-verify"))
    times: dict[str, list[float]] = {"golden run": [], "floor": []}
    same = None
    with tempfile.TemporaryDirectory(prefix="serena-pr-gate-") as scratch:
        work = Path(scratch)
        env = {**os.environ, "SERENA_GOLDEN_NUM_THREADS": str(threads)}
        sides = {
            "golden run": [serena_verify, "golden", "run", "--report-dir", str(work / "golden")],
            "floor": [sys.executable, __file__, "--floor-worker", str(work), "--threads", str(threads)],
        }
        for turn in range(turns):
            for name in sides if turn % 2 == 0 else reversed(list(sides)):
                seconds, code = timed(sides[name], env=env)
                if name == "golden run" and code != 0:
                    print(f"  ! golden run exited {code}: its time still counts, its pixels are compared below")
                times[name].append(seconds)
        floor = json.loads((work / "floor.json").read_text(encoding="utf-8"))
        ours = golden_hashes(work / "golden")
        same = sum(floor.get(case) == hashes for case, hashes in ours.items()), len(ours)
        gaps = case_gaps(work / "golden", json.loads((work / "floor-seconds.json").read_text(encoding="utf-8")))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["golden run"] / medians["floor"]
    return {"times": times, "medians": medians, "ratio": ratio, "same": same, "gaps": gaps}


# -- the workflow's steps --------------------------------------------------------------------------------------
def workflow_steps(base: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """(job, step name, command, env) for every measured `run:` step of pr.yml, the matrix expanded."""
    import yaml

    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    top_env = {k: str(v) for k, v in (document.get("env") or {}).items()}
    steps = []
    for job_id, job in document["jobs"].items():
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        variants = [{}]
        for key, values in matrix.items():
            if isinstance(values, list):
                variants = [{**variant, key: str(value)} for variant in variants for value in values]
        for variant in variants:
            for step in job.get("steps", []):
                command = step.get("run")
                if not command or command.strip() in SKIPPED_RUNS or "GITHUB_STEP_SUMMARY" in command:
                    continue
                env = {**top_env, **{k: str(v) for k, v in (job.get("env") or {}).items()}}
                for key, value in (step.get("env") or {}).items():
                    env[key] = _expand(str(value), variant, base)
                label = job_id + (f" [{', '.join(f'{k} {v}' for k, v in variant.items())}]" if variant else "")
                steps.append((label, step.get("name", command.splitlines()[0]), command, env))
    return steps


def _expand(value: str, variant: dict[str, str], base: str) -> str:
    """The `${{ … }}` expressions a step's env uses: the matrix, and the base branch."""

    def replace(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression.startswith("matrix."):
            return variant[expression.removeprefix("matrix.")]
        if expression in ("github.base_ref", "github.event.pull_request.base.ref"):
            return base.removeprefix("origin/") if base.startswith("origin/") else base
        return ""

    return re.sub(r"\$\{\{(.*?)\}\}", replace, value)


def critical_path(rows: list[dict[str, Any]]) -> tuple[float, list[str]]:
    """The wall time when every job runs on its own runner as soon as the jobs it needs are done (a matrix job's
    variants side by side), and the jobs on that longest path."""
    import yaml

    needs_of = {
        job_id: [job["needs"]] if isinstance(job.get("needs"), str) else list(job.get("needs") or [])
        for job_id, job in yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"].items()
    }
    own: dict[str, dict[str, float]] = {}
    for row in rows:
        variants = own.setdefault(row["job"].split(" [")[0], {})
        variants[row["job"]] = variants.get(row["job"], 0.0) + row["seconds"]
    finish: dict[str, tuple[float, list[str]]] = {}

    def done(job_id: str) -> tuple[float, list[str]]:
        if job_id not in finish:
            before = max((done(need) for need in needs_of.get(job_id, [])), default=(0.0, []))
            label, seconds = max((own.get(job_id) or {job_id: 0.0}).items(), key=lambda item: item[1])
            finish[job_id] = (before[0] + seconds, [*before[1], label])
        return finish[job_id]

    return max((done(job_id) for job_id in needs_of), default=(0.0, []))


def measure_steps(base: str) -> list[dict[str, Any]]:
    rows = []
    for job, name, command, env in workflow_steps(base):
        if not base.startswith("origin/"):  # a local base ref (a clone without the remote): compare with it as is
            command = command.replace("origin/${BASE_REF}", "${BASE_REF}")
        if "build/golden-shards" in command:  # the merge reads the shards' uploads: lay them out as the download does
            shards = REPO_ROOT / "build" / "golden-shards"
            shutil.rmtree(shards, ignore_errors=True)
            shards.mkdir(parents=True)
            for folder in (REPO_ROOT / "build" / "evidence").glob("golden-shard-*"):
                shutil.copytree(folder, shards / folder.name)
        if "build/verify-evidence" in command:  # the verify job's evidence, as its download lays it out
            shutil.rmtree(REPO_ROOT / "build" / "verify-evidence", ignore_errors=True)
            shutil.copytree(REPO_ROOT / "build" / "evidence", REPO_ROOT / "build" / "verify-evidence")
        bin_dir = str(REPO_ROOT / ".venv" / "bin")
        full_env = {**os.environ, **env, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        seconds, code = timed(["bash", "-c", command], env=full_env)
        rows.append({"job": job, "step": name, "seconds": seconds, "exit": code})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=3, help="turns of golden run vs floor (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both sides (default 2)")
    parser.add_argument(
        "--base", default="origin/main", help="the base the ledger step compares with: origin/<branch> or a local ref"
    )
    parser.add_argument("--skip-steps", action="store_true", help="only the floor comparison")
    parser.add_argument("--skip-floor", action="store_true", help="only the workflow's steps")
    parser.add_argument("--floor-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_worker is not None:
        return floor_worker(args.floor_worker, args.threads)
    print(f"pr_gate: {WORKFLOW.relative_to(REPO_ROOT)} on {os.cpu_count()} cores, python {sys.version.split()[0]}")
    failed = False
    if not args.skip_steps:
        rows = measure_steps(args.base)
        labels = [f"{row['job']}: {row['step']}" for row in rows]
        width = max(len(label) for label in labels)
        for label, row in zip(labels, rows, strict=True):
            flag = "" if row["exit"] == 0 else f"  (exit {row['exit']})"
            print(f"  {label.ljust(width)}  {row['seconds']:7.2f} s{flag}")
        serial = sum(r["seconds"] for r in rows)
        critical, path = critical_path(rows)
        print(f"total, one step after another: {serial:.1f} s (goal < {GATE_GOAL_S:.0f} s)")
        print(f"total, jobs side by side as the workflow's needs allow ({' → '.join(path)}): {critical:.1f} s")
        failed |= serial >= GATE_GOAL_S
    if not args.skip_floor:
        floor = measure_floor(args.turns, args.threads)
        for name, values in floor["times"].items():
            shown = ", ".join(f"{v:.2f}" for v in values)
            print(f"  {name:<10} median {floor['medians'][name]:6.2f} s  [{shown}]")
        same, total = floor["same"]
        print(f"ratio golden run / floor: {floor['ratio']:.3f} (goal <= {FLOOR_GOAL})   same pixels: {same}/{total}")
        failed |= floor["ratio"] > FLOOR_GOAL or same != total
        gaps = floor["gaps"]
        ours_total, floor_total = sum(row[1] for row in gaps), sum(row[2] for row in gaps)
        print(
            f"per case (last turn, first case of each side left out): golden run {ours_total:.2f} s, "
            f"floor {floor_total:.2f} s over {len(gaps)} cases; the largest gaps:"
        )
        for case, ours_s, floor_s in gaps[:6]:
            print(f"  {case:<40} golden run {ours_s:6.3f} s   floor {floor_s:6.3f} s   gap {ours_s - floor_s:+.3f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
