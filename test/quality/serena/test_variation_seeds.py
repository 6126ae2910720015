"""Variation seeds (subseed, subseed_strength, seed_resize_from_w/h) and schedule types (the `scheduler` field)."""

from __future__ import annotations

import pytest
from support import gradient_image, img2img, phash16, pixels, txt2img

from serena import samplers
from serena.errors import InputError
from serena.infotext import infotext_to_params, parse_infotext
from serena.noise import paste_centred, slerp
from serena.processing import StableDiffusionProcessingTxt2Img, process_images


def _pixels(processed) -> list[bytes]:
    return [pixels(image) for image in processed.images]


# -- slerp and the paste, on their own -----------------------------------------------------------
def test_slerp_ends_are_exactly_its_inputs_and_the_middle_keeps_unit_noise_statistics() -> None:
    import torch

    low = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    high = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(slerp(0.0, low, high), low)
    assert torch.equal(slerp(1.0, low, high), high)
    middle = slerp(0.5, low, high)
    # near-orthogonal unit noise: slerp stays on the sphere (norm kept), a straight lerp would shrink it by ~0.71
    assert middle.norm() / low.norm() == pytest.approx(1.0, abs=0.05)
    assert ((low + high) / 2).norm() / low.norm() < 0.8
    # parallel inputs fall back to linear interpolation instead of dividing by zero
    assert torch.allclose(slerp(0.3, low, low * 2), low * 1.3)


def test_paste_centred_keeps_the_centre_of_the_larger_and_places_the_smaller_in_the_middle() -> None:
    import torch

    large = torch.zeros(1, 1, 6, 8)
    small = torch.ones(1, 1, 2, 4)
    pasted = paste_centred(small, large)
    assert pasted[0, 0, 2:4, 2:6].eq(1).all() and pasted.sum() == 8
    assert large.sum() == 0  # the target is not modified in place
    # a source larger than the target along an axis: its centre is kept
    source = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert torch.equal(paste_centred(source, torch.zeros(1, 1, 2, 6))[0, 0], source[0, 0, 2:4])


# -- the promises ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["DDIM", "Euler a"])
def test_subseed_strength_0_equals_no_variation_bit_for_bit(sampler: str) -> None:
    plain = process_images(txt2img(seed=21, sampler_name=sampler, batch_size=2))
    varied = process_images(txt2img(seed=21, sampler_name=sampler, batch_size=2, subseed=77, subseed_strength=0.0))
    assert _pixels(varied) == _pixels(plain)
    assert varied.all_subseeds == [77, 78] and varied.subseed == 77
    assert "Variation seed" not in varied.infotexts[0]


def test_subseed_strength_0_equals_no_variation_for_img2img() -> None:
    plain = process_images(img2img(gradient_image(), seed=8))
    varied = process_images(img2img(gradient_image(), seed=8, subseed=3, subseed_strength=0.0))
    assert _pixels(varied) == _pixels(plain)


def test_subseed_strength_1_equals_the_subseeds_own_image() -> None:
    # DDIM at eta 0 draws no noise after the first: the image is the starting noise's
    varied = process_images(txt2img(seed=21, subseed=40, subseed_strength=1.0, batch_size=2))
    subseeds_own = process_images(txt2img(seed=40, batch_size=2))
    assert _pixels(varied) == _pixels(subseeds_own)


def test_a_partial_strength_gives_an_image_between_and_the_same_one_every_time() -> None:
    seed_image = process_images(txt2img(seed=21)).images[0]
    subseed_image = process_images(txt2img(seed=40)).images[0]
    first = process_images(txt2img(seed=21, subseed=40, subseed_strength=0.3))
    again = process_images(txt2img(seed=21, subseed=40, subseed_strength=0.3))
    assert _pixels(first) == _pixels(again)
    assert pixels(first.images[0]) not in (pixels(seed_image), pixels(subseed_image))
    fields = parse_infotext(first.infotexts[0])
    assert fields["Variation seed"] == "40" and fields["Variation seed strength"] == "0.3"


def test_img2img_variation_moves_the_image() -> None:
    plain = process_images(img2img(gradient_image(), seed=8))
    varied = process_images(img2img(gradient_image(), seed=8, subseed=3, subseed_strength=0.5))
    assert phash16(varied.images[0]) - phash16(plain.images[0]) > 0


def test_seed_resize_from_the_output_size_changes_nothing_and_another_size_does() -> None:
    plain = process_images(txt2img(seed=21, width=96))
    same = process_images(txt2img(seed=21, width=96, seed_resize_from_w=96, seed_resize_from_h=64))
    assert _pixels(same) == _pixels(plain)
    assert "Seed resize from" not in same.infotexts[0]
    resized = process_images(txt2img(seed=21, width=96, seed_resize_from_w=64, seed_resize_from_h=64))
    assert pixels(resized.images[0]) != pixels(plain.images[0])
    assert parse_infotext(resized.infotexts[0])["Seed resize from"] == "64x64"
    # the noise drawn at 64x64 is the 64x64 image's noise, centred: the 96-wide image's middle is that image's
    small = process_images(txt2img(seed=21))
    assert phash16(resized.images[0].crop((16, 0, 80, 64))) - phash16(small.images[0]) < phash16(
        plain.images[0].crop((16, 0, 80, 64))
    ) - phash16(small.images[0])


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"subseed_strength": 1.5}, "subseed_strength", "from 0 to 1"),
        ({"subseed": -5}, "subseed", "-1 (random)"),
        ({"seed_resize_from_w": 60, "seed_resize_from_h": 64}, "seed_resize_from_w", "multiple of 8"),
        ({"seed_resize_from_w": 64}, "seed_resize_from_h", "take effect together"),
        ({"scheduler": "Polyexponential"}, "scheduler", "cannot compute"),
        ({"scheduler": "Karras", "sampler_name": "Euler a"}, "scheduler", "not supported with Euler a"),
        ({"scheduler": "Uniform", "sampler_name": "LMS Karras"}, "scheduler", "contradicts"),
    ],
)
def test_bad_variation_and_schedule_values_are_refused_naming_the_field(fields: dict, field: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        txt2img(**fields).check()
    assert caught.value.field == field and message in str(caught.value)


# -- schedule types ----------------------------------------------------------------------------
def _sigmas(sampler: str, scheduler: str, steps: int = 10) -> list[float]:
    import json

    from serena.models import TINY_MODEL_DIR

    config = json.loads((TINY_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())
    built = samplers.build_scheduler(samplers.find_sampler(sampler), config, samplers.find_schedule_type(scheduler))
    built.set_timesteps(steps)
    return [round(float(value), 4) for value in built.sigmas]


def test_the_scheduler_field_changes_the_sigmas_as_named() -> None:
    import json

    import diffusers

    from serena.models import TINY_MODEL_DIR

    config = json.loads((TINY_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())
    config["prediction_type"] = "epsilon"

    def reference(**extra: object) -> list[float]:
        scheduler = diffusers.EulerDiscreteScheduler.from_config(config, **extra)
        scheduler.set_timesteps(10)
        return [round(float(value), 4) for value in scheduler.sigmas]

    automatic = _sigmas("Euler", "Automatic")
    assert automatic == reference()
    assert _sigmas("Euler", "Karras") == reference(use_karras_sigmas=True) != automatic
    assert _sigmas("Euler", "Exponential") == reference(use_exponential_sigmas=True) != automatic
    assert _sigmas("Euler", "Beta") == reference(use_beta_sigmas=True) != automatic
    assert _sigmas("Euler", "Uniform") == reference(timestep_spacing="linspace") != automatic
    assert _sigmas("Euler", "SGM Uniform") == reference(timestep_spacing="trailing") != automatic
    # the named Karras sampler and the plain one with the Karras schedule are the same schedule
    assert _sigmas("LMS Karras", "Automatic") == _sigmas("LMS", "Karras")


def test_a_schedule_type_changes_the_image_and_appears_in_infotext() -> None:
    automatic = process_images(txt2img(seed=3, sampler_name="Euler"))
    karras = process_images(txt2img(seed=3, sampler_name="Euler", scheduler="karras"))
    assert pixels(karras.images[0]) != pixels(automatic.images[0])
    assert karras.scheduler == "Karras" and automatic.scheduler == "Automatic"
    assert parse_infotext(karras.infotexts[0])["Schedule type"] == "Karras"
    assert "Schedule type" not in automatic.infotexts[0]


@pytest.mark.parametrize(
    "fields",
    [
        {"sampler_name": "Euler", "scheduler": "Karras"},
        {"sampler_name": "DPM++ 2M", "scheduler": "SGM Uniform", "subseed": 9, "subseed_strength": 0.4},
        {"seed_resize_from_w": 48, "seed_resize_from_h": 56, "subseed": 5, "subseed_strength": 0.7},
    ],
    ids=["schedule", "schedule-and-variation", "resize-and-variation"],
)
def test_pasting_the_infotext_reproduces_the_image(fields: dict) -> None:
    original = process_images(txt2img(seed=12, **fields))
    params = infotext_to_params(original.infotexts[0])
    for name, value in fields.items():
        assert params[name] == value, name
    again = process_images(StableDiffusionProcessingTxt2Img(**params, do_not_save_samples=True))
    assert _pixels(again) == _pixels(original)


def test_a_random_subseed_is_drawn_only_when_a_strength_uses_it() -> None:
    without = process_images(txt2img(seed=21, batch_size=2))
    assert without.subseed == 21 and without.all_subseeds == [21, 22]  # the run stays a function of its inputs
    drawn = {process_images(txt2img(seed=21, subseed_strength=0.2)).subseed for _ in range(2)}
    assert len(drawn) == 2  # two runs, two random subseeds (a collision is a 1 in 2**32 event)
