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


def _same_state(a: object, b: object, where: str = "scheduler") -> None:
    """Every attribute equal, tensors and arrays by value, dtype and shape included."""
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)), where
    elif isinstance(a, np.ndarray):
        assert (
            isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        ), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_state(x, y, f"{where}[{index}]")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert type(a) is type(b), where
        _same_state(vars(a), vars(b), where)
    else:
        assert a == b or (a != a and b != b), where  # NaN equals NaN here


def _every_recipe() -> list[tuple[str, str, str]]:
    """(sampler, schedule type, model folder) for every pair a shipped model runs."""
    import json

    from serena.errors import InputError
    from serena.models import TINY_EPS_MODEL_DIR

    runs = []
    for folder in (TINY_MODEL_DIR, TINY_EPS_MODEL_DIR):
        config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        for info in samplers.samplers_for(config.get("prediction_type", "epsilon")):
            for schedule in samplers.SCHEDULE_TYPES:
                try:
                    samplers.check_schedule(info, schedule)
                except InputError:
                    continue
                runs.append((info.name, schedule.label, str(folder)))
    return runs


@pytest.mark.parametrize(("name", "schedule", "folder"), _every_recipe())
def test_a_built_scheduler_is_a_fresh_construction_sharing_nothing(name: str, schedule: str, folder: str) -> None:
    """build_scheduler copies a prototype built once: each copy equals a scheduler constructed now, before and after
    another copy has been used."""
    import json
    from pathlib import Path

    import torch

    info = samplers.find_sampler(name)
    schedule_type = next(s for s in samplers.SCHEDULE_TYPES if s.label == schedule)
    config = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text())
    cls, recipe_config, overrides = samplers.scheduler_recipe(info, config, schedule_type)

    first = samplers.build_scheduler(info, config, schedule_type)
    used = samplers.build_scheduler(info, config, schedule_type)
    assert first is not used
    used.set_timesteps(5)
    sample = torch.ones(1, 4, 8, 8)
    used.step(torch.zeros_like(sample), used.timesteps[0], sample)  # the copy's state moves on
    if getattr(used, "sigmas", None) is not None:
        used.sigmas.mul_(2)  # in place: a tensor shared with the prototype would leak into the next copy
    second = samplers.build_scheduler(info, config, schedule_type)

    fresh = cls.from_config(recipe_config, **overrides)
    _same_state(first, fresh)
    _same_state(second, fresh)
    for scheduler in (second, fresh):
        scheduler.set_timesteps(5)
    _same_state(second, fresh)


def test_the_prototypes_kept_are_bounded() -> None:
    import json

    config = json.loads((TINY_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())
    ddim = samplers.find_sampler("DDIM")
    for offset in range(samplers._PROTOTYPE_LIMIT + 6):
        scheduler = samplers.build_scheduler(ddim, {**config, "steps_offset": offset})
        assert scheduler.config.steps_offset == offset
    assert len(samplers._prototypes) == samplers._PROTOTYPE_LIMIT
