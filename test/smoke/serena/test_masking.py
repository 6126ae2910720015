"""The inpainting mask's parts without a model: reading the mask, its blur, the masked box, the fill, the overlay."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from serena import masking
from serena.errors import InputError


def _square_mask(size: int = 64, box: tuple[int, int, int, int] = (16, 24, 40, 48)) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return mask


def _prepare(mask: Image.Image, **fields) -> masking.PreparedMask | None:
    settings = {"width": 64, "height": 64, "resize_mode": 0, "round_alpha": True, "invert": False, "blur_x": 0}
    settings.update(blur_y=0, full_res=False, padding=0)
    return masking.prepare(mask, **{**settings, **fields})


def test_a_mask_with_transparency_is_read_from_its_alpha_rounded_or_as_it_is() -> None:
    rgba = Image.new("RGBA", (4, 1), (255, 255, 255, 0))
    for x, alpha in enumerate((0, 100, 129, 255)):
        rgba.putpixel((x, 0), (0, 0, 0, alpha))  # black colour: only the alpha can make it masked
    assert np.asarray(masking.binary_mask(rgba, True)).ravel().tolist() == [0, 0, 255, 255]
    assert np.asarray(masking.binary_mask(rgba, False)).ravel().tolist() == [0, 100, 129, 255]


def test_an_opaque_or_grey_mask_is_read_from_its_luminance() -> None:
    opaque = Image.new("RGBA", (2, 1), (255, 255, 255, 255))
    assert np.asarray(masking.binary_mask(opaque)).ravel().tolist() == [255, 255]
    grey = Image.new("RGB", (1, 1), (128, 128, 128))
    assert np.asarray(masking.binary_mask(grey)).ravel().tolist() == [128]


def test_the_blur_is_a_gaussian_of_that_sigma_along_each_axis_only() -> None:
    mask = Image.new("L", (41, 41), 0)
    mask.putpixel((20, 20), 255)
    along_x = np.asarray(masking.gaussian_blur(mask, 4, 0), dtype=float)
    assert along_x[:, 20].nonzero()[0].tolist() == [20]  # nothing spread along y
    row = along_x[20]
    # kernel radius int(2.5 * 4 + 0.5) = 10: nothing beyond it, symmetric, peak at the centre
    assert row[9] == 0 and row[31] == 0 and row[10] > 0 and row[30] > 0
    assert row.tolist() == row[::-1].tolist() and row.argmax() == 20
    expected = 255 / (np.sqrt(2 * np.pi) * 4)  # the normalised Gaussian's peak, within the truncation's rounding
    assert abs(row[20] - expected) <= 1.5
    both = np.asarray(masking.gaussian_blur(mask, 4, 4), dtype=float)
    assert both.tolist() == both.T.tolist()
    assert masking.gaussian_blur(mask, 0, 0).tobytes() == mask.tobytes()


def test_the_masked_box_is_padded_within_the_image_and_absent_for_a_blank_mask() -> None:
    mask = _square_mask()
    assert masking.crop_region(mask, 0) == (16, 24, 40, 48)
    assert masking.crop_region(mask, 20) == (0, 4, 60, 64)
    assert masking.crop_region(Image.new("L", (64, 64), 0), 8) is None


@pytest.mark.parametrize(
    ("box", "size", "image", "expected"),
    [
        ((16, 24, 40, 48), (64, 64), (64, 64), (16, 24, 40, 48)),  # already square
        ((0, 0, 32, 8), (64, 64), (64, 64), (0, 0, 32, 32)),  # grown downwards from the top edge
        ((10, 56, 30, 64), (64, 64), (64, 64), (10, 44, 30, 64)),  # grown upwards from the bottom edge
        ((20, 20, 30, 40), (128, 64), (64, 64), (5, 20, 45, 40)),  # grown to 2:1 around its centre
        ((0, 0, 64, 16), (64, 64), (64, 32), (0, 0, 64, 32)),  # cannot reach 1:1: stops at the image's edge
    ],
)
def test_the_box_grows_to_the_output_aspect(box, size, image, expected) -> None:
    assert masking.expand_to_aspect(box, *size, *image) == expected


def test_fill_replaces_only_the_masked_pixels_with_colours_from_the_rest() -> None:
    image = Image.new("RGB", (32, 32), (200, 40, 40))
    image.paste((40, 40, 200), (0, 16, 32, 32))
    mask = _square_mask(32, (8, 8, 24, 24))
    filled = np.asarray(masking.fill(image, mask), dtype=int)
    original = np.asarray(image, dtype=int)
    inside = np.asarray(mask) > 0
    # the result is the blurred image laid over itself, so even unmasked pixels move a little; masked ones a lot
    assert np.abs(filled - original)[~inside].max() <= 2
    assert np.abs(filled - original)[inside].max() > 40
    # the colour comes from the rest of the image: red above, blue below, never the grey of an empty fill
    assert filled[9, 16, 0] > filled[9, 16, 2] and filled[22, 16, 2] > filled[22, 16, 0]


def test_whole_picture_doubles_the_overlay_mask_and_only_masked_keeps_it() -> None:
    mask = masking.gaussian_blur(_square_mask(), 4, 4)
    whole = _prepare(mask)
    assert whole is not None and whole.crop is None
    source, doubled = np.asarray(mask, dtype=int), np.asarray(whole.overlay_mask, dtype=int)
    assert doubled.tolist() == np.clip(source * 2, 0, 255).tolist()
    only = _prepare(_square_mask(), invert=True, full_res=True)
    assert only is not None and only.crop == (0, 0, 64, 64)  # inverted: the masked box is the whole image
    blank = _prepare(Image.new("L", (64, 64), 0), blur_x=4, blur_y=4, full_res=True, padding=32)
    assert blank is None


def test_the_overlay_puts_the_init_image_back_outside_the_mask() -> None:
    init = Image.new("RGB", (64, 64), (10, 120, 30))
    prepared = _prepare(_square_mask(), width=32, height=32, full_res=True)
    assert prepared is not None and prepared.crop == (16, 24, 40, 48)
    start, overlay = masking.init_and_overlay(init, prepared, 0, 32, 32)
    assert start.size == (32, 32) and overlay.size == (64, 64)
    result = masking.apply_overlay(Image.new("RGB", (32, 32), (250, 0, 250)), overlay, prepared.crop)
    assert result.size == (64, 64)
    assert result.getpixel((0, 0)) == (10, 120, 30) and result.getpixel((20, 30)) == (250, 0, 250)


@pytest.mark.parametrize(
    ("finder", "value", "expected"),
    [
        (masking.find_inpainting_fill, 2, 2),
        (masking.find_inpainting_fill, "latent nothing", 3),
        (masking.find_inpainting_fill, " Original ", 1),
        (masking.find_mask_mode, True, 1),
        (masking.find_mask_mode, "Inpaint not masked", 1),
        (masking.find_mask_mode, 0, 0),
    ],
)
def test_the_fields_read_numbers_and_infotext_names(finder, value, expected) -> None:
    assert finder(value) == expected


@pytest.mark.parametrize(
    ("finder", "value", "field"),
    [
        (masking.find_inpainting_fill, 4, "inpainting_fill"),
        (masking.find_inpainting_fill, True, "inpainting_fill"),
        (masking.find_mask_mode, 2, "inpainting_mask_invert"),
        (masking.find_mask_mode, "sideways", "inpainting_mask_invert"),
    ],
)
def test_an_unknown_value_is_refused_naming_its_field(finder, value, field) -> None:
    with pytest.raises(InputError) as caught:
        finder(value)
    assert caught.value.field == field and repr(value) in str(caught.value)
