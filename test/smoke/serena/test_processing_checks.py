"""Input checks: each bad argument raises ValueError naming the argument and its value."""

from __future__ import annotations

import pytest
from support import gradient_image, img2img, txt2img

from serena.processing import process_images


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", None),
        ("negative_prompt", 3),
        ("seed", -2),
        ("seed", 2**32),
        ("seed", 1.5),
        ("steps", 0),
        ("steps", True),
        ("steps", 1001),
        ("cfg_scale", -1),
        ("cfg_scale", float("inf")),
        ("width", 60),
        ("width", 32),
        ("height", 4096),
        ("height", "64"),
        ("batch_size", 0),
        ("batch_size", 65),
        ("n_iter", 0),
        ("override_settings", ["eta_ddim"]),
        ("extra_generation_params", None),
    ],
)
def test_bad_argument_is_named_with_its_value(field: str, value: object) -> None:
    p = txt2img(**{field: value})
    with pytest.raises(ValueError) as caught:
        process_images(p)
    message = str(caught.value)
    assert message.startswith(field) and repr(value) in message


def test_unknown_sampler_lists_the_valid_names() -> None:
    with pytest.raises(ValueError) as caught:
        process_images(txt2img(sampler_name="Eulerr"))
    message = str(caught.value)
    assert "sampler_name" in message and "'Eulerr'" in message
    for name in ("Euler", "Euler a", "DDIM", "DPM++ 2M", "UniPC"):
        assert name in message


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"init_images": []}, "init_images"),
        ({"init_images": ["not an image"]}, "init_images[0]"),
        ({"denoising_strength": 0.0}, "denoising_strength"),
        ({"denoising_strength": 1.5}, "denoising_strength"),
        ({"denoising_strength": 0.05, "steps": 10}, "leaves no denoising step"),
    ],
)
def test_img2img_checks(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        process_images(img2img(gradient_image(), **overrides))


def test_a_bad_override_value_fails_before_generation_and_changes_nothing() -> None:
    from serena import shared

    with pytest.raises(ValueError, match="eta_ddim"):
        process_images(txt2img(override_settings={"eta_ddim": 5.0}))
    assert shared.opts.eta_ddim == 0.0
