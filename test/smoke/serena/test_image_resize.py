"""The img2img resize modes on their own: just resize, crop and resize, resize and fill."""

from __future__ import annotations

import pytest
from PIL import Image

from serena.errors import InputError
from serena.image_resize import RESIZE_MODES, find_resize_mode, resize_image


def _bands(width: int = 64, height: int = 64) -> Image.Image:
    """Each row a different grey, each column's red a different value: where a pixel came from is readable."""
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 4 % 256, y * 4 % 256, 128) for y in range(height) for x in range(width)])
    return image


def test_every_mode_leaves_an_image_of_the_output_size_alone() -> None:
    image = _bands()
    for mode in RESIZE_MODES:
        assert resize_image(image, mode, 64, 64) is image


def test_just_resize_stretches_to_the_output_size() -> None:
    resized = resize_image(_bands(), 0, 96, 64)
    assert resized.size == (96, 64)
    assert resized.getpixel((0, 0))[1] == resized.getpixel((95, 0))[1]  # a row stays a row, end to end


def test_crop_and_resize_covers_the_output_and_crops_evenly() -> None:
    source = _bands()
    cropped = resize_image(source, 1, 96, 64)
    assert cropped.size == (96, 64)
    # scaled to 96x96, rows 16..79 kept: the middle row is the scaled image's middle row
    scaled = source.resize((96, 96), Image.Resampling.LANCZOS)
    assert cropped.getpixel((40, 32)) == scaled.getpixel((40, 48))
    assert cropped.getpixel((40, 0)) == scaled.getpixel((40, 16))


def test_resize_and_fill_fits_inside_and_stretches_the_edges_across_the_bands() -> None:
    source = _bands()
    filled = resize_image(source, 2, 96, 64)
    assert filled.size == (96, 64)
    # the image sits unscaled (64 high) in the middle, 16 columns each side
    assert filled.getpixel((16, 10)) == source.getpixel((0, 10))
    assert filled.getpixel((79, 10)) == source.getpixel((63, 10))
    # each band repeats the nearest edge column
    assert all(filled.getpixel((x, 10)) == source.getpixel((0, 10)) for x in range(16))
    assert all(filled.getpixel((x, 10)) == source.getpixel((63, 10)) for x in range(80, 96))
    # and the other orientation: bands above and below
    tall = resize_image(source, 2, 64, 96)
    assert tall.getpixel((10, 0)) == source.getpixel((10, 0)) and tall.getpixel((10, 95)) == source.getpixel((10, 63))


def test_latent_mode_leaves_the_pixels_to_the_latents() -> None:
    image = _bands()
    assert resize_image(image, 3, 96, 64) is image


@pytest.mark.parametrize(("value", "mode"), [(0, 0), (3, 3), ("Crop and resize", 1), ("resize and fill", 2), ("2", 2)])
def test_a_resize_mode_is_found_by_number_or_name(value: object, mode: int) -> None:
    assert find_resize_mode(value) == mode


@pytest.mark.parametrize("value", [4, -1, True, "Stretch", 1.0, None])
def test_an_unknown_resize_mode_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InputError) as caught:
        find_resize_mode(value)
    assert caught.value.field == "resize_mode" and "Crop and resize" in str(caught.value)
