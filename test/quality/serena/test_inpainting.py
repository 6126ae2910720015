"""Inpainting on the shipped (4-channel) model: equal to diffusers' inpainting where it computes the same, the init
image kept outside the mask, each field doing its part, in infotext, read back, and bad values refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from support import assert_float_noise_only, gradient_image, img2img, pixels

from serena.errors import InputError
from serena.infotext import infotext_to_params, parse_infotext
from serena.processing import StableDiffusionProcessingImg2Img, process_images


def _mask(size: tuple[int, int] = (64, 64), box: tuple[int, int, int, int] = (16, 24, 40, 48)) -> Image.Image:
    """White in `box` (x1, y1, x2, y2; exclusive), on 8-pixel lines: nearest and bicubic latent masks then agree."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return mask


def _inpaint(mask: Image.Image | None = None, init: Image.Image | None = None, **overrides):
    return img2img(init or gradient_image(), mask=_mask() if mask is None else mask, **overrides)


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=int)


def test_whole_picture_equals_diffusers_inpainting_of_a_4_channel_model_with_the_init_image_laid_over() -> None:
    import torch
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline

    from serena.models import TINY_MODEL_DIR

    pipe = StableDiffusionInpaintPipeline.from_pretrained(
        TINY_MODEL_DIR, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    init, mask = gradient_image(), _mask()
    expected = pipe(
        prompt="a red fox in the snow",
        image=init,
        mask_image=mask,
        strength=0.6,
        guidance_scale=7.5,
        num_inference_steps=10,
        width=64,
        height=64,
        generator=[torch.Generator("cpu").manual_seed(1)],
    ).images[0]
    ours = process_images(_inpaint(mask, init, inpaint_full_res=False, mask_blur=0, inpainting_fill=1))
    # diffusers returns the decoded latents; the web UI (and Serena) lay the init image back outside the mask
    assert pixels(ours.images[0]) == pixels(Image.composite(expected, init, mask))


def test_an_all_white_mask_of_the_whole_picture_is_plain_img2img_bit_for_bit() -> None:
    white = Image.new("L", (64, 64), 255)
    masked = process_images(_inpaint(white, inpaint_full_res=False, mask_blur=0, inpainting_fill=1))
    plain = process_images(img2img(gradient_image()))
    assert pixels(masked.images[0]) == pixels(plain.images[0])


@pytest.mark.parametrize("sampler", ["Euler", "Euler a", "DPM++ 2M", "Heun", "UniPC"])
def test_without_blur_every_pixel_outside_the_mask_is_the_init_image_and_inside_it_changes(sampler: str) -> None:
    init, mask = gradient_image(), _mask()
    result = _array(process_images(_inpaint(mask, init, sampler_name=sampler, mask_blur=0)).images[0])
    inside = np.asarray(mask) > 0
    assert (result[~inside] == _array(init)[~inside]).all()
    assert np.abs(result - _array(init))[inside].mean() > 10


def test_the_unmasked_latents_end_at_the_init_images_latents() -> None:
    """The hold itself, seen in the latents after the last step (before any overlay)."""
    import torch

    captured = {}

    def keep(batch: int, step: int, timestep: int, tensors: dict) -> None:
        captured["latents"] = tensors["latents"].clone()

    process_images(_inpaint(inpaint_full_res=False, mask_blur=0, inpainting_fill=1, step_callback=keep))
    # the init latents as the pipeline makes them: encoded, sampled with the image's generator, scaled
    from serena.models import model_cache
    from serena.processing import _encode

    model = model_cache.current
    assert model is not None
    pipe = model.img2img
    init_latents = _encode(pipe, gradient_image(), torch.Generator("cpu").manual_seed(1))
    kept = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    kept[..., 3:6, 2:5] = False  # the mask's box (16..40, 24..48) in latent cells
    final = captured["latents"]
    assert torch.equal(final[..., kept[0, 0]], init_latents[..., kept[0, 0]])
    assert not torch.equal(final[..., ~kept[0, 0]], init_latents[..., ~kept[0, 0]])


def test_only_masked_keeps_the_init_images_size_and_everything_outside_the_box() -> None:
    init = gradient_image(96, 64)
    mask = _mask((96, 64), (56, 16, 80, 40))
    processed = process_images(_inpaint(mask, init, mask_blur=0, inpaint_full_res_padding=4))
    result = processed.images[0]
    assert result.size == (96, 64) and (processed.width, processed.height) == (64, 64)
    inside = np.asarray(mask) > 0
    assert (_array(result)[~inside] == _array(init)[~inside]).all()
    fields = parse_infotext(processed.infotexts[0])
    assert fields["Inpaint area"] == "Only masked" and fields["Masked area padding"] == "4"


def test_only_masked_with_a_blank_mask_is_plain_img2img() -> None:
    blank = process_images(_inpaint(Image.new("L", (64, 64), 0)))
    plain = process_images(img2img(gradient_image()))
    assert pixels(blank.images[0]) == pixels(plain.images[0])
    assert "Masked content" not in blank.infotexts[0]


def test_each_masked_content_mode_starts_the_masked_area_its_own_way() -> None:
    made = {fill: process_images(_inpaint(inpainting_fill=fill, inpaint_full_res=False)) for fill in range(4)}
    assert len({pixels(processed.images[0]) for processed in made.values()}) == 4
    names = {fill: parse_infotext(processed.infotexts[0])["Masked content"] for fill, processed in made.items()}
    assert names == {0: "fill", 1: "original", 2: "latent noise", 3: "latent nothing"}


def test_inverting_the_mask_field_equals_sending_the_inverted_mask() -> None:
    mask = _mask()
    by_field = process_images(_inpaint(mask, inpainting_mask_invert=1, inpaint_full_res=False))
    by_hand = process_images(_inpaint(ImageOps.invert(mask), inpaint_full_res=False))
    assert pixels(by_field.images[0]) == pixels(by_hand.images[0])
    assert parse_infotext(by_field.infotexts[0])["Mask mode"] == "Inpaint not masked"


def test_a_transparent_mask_is_read_from_its_alpha() -> None:
    mask = _mask()
    rgba = Image.new("RGBA", mask.size, (0, 0, 0, 0))
    rgba.putalpha(mask)
    from_alpha = process_images(_inpaint(rgba))
    from_luminance = process_images(_inpaint(mask))
    assert pixels(from_alpha.images[0]) == pixels(from_luminance.images[0])


def test_blur_softens_the_seam_and_shows_in_infotext() -> None:
    sharp = process_images(_inpaint(mask_blur=0, inpaint_full_res=False))
    soft = process_images(_inpaint(mask_blur_x=6, mask_blur_y=2, inpaint_full_res=False))
    assert pixels(sharp.images[0]) != pixels(soft.images[0])
    fields = parse_infotext(soft.infotexts[0])
    assert (fields["Mask blur X"], fields["Mask blur Y"]) == ("6", "2") and "Mask blur" not in fields
    assert parse_infotext(sharp.infotexts[0])["Mask blur"] == "0"


@pytest.mark.parametrize(
    "fields",
    [
        {"inpaint_full_res": False},
        {"inpaint_full_res": True, "inpaint_full_res_padding": 8, "inpainting_fill": 2},
        {"inpaint_full_res": False, "mask_blur_x": 3, "mask_blur_y": 7, "inpainting_fill": 3},
        {"inpaint_full_res": False, "inpainting_mask_invert": 1, "mask_round": False, "mask_blur": 2},
        {"inpaint_full_res": True, "inpainting_fill": 1, "mask_blur": 0, "resize_mode": 1, "width": 96},
    ],
)
def test_pasting_the_infotext_reproduces_the_inpainted_image(fields: dict) -> None:
    mask = _mask()
    original = process_images(_inpaint(mask, seed=11, **fields))
    params = infotext_to_params(original.infotexts[0])
    again = process_images(
        StableDiffusionProcessingImg2Img(**params, init_images=[gradient_image()], mask=mask, do_not_save_samples=True)
    )
    assert pixels(again.images[0]) == pixels(original.images[0])


def test_a_batch_inpaints_each_image_with_its_own_seed() -> None:
    processed = process_images(_inpaint(batch_size=2, inpaint_full_res=False))
    assert len(processed.images) == 2 and pixels(processed.images[0]) != pixels(processed.images[1])
    single = process_images(_inpaint(seed=2, inpaint_full_res=False))
    assert_float_noise_only(processed.images[1], single.images[0])  # a batch of one runs other float kernels


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"mask": "not an image"}, "mask", "PIL image"),
        ({"mask": Image.new("L", (32, 32))}, "mask", "32x32"),
        ({"resize_mode": 3}, "resize_mode", "latent upscale"),
        ({"mask_blur": 65}, "mask_blur", "0 to 64"),
        ({"mask_blur_x": -1}, "mask_blur_x", "0 to 64"),
        ({"mask_blur_y": 1.5}, "mask_blur_y", "1.5"),
        ({"inpaint_full_res_padding": 257}, "inpaint_full_res_padding", "257"),
        ({"inpainting_fill": 4}, "inpainting_fill", "4"),
        ({"inpainting_mask_invert": 2}, "inpainting_mask_invert", "2"),
        ({"inpaint_full_res": "yes"}, "inpaint_full_res", "'yes'"),
        ({"mask_round": None}, "mask_round", "None"),
    ],
)
def test_a_bad_inpainting_value_is_refused_naming_its_field(overrides: dict, field: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        _inpaint(**overrides).check()
    assert caught.value.field == field and words in str(caught.value)


def test_the_inpainting_fields_have_no_effect_without_a_mask() -> None:
    plain = process_images(img2img(gradient_image()))
    ignored = process_images(img2img(gradient_image(), mask_blur=99, inpainting_fill=7, inpaint_full_res=False))
    assert pixels(ignored.images[0]) == pixels(plain.images[0])
    assert "Mask blur" not in ignored.infotexts[0]
