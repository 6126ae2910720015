"""Harness overhead: `golden run` on the default suite vs the same generations called directly through diffusers.

Both run in this one process, after one warm-up of each, alternating order per repetition; prints each side's
median and their ratio (goal: <= 1.05). Usage: python benchmarks/golden_overhead.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def direct_suite(cases, cases_dir, models_by_name) -> None:
    """Each case as a plain diffusers call on the same components (the case's model): no options, no trace, no
    comparison; batches one after another, an img2img init image resized to the output as the runtime does."""
    import torch
    from PIL import Image

    from harness.golden.cases import init_image
    from serena import samplers

    for case in cases:
        model = models_by_name[case.override_settings.get("sd_model_checkpoint", "tiny-sd")]
        pipe = model.img2img if case.mode == "img2img" else model.txt2img
        # constructed per case, as a plain script does (Serena's name-to-class map, not its cache of built schedulers)
        cls, config, overrides = samplers.scheduler_recipe(
            samplers.find_sampler(case.sampler),
            model.scheduler_config,
            samplers.find_schedule_type(case.generation.get("scheduler")),
        )
        pipe.scheduler = cls.from_config(config, **overrides)
        for batch in range(case.n_iter):
            first = case.seed + batch * case.batch_size
            kwargs = {
                "prompt": [case.prompt] * case.batch_size,
                "negative_prompt": [case.negative_prompt] * case.batch_size,
                "num_inference_steps": case.steps,
                "guidance_scale": case.cfg_scale,
                "generator": [torch.Generator("cpu").manual_seed(first + i) for i in range(case.batch_size)],
                "eta": case.override_settings.get("eta_ddim", 0.0),
                "clip_skip": (case.override_settings.get("CLIP_stop_at_last_layers", 1) - 1) or None,
            }
            if case.mode == "img2img":
                init = init_image(case, cases_dir).resize((case.width, case.height), Image.Resampling.LANCZOS)
                pipe(image=[init] * case.batch_size, strength=case.denoising_strength, **kwargs)
            else:
                pipe(width=case.width, height=case.height, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from harness.config import load_config
    from harness.golden.cases import load_cases
    from harness.golden.session import run_goldens
    from serena import models, shared

    torch.set_num_threads(args.threads)
    cfg = load_config(REPO_ROOT, {"golden.num_threads": args.threads}, environ={})
    cases_dir = cfg.path("golden.cases_dir")
    cases = load_cases(cases_dir)
    models_by_name = {
        name: models.load_model(models.resolve_model(name, shared.cmd_opts.data_dir), "cpu", "fp32")
        for name in {case.override_settings.get("sd_model_checkpoint", "tiny-sd") for case in cases}
    }

    def harness_run() -> None:
        report = run_goldens(cfg)
        if report.outcome().value != "passed":
            raise SystemExit(f"golden run did not pass: {report.check_result().problems[:3]}")

    sides = {"harness": harness_run, "direct": lambda: direct_suite(cases, cases_dir, models_by_name)}
    for run in sides.values():  # warm-up: model load, first-call allocations
        run()
    timings: dict[str, list[float]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            started = time.perf_counter()
            sides[name]()
            timings[name].append(time.perf_counter() - started)
    harness, direct = (statistics.median(timings[name]) for name in ("harness", "direct"))
    images = sum(case.image_count for case in cases)
    print(f"cases: {len(cases)} ({images} images), repeats: {args.repeats}, torch threads: {args.threads}")
    for name in sides:
        values = ", ".join(f"{v:.3f}" for v in timings[name])
        print(f"{name:<8} median {statistics.median(timings[name]):.3f} s  [{values}]")
    print(f"ratio harness/direct: {harness / direct:.3f} (goal <= 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
