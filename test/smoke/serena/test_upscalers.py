"""The upscalers by the web UI's names: image upscalers resize with PIL ("None" not at all), latent modes
interpolate with torch's mode, unknown names refused with the valid ones."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from serena.errors import InputError
from serena.upscalers import (
    IMAGE_UPSCALERS,
    ImageUpscaler,
    LatentUpscaleMode,
    find_upscaler,
    is_latent_upscaler,
    latent_upscale_modes,
    upscale_image,
    upscale_latent,
    upscaler_names,
)

# the web UI's latent upscale modes and the torch interpolation each one is
LATENT_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


def checkerboard(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height))
    image.putdata([(255, 255, 255) if (x + y) % 2 else (0, 0, 0) for y in range(height) for x in range(width)])
    return image


def test_the_names_the_web_ui_lists() -> None:
    assert upscaler_names() == ["None", "Lanczos", "Nearest"]
    assert latent_upscale_modes() == list(LATENT_MODES)
    assert all(upscaler.scale is None for upscaler in IMAGE_UPSCALERS)  # a PIL resize has no native factor


@pytest.mark.parametrize(
    ("name", "expected"),
    [("lanczos", "Lanczos"), (" NEAREST ", "Nearest"), ("none", "None"), ("latent (BICUBIC)", "Latent (bicubic)")],
)
def test_names_are_found_whatever_their_case(name: str, expected: str) -> None:
    assert find_upscaler(name).name == expected


def test_entries_are_frozen_records_of_their_kind() -> None:
    nearest, latent = find_upscaler("Nearest"), find_upscaler("Latent")
    assert isinstance(nearest, ImageUpscaler) and isinstance(latent, LatentUpscaleMode)
    with pytest.raises(dataclasses.FrozenInstanceError):
        nearest.name = "Bigger"  # type: ignore[misc]
    assert [is_latent_upscaler(name) for name in ("Latent", "Latent (nearest)", "None", "Lanczos")] == [
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize("name", ["ESRGAN_4x", "", "Latent (sideways)", "R-ESRGAN 4x+"])
def test_an_unknown_upscaler_is_refused_naming_the_field_and_the_valid_names(name: str) -> None:
    with pytest.raises(InputError) as caught:
        find_upscaler(name)
    message = str(caught.value)
    assert caught.value.field == "hr_upscaler" and repr(name) in message and "\n" not in message
    assert "valid: None, Lanczos, Nearest, Latent, " in message and "Latent (nearest-exact)" in message
    with pytest.raises(InputError):
        is_latent_upscaler(name)


# -- images ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("width", "height"), [(16, 8), (12, 20), (4, 3), (8, 8)])
def test_image_upscalers_resize_to_the_target_size(width: int, height: int) -> None:
    image = checkerboard(8, 8)
    for name in ("Lanczos", "Nearest"):
        assert upscale_image(image, name, width, height).size == (width, height), name


def test_nearest_copies_pixels_and_lanczos_blends_them() -> None:
    image = checkerboard(4, 4)
    nearest = upscale_image(image, "Nearest", 8, 8)
    # each source pixel becomes a 2x2 block of the same colour
    assert all(nearest.getpixel((x, y)) == image.getpixel((x // 2, y // 2)) for x in range(8) for y in range(8))
    lanczos = upscale_image(image, "Lanczos", 8, 8)
    assert {lanczos.getpixel((x, y)) for x in range(8) for y in range(8)} - {(0, 0, 0), (255, 255, 255)}


def test_none_leaves_the_image_as_it_is_whatever_the_size_asked() -> None:
    image = checkerboard(8, 8)
    assert upscale_image(image, "None", 64, 32) is image
    assert upscale_image(image, "Lanczos", 8, 8) is image  # already the size asked


def test_a_latent_mode_does_not_upscale_images() -> None:
    with pytest.raises(InputError) as caught:
        upscale_image(checkerboard(4, 4), "Latent", 8, 8)
    assert caught.value.field == "hr_upscaler" and "upscales latents" in str(caught.value)


# -- latents -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(LATENT_MODES))
def test_latent_modes_interpolate_as_torch_does_to_an_eighth_of_the_pixel_size(name: str) -> None:
    import torch

    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    mode, antialias = LATENT_MODES[name]
    upscaled = upscale_latent(latents, name, 100, 136)  # pixels: 100 // 8 = 12 rows, 136 // 8 = 17 columns
    assert upscaled.shape == (2, 4, 12, 17)
    align = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    expected = torch.nn.functional.interpolate(latents, size=(12, 17), mode=mode, antialias=antialias, **align)
    assert torch.equal(upscaled, expected)


def test_the_latent_modes_differ_from_one_another() -> None:
    import torch

    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    # downscaling is where antialiasing shows
    results = [upscale_latent(latents, name, 40, 40) for name in LATENT_MODES]
    assert all(not torch.equal(a, b) for i, a in enumerate(results) for b in results[i + 1 :])


def test_nearest_latent_upscale_repeats_each_value() -> None:
    import torch

    latents = torch.arange(16.0).reshape(1, 1, 4, 4)
    upscaled = upscale_latent(latents, "Latent (nearest)", 64, 64)
    assert torch.equal(upscaled, latents.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


def test_an_image_upscaler_does_not_upscale_latents() -> None:
    import torch

    with pytest.raises(InputError) as caught:
        upscale_latent(torch.zeros(1, 4, 8, 8), "Lanczos", 128, 128)
    assert caught.value.field == "hr_upscaler" and "upscales images" in str(caught.value)
