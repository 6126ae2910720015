"""Every sampler the tiny model supports runs deterministically; the others are refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest
from support import phash16, pixels, txt2img

from serena import samplers
from serena.models import TINY_MODEL_DIR
from serena.processing import process_images

SUPPORTED = [s.name for s in samplers.samplers_for("sample")]
UNSUPPORTED = [s.name for s in samplers.SAMPLERS if not s.supports("sample")]


def test_the_familiar_names_are_supported() -> None:
    for name in ("Euler", "Euler a", "DDIM", "DPM++ 2M", "UniPC"):
        assert name in SUPPORTED


@pytest.mark.parametrize("name", SUPPORTED)
def test_supported_sampler_is_deterministic_and_not_flat(name: str) -> None:
    first = process_images(txt2img(sampler_name=name, steps=6)).images[0]
    second = process_images(txt2img(sampler_name=name, steps=6)).images[0]
    assert pixels(first) == pixels(second)
    assert np.asarray(first, dtype=np.float64).std() > 10


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_sampler_is_refused_naming_the_prediction_type(name: str) -> None:
    with pytest.raises(ValueError, match="prediction type 'sample'"):
        process_images(txt2img(sampler_name=name, steps=6))


def test_unsupported_claims_are_true_of_diffusers() -> None:
    """The registry only refuses what diffusers itself cannot run on a sample-prediction model."""
    import json

    import diffusers
    import torch

    config = json.loads((TINY_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())
    for info in samplers.SAMPLERS:
        if info.supports("sample"):
            continue
        with pytest.raises((ValueError, NotImplementedError)):
            scheduler = getattr(diffusers, info.scheduler).from_config(config, **dict(info.config))
            scheduler.set_timesteps(4)
            sample = torch.zeros(1, 4, 8, 8)
            scheduler.step(sample, scheduler.timesteps[0], sample)


def test_samplers_differ_from_each_other() -> None:
    ddim = process_images(txt2img(sampler_name="DDIM")).images[0]
    euler_a = process_images(txt2img(sampler_name="Euler a")).images[0]
    assert phash16(ddim) - phash16(euler_a) >= 18


def test_euler_a_noise_follows_the_seed() -> None:
    first = process_images(txt2img(sampler_name="Euler a", seed=1)).images[0]
    other = process_images(txt2img(sampler_name="Euler a", seed=2)).images[0]
    assert phash16(first) - phash16(other) >= 18


def test_euler_a_adapter_recovers_the_predicted_sample_exactly() -> None:
    import json

    import torch

    config = json.loads((TINY_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())
    scheduler = samplers.build_scheduler(samplers.find_sampler("Euler a"), config)
    scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=generator) * scheduler.init_noise_sigma
    predicted_x0 = torch.randn(1, 4, 8, 8, generator=generator)
    out = scheduler.step(predicted_x0, scheduler.timesteps[0], sample, generator=generator)
    assert torch.allclose(out.pred_original_sample, predicted_x0, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 4, 20])
def test_plms_runs_linear_multistep_from_the_first_step_at_any_step_count(steps: int) -> None:
    """No Runge-Kutta warm-up: the schedule is the step count's timesteps (PLMS repeats only its second, as its
    multistep start does), and one step works instead of failing inside the scheduler."""
    import json

    config = {**json.loads((TINY_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())}
    config["prediction_type"] = "epsilon"
    scheduler = samplers.build_scheduler(samplers.find_sampler("PLMS"), config)
    scheduler.set_timesteps(steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    assert len(timesteps) == steps + (1 if steps > 1 else 0)
    assert sorted(set(timesteps), reverse=True) == list(dict.fromkeys(timesteps))


def test_names_are_found_case_insensitively_and_by_alias() -> None:
    assert samplers.find_sampler("euler A").name == "Euler a"
    assert samplers.find_sampler("k_dpmpp_2m").name == "DPM++ 2M"
    processed = process_images(txt2img(sampler_name="ddim"))
    assert processed.sampler_name == "DDIM" and "Sampler: DDIM," in processed.infotexts[0]


@pytest.mark.parametrize("name", ["Euler", "Euler a", "DPM++ 2M", "UniPC"])
def test_the_sampler_drives_img2img_too(name: str) -> None:
    from support import gradient_image, img2img

    ddim = process_images(img2img(gradient_image(), sampler_name="DDIM")).images[0]
    other = process_images(img2img(gradient_image(), sampler_name=name)).images[0]
    assert phash16(ddim) - phash16(other) >= 18
