"""The hires fix: a txt2img pass, upscaled, then an img2img pass at the larger size — equal to plain diffusers doing
the same, in infotext the familiar way, refused with the field named when a value cannot work."""

from __future__ import annotations

import pytest
from support import pixels, txt2img

from serena.errors import InputError
from serena.infotext import infotext_to_params, parse_infotext
from serena.processing import StableDiffusionProcessingTxt2Img, process_images


def _generator(seed: int):
    import torch

    return [torch.Generator("cpu").manual_seed(seed)]


def test_hr_scale_2_returns_twice_the_size_and_says_so_in_infotext() -> None:
    processed = process_images(txt2img(seed=5, enable_hr=True, hr_scale=2))
    assert processed.images[0].size == (128, 128)
    assert (processed.width, processed.height) == (64, 64)  # the request's size, as the web UI reports it
    fields = parse_infotext(processed.infotexts[0])
    assert fields["Size"] == "64x64" and fields["Hires upscale"] == "2" and fields["Hires upscaler"] == "Latent"
    assert fields["Denoising strength"] == "0.75" and processed.denoising_strength == 0.75


def test_the_image_upscaler_pass_equals_plain_diffusers_img2img_over_the_upscaled_first_pass(plain_pipelines) -> None:
    from PIL import Image

    txt, img = plain_pipelines
    hires = process_images(
        txt2img(seed=7, enable_hr=True, hr_upscaler="Lanczos", hr_second_pass_steps=8, denoising_strength=0.5)
    )
    common = {"prompt": "a red fox in the snow", "guidance_scale": 7.5}
    first = txt(**common, num_inference_steps=10, width=64, height=64, generator=_generator(7)).images[0]
    upscaled = first.resize((128, 128), Image.Resampling.LANCZOS)
    expected = img(**common, image=upscaled, strength=0.5, num_inference_steps=8, generator=_generator(7)).images[0]
    assert pixels(hires.images[0]) == pixels(expected)


def test_the_latent_pass_equals_plain_diffusers_over_the_upscaled_latents(plain_pipelines) -> None:
    import torch

    txt, img = plain_pipelines
    hires = process_images(txt2img(seed=9, enable_hr=True, hr_upscaler="Latent (nearest)"))
    common = {"prompt": "a red fox in the snow", "guidance_scale": 7.5, "num_inference_steps": 10}
    latents = txt(**common, width=64, height=64, generator=_generator(9), output_type="latent").images
    upscaled = torch.nn.functional.interpolate(latents, size=(16, 16), mode="nearest")
    expected = img(**common, image=upscaled, strength=0.75, generator=_generator(9)).images[0]
    assert pixels(hires.images[0]) == pixels(expected)


def test_hires_resize_keeps_the_aspect_or_covers_and_crops() -> None:
    one_side = process_images(txt2img(seed=3, width=96, enable_hr=True, hr_resize_x=192))
    assert one_side.images[0].size == (192, 128)
    both = process_images(txt2img(seed=3, width=96, enable_hr=True, hr_resize_x=128, hr_resize_y=128))
    assert both.images[0].size == (128, 128)
    assert parse_infotext(both.infotexts[0])["Hires resize"] == "128x128"


def test_the_second_pass_settings_move_the_image() -> None:
    base = process_images(txt2img(seed=3, enable_hr=True))
    for changed in (
        {"hr_prompt": "a blue whale in the sea"},
        {"hr_sampler_name": "Euler"},
        {"hr_second_pass_steps": 4},
        {"denoising_strength": 0.4},
        {"hr_upscaler": "Nearest"},
    ):
        other = process_images(txt2img(seed=3, enable_hr=True, **changed))
        assert pixels(other.images[0]) != pixels(base.images[0]), changed


@pytest.mark.parametrize(
    "fields",
    [
        {"hr_scale": 2},
        {
            "hr_scale": 1.5,
            "hr_upscaler": "Lanczos",
            "hr_second_pass_steps": 6,
            "hr_sampler_name": "Euler",
            "hr_scheduler": "Karras",
            "denoising_strength": 0.6,
            "hr_prompt": "a fox, detailed",
            "hr_negative_prompt": "blurry",
        },
        {"hr_resize_x": 128, "hr_resize_y": 96, "hr_upscaler": "Latent (bicubic antialiased)"},
    ],
    ids=["latent", "image-upscaler-and-second-pass-settings", "resize"],
)
def test_pasting_the_infotext_reproduces_the_hires_image(fields: dict) -> None:
    original = process_images(txt2img(seed=11, enable_hr=True, **fields))
    params = infotext_to_params(original.infotexts[0])
    assert params["enable_hr"] is True
    for name, value in fields.items():
        assert params[name] == value, name
    again = process_images(StableDiffusionProcessingTxt2Img(**params, do_not_save_samples=True))
    assert pixels(again.images[0]) == pixels(original.images[0])


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"hr_scale": 1.1}, "hr_scale", "multiple of 8"),
        ({"hr_scale": 9}, "hr_scale", "from 1 to 8"),
        ({"hr_resize_x": 100}, "hr_resize_x", "multiple of 8"),
        ({"hr_upscaler": "ESRGAN 4x"}, "hr_upscaler", "unknown upscaler"),
        ({"hr_sampler_name": "Nope"}, "hr_sampler_name", "unknown sampler"),
        ({"hr_scheduler": "Karras", "hr_sampler_name": "DDIM"}, "hr_scheduler", "not supported with DDIM"),
        ({"denoising_strength": 0}, "denoising_strength", "(0, 1]"),
        ({"denoising_strength": 0.05}, "denoising_strength", "no denoising step"),
    ],
)
def test_bad_hires_values_are_refused_naming_the_field(fields: dict, field: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        txt2img(enable_hr=True, **fields).check()
    assert caught.value.field == field and message in str(caught.value)


def test_hires_fields_do_nothing_while_enable_hr_is_off() -> None:
    plain = process_images(txt2img(seed=5))
    off = process_images(txt2img(seed=5, hr_scale=4, hr_upscaler="Lanczos", denoising_strength=0.3))
    assert pixels(off.images[0]) == pixels(plain.images[0]) and off.infotexts == plain.infotexts
