"""Runs golden cases on one checkout of Serena in its own process, for `golden ab`; imports nothing from harness.

Usage: python ab_worker.py --serena-root DIR --job JOB.json --out DIR
The job lists the cases (parameters as JSON, init images as PNG files written by the caller) and the thread count.
For every case it writes <id>-<i>.png and <id>.trace.npz (prompt embeddings and per-step latents), then done.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Container
from pathlib import Path
from typing import Any

# harness.golden.cases.GENERATION_FIELDS' names
GENERATION_FIELDS = (
    "scheduler",
    "subseed",
    "subseed_strength",
    "seed_resize_from_w",
    "seed_resize_from_h",
    "styles",
    "resize_mode",
    "mask_blur",
    "mask_blur_x",
    "mask_blur_y",
    "inpainting_fill",
    "inpaint_full_res",
    "inpaint_full_res_padding",
    "inpainting_mask_invert",
    "mask_round",
    "enable_hr",
    "hr_scale",
    "hr_resize_x",
    "hr_resize_y",
    "hr_upscaler",
    "hr_second_pass_steps",
    "hr_sampler_name",
    "hr_scheduler",
    "hr_prompt",
    "hr_negative_prompt",
)


# Copied from harness.golden.cases.Case.processing_kwargs (ab_worker imports nothing from harness);
# test/smoke/harness/test_golden_copies.py::test_the_ab_worker_builds_the_same_processing_kwargs checks they agree.
# Unlike the original it drops the overrides the checkout does not know, so an older base can still run.
def processing_kwargs(params: dict[str, Any], known_options: Container[str]) -> dict[str, Any]:
    """Keyword arguments of the processing class for a case given as `Case.params()`; img2img adds its init image."""
    kwargs: dict[str, Any] = {
        "prompt": params["prompt"],
        "negative_prompt": params["negative_prompt"],
        "seed": params["seed"],
        "steps": params["steps"],
        "sampler_name": params["sampler"],
        "cfg_scale": params["cfg_scale"],
        "width": params["width"],
        "height": params["height"],
        "batch_size": params["batch_size"],
        "n_iter": params.get("n_iter", 1),
        "override_settings": {k: v for k, v in params["override_settings"].items() if k in known_options},
        "do_not_save_samples": True,
        **{name: params[name] for name in GENERATION_FIELDS if name in params},
    }
    if params["denoising_strength"] is not None:
        kwargs["denoising_strength"] = params["denoising_strength"]
    return kwargs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serena-root", type=Path, required=True)
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    root = args.serena_root.resolve()
    sys.path.insert(0, str(root))
    import numpy as np
    import torch

    import serena
    from serena import shared
    from serena.cmd_args import CmdOpts
    from serena.processing import StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img, process_images

    if not Path(serena.__file__).resolve().is_relative_to(root):
        print(f"ab worker: imported serena from {serena.__file__}, not from {root}", file=sys.stderr)
        return 2
    job = json.loads(args.job.read_text(encoding="utf-8"))
    torch.set_num_threads(job["threads"])
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as data_dir:
        start_up: dict[str, Any] = {"data_dir": Path(data_dir)}
        # the cases' saved prompt styles, where the checkout's runtime has styles at all
        if job.get("styles_file") and "styles_file" in {item.name for item in dataclasses.fields(CmdOpts)}:
            start_up["styles_file"] = Path(job["styles_file"])
        shared.cmd_opts = CmdOpts(**start_up)
        for case in job["cases"]:
            params = case["params"]
            kwargs = processing_kwargs(params, shared.opts.data_labels)
            if params["mode"] == "img2img":
                from PIL import Image

                with Image.open(case["init_file"]) as init:
                    init_rgb = init.convert("RGB")
                if case.get("mask_file"):  # read as harness.golden.cases.mask_image reads it
                    with Image.open(case["mask_file"]) as mask:
                        mask.load()
                        transparent = "A" in mask.getbands() or "transparency" in mask.info
                        kwargs["mask"] = mask.convert("RGBA" if transparent else "L")
                p = StableDiffusionProcessingImg2Img(init_images=[init_rgb], **kwargs)
            else:
                p = StableDiffusionProcessingTxt2Img(**kwargs)
            batch = params["batch_size"]
            arrays: dict[str, np.ndarray] = {}

            def record(batch_no, step, timestep, tensors, batch=batch, arrays=arrays):
                first = batch_no * batch  # the image number of this batch's first image
                if step == 0 and "prompt_embeds" in tensors:
                    embeds = tensors["prompt_embeds"].detach().float().cpu().numpy()
                    for i in range(batch):
                        pair = np.stack([embeds[i], embeds[batch + i]]) if embeds.shape[0] == 2 * batch else embeds[i]
                        arrays[f"{first + i}/prompt embeddings"] = pair.astype(np.float16)
                latents = tensors["latents"].detach().float().cpu().numpy()
                for i in range(batch):
                    arrays[f"{first + i}/latents after step {step + 1}"] = latents[i].astype(np.float16)

            p.step_callback = record
            try:
                processed = process_images(p)
            except Exception as exc:  # noqa: BLE001 - this case's verdict on this side; the other cases still run
                message = " ".join(str(exc).split())[:300]
                results[case["id"]] = {"error": f"{type(exc).__name__}: {message}".rstrip(": ")}
                continue
            files = []
            for index, image in enumerate(processed.images):
                name = f"{case['id']}-{index}.png"
                image.save(args.out / name, "PNG")
                files.append(name)
            trace = None
            if arrays:
                trace = f"{case['id']}.trace.npz"
                np.savez_compressed(args.out / trace, **arrays)
            skipped = sorted(set(params["override_settings"]) - set(kwargs["override_settings"]))
            results[case["id"]] = {"images": files, "trace": trace, "skipped_overrides": skipped}
    (args.out / "done.json").write_text(json.dumps({"serena": serena.__file__, "cases": results}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
