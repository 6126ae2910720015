"""Serena's pixels equal a plain diffusers pipeline call with the same components, seed, sampler, steps, CFG, size."""

from __future__ import annotations

from support import assert_float_noise_only, gradient_image, img2img, pixels, txt2img

from serena.processing import process_images


def _generators(*seeds: int):
    import torch

    return [torch.Generator("cpu").manual_seed(seed) for seed in seeds]


def test_txt2img_batch_equals_diffusers(plain_pipelines) -> None:
    txt, _ = plain_pipelines
    processed = process_images(txt2img(seed=5, batch_size=2, negative_prompt="blurry"))
    expected = txt(
        prompt=["a red fox in the snow"] * 2,
        negative_prompt=["blurry"] * 2,
        num_inference_steps=10,
        guidance_scale=7.5,
        width=64,
        height=64,
        generator=_generators(5, 6),
    ).images
    assert [pixels(i) for i in processed.images] == [pixels(i) for i in expected]


def test_txt2img_non_square_equals_diffusers(plain_pipelines) -> None:
    txt, _ = plain_pipelines
    processed = process_images(txt2img(seed=9, width=96, height=64, cfg_scale=5.0))
    expected = txt(
        prompt="a red fox in the snow",
        num_inference_steps=10,
        guidance_scale=5.0,
        width=96,
        height=64,
        generator=_generators(9),
    ).images[0]
    assert processed.images[0].size == (96, 64)
    assert pixels(processed.images[0]) == pixels(expected)


def test_img2img_equals_diffusers(plain_pipelines) -> None:
    _, img = plain_pipelines
    init = gradient_image()
    processed = process_images(img2img(init, seed=3, batch_size=2))
    expected = img(
        prompt=["a red fox in the snow"] * 2,
        image=[init, init],
        strength=0.6,
        num_inference_steps=10,
        guidance_scale=7.5,
        generator=_generators(3, 4),
    ).images
    assert [pixels(i) for i in processed.images] == [pixels(i) for i in expected]


def test_image_i_of_a_run_gets_seed_plus_i() -> None:
    run = process_images(txt2img(seed=20, batch_size=2, n_iter=2))
    assert run.all_seeds == [20, 21, 22, 23]
    assert [f"Seed: {seed}," in text for seed, text in zip(run.all_seeds, run.infotexts, strict=True)] == [True] * 4
    # the second batch of the run is bit-identical to a run of the same batch shape starting at its seed
    same_shape = process_images(txt2img(seed=22, batch_size=2))
    assert pixels(run.images[3]) == pixels(same_shape.images[1])


def test_a_single_image_run_matches_its_batch_image_up_to_float_noise() -> None:
    """A batch of another size runs other float kernels: at most 1 LSB per pixel, the same phash16."""
    batch = process_images(txt2img(seed=20, batch_size=2))
    single = process_images(txt2img(seed=21))
    assert_float_noise_only(batch.images[1], single.images[0])


def test_img2img_with_another_sampler_equals_diffusers(plain_pipelines) -> None:
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionImg2ImgPipeline

    txt, _ = plain_pipelines
    img = StableDiffusionImg2ImgPipeline(
        **{**txt.components, "scheduler": DPMSolverMultistepScheduler.from_config(txt.scheduler.config)}
    )
    img.set_progress_bar_config(disable=True)
    init = gradient_image()
    processed = process_images(img2img(init, seed=3, sampler_name="DPM++ 2M"))
    expected = img(
        prompt="a red fox in the snow",
        image=init,
        strength=0.6,
        num_inference_steps=10,
        guidance_scale=7.5,
        generator=_generators(3),
    ).images[0]
    assert pixels(processed.images[0]) == pixels(expected)
