"""The third shipped model, tiny-sd-inpaint: an inpainting model (a 9-channel UNet that also takes the mask and the
masked image's latents). Every pass of it runs on diffusers' inpainting pipeline: txt2img and img2img with everything
masked over an empty image, inpainting with the mask and the masked image, the unmasked latents held as on any model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from support import REPO_ROOT, gradient_image, img2img, pixels, txt2img

from serena import models
from serena.errors import InputError
from serena.processing import process_images

INPAINT = models.TINY_INPAINT_MODEL_NAME
ON_INPAINT = {"sd_model_checkpoint": INPAINT}


def _mask() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 24, 39, 47), fill=255)  # on 8-pixel lines: latent cells (2..4, 3..5)
    return mask


def _loaded() -> models.SdModel:
    return models.load_model(models.ModelInfo(INPAINT, models.TINY_INPAINT_MODEL_DIR, shipped=True))


def test_tiny_sd_inpaint_is_shipped_listed_and_loads_as_an_inpainting_model(data_dir: Path) -> None:
    listed = {m.name: m for m in models.list_models(data_dir)}
    assert listed[INPAINT].shipped and listed[INPAINT].path == REPO_ROOT / "serena" / "assets" / INPAINT
    models.verify_manifest(models.TINY_INPAINT_MODEL_DIR)
    model = _loaded()
    assert model.is_inpainting and type(model.inpaint).__name__ == "StableDiffusionInpaintPipeline"
    assert model.inpaint.unet.config.in_channels == 9 and model.prediction_type == "epsilon"
    assert model.pipeline_for("txt2img") is model.inpaint is model.pipeline_for("img2img")
    for name in ("vocab.json", "merges.txt"):
        shipped = (models.TINY_MODEL_DIR / "tokenizer" / name).read_bytes()
        assert (models.TINY_INPAINT_MODEL_DIR / "tokenizer" / name).read_bytes() == shipped
    plain = models.load_model(models.ModelInfo("tiny-sd", models.TINY_MODEL_DIR, shipped=True))
    assert not plain.is_inpainting and plain.pipeline_for("img2img") is plain.img2img


def test_the_make_script_reproduces_the_shipped_model_and_never_overwrites_it(tmp_path: Path) -> None:
    script = REPO_ROOT / "scripts" / "dev" / "build_tiny_inpaint_model.py"
    refused = subprocess.run(
        [sys.executable, str(script), "--out", str(models.TINY_INPAINT_MODEL_DIR)], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "already exists" in refused.stderr
    out = tmp_path / "remade"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True, capture_output=True)
    assert (out / "SHA256SUMS").read_text() == (models.TINY_INPAINT_MODEL_DIR / "SHA256SUMS").read_text()


def test_txt2img_equals_diffusers_inpainting_with_everything_masked_over_an_empty_image() -> None:
    import torch
    from diffusers import DDIMScheduler

    from serena.processing import _masked_image_latents

    pipe = _loaded().inpaint
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    white, empty = Image.new("L", (64, 64), 255), Image.new("RGB", (64, 64))
    expected = pipe(
        prompt="a red fox in the snow",
        image=Image.new("RGB", (64, 64), (127, 127, 127)),
        mask_image=white,
        masked_image_latents=_masked_image_latents(pipe, [empty], white),
        strength=1.0,
        guidance_scale=7.5,
        num_inference_steps=10,
        width=64,
        height=64,
        generator=[torch.Generator("cpu").manual_seed(1)],
    ).images[0]
    ours = process_images(txt2img(override_settings=ON_INPAINT))
    assert ours.sd_model_name == INPAINT and pixels(ours.images[0]) == pixels(expected)


def test_the_unet_sees_the_latent_mask_and_the_masked_images_latents() -> None:
    import torch

    from serena.models import model_cache
    from serena.processing import _masked_image_latents

    seen = []
    process_images(img2img(gradient_image(), mask=_mask(), inpaint_full_res=False, override_settings=ON_INPAINT))
    model = model_cache.current
    assert model is not None and model.is_inpainting

    def capture(module, args, kwargs):
        seen.append(args[0].detach().clone())

    handle = model.inpaint.unet.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        process_images(
            img2img(gradient_image(), mask=_mask(), inpaint_full_res=False, mask_blur=0, override_settings=ON_INPAINT)
        )
    finally:
        handle.remove()
    first = seen[0]
    assert first.shape == (2, 9, 8, 8)  # unconditional and conditional, 4 + 1 + 4 channels
    expected_mask = torch.zeros(8, 8)
    expected_mask[3:6, 2:5] = 1
    assert torch.equal(first[:, 4], expected_mask.expand(2, 8, 8))
    # the conditioning image: the (filled) init image with its masked pixels emptied, encoded to its mean
    assert not torch.equal(first[0, 5:], torch.zeros_like(first[0, 5:]))
    white_image_latents = _masked_image_latents(model.inpaint, [gradient_image()], Image.new("L", (64, 64), 255))
    assert not torch.equal(first[0, 5:], white_image_latents[0])


@pytest.mark.parametrize("strength", [0.75, 1.0])
def test_without_blur_every_pixel_outside_the_mask_is_the_init_image(strength: float) -> None:
    init, mask = gradient_image(), _mask()
    result = process_images(
        img2img(init, mask=mask, mask_blur=0, denoising_strength=strength, override_settings=ON_INPAINT)
    ).images[0]
    inside = np.asarray(mask) > 0
    got, original = np.asarray(result, dtype=int), np.asarray(init, dtype=int)
    assert (got[~inside] == original[~inside]).all() and np.abs(got - original)[inside].mean() > 10


def test_the_mask_conditioning_changes_the_masked_area() -> None:
    """An inpainting model is told what is masked: the same hold with the whole image as the conditioning differs."""
    white = Image.new("L", (64, 64), 255)
    masked = process_images(img2img(gradient_image(), mask=_mask(), mask_blur=0, override_settings=ON_INPAINT))
    everything = process_images(img2img(gradient_image(), mask=white, mask_blur=0, override_settings=ON_INPAINT))
    inside = np.asarray(_mask()) > 0
    a, b = np.asarray(masked.images[0], dtype=int), np.asarray(everything.images[0], dtype=int)
    assert np.abs(a - b)[inside].mean() > 1


def test_an_all_white_mask_equals_the_models_plain_img2img() -> None:
    white = Image.new("L", (64, 64), 255)
    masked = process_images(
        img2img(
            gradient_image(),
            mask=white,
            mask_blur=0,
            inpaint_full_res=False,
            inpainting_fill=1,
            override_settings=ON_INPAINT,
        )
    )
    plain = process_images(img2img(gradient_image(), override_settings=ON_INPAINT))
    assert pixels(masked.images[0]) == pixels(plain.images[0])


def test_a_variation_at_strength_1_is_the_subseeds_image_on_an_inpainting_model() -> None:
    varied = process_images(txt2img(seed=1, subseed=5, subseed_strength=1.0, override_settings=ON_INPAINT))
    subseed = process_images(txt2img(seed=5, override_settings=ON_INPAINT))
    none = process_images(txt2img(seed=1, subseed=5, subseed_strength=0.0, override_settings=ON_INPAINT))
    assert pixels(varied.images[0]) == pixels(subseed.images[0])
    assert pixels(none.images[0]) == pixels(process_images(txt2img(seed=1, override_settings=ON_INPAINT)).images[0])


def test_hires_and_each_resize_mode_run_on_an_inpainting_model() -> None:
    for upscaler in ("Latent", "Lanczos"):
        hires = process_images(txt2img(enable_hr=True, hr_upscaler=upscaler, override_settings=ON_INPAINT))
        assert hires.images[0].size == (128, 128)
    made = {
        mode: process_images(img2img(gradient_image(), width=96, resize_mode=mode, override_settings=ON_INPAINT))
        for mode in range(4)
    }
    assert {processed.images[0].size for processed in made.values()} == {(96, 64)}
    assert len({pixels(processed.images[0]) for processed in made.values()}) == 4


def test_mask_round_false_is_refused_on_an_inpainting_model() -> None:
    with pytest.raises(InputError) as caught:
        process_images(img2img(gradient_image(), mask=_mask(), mask_round=False, override_settings=ON_INPAINT))
    assert caught.value.field == "mask_round" and "inpainting model" in str(caught.value)
