"""Samplers and schedule types by the names web-UI users know, mapped to diffusers schedulers and their configs."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from serena.errors import InputError

ALL_PREDICTIONS = frozenset({"epsilon", "v_prediction", "sample"})
NOISE_PREDICTIONS = frozenset({"epsilon", "v_prediction"})


@dataclass(frozen=True)
class SamplerInfo:
    """A sampler name, the scheduler class behind it, and the config it is built with."""

    name: str
    scheduler: str
    config: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    prediction_types: frozenset[str] = ALL_PREDICTIONS
    uses_eta: bool = False
    # the eta a sampler that adds fresh noise each step runs at here (the web UI's eta_ancestral, default 1); a
    # request asking for another is refused rather than answered with a different image
    fixed_eta: float | None = None

    def supports(self, prediction_type: str) -> bool:
        return prediction_type in self.prediction_types


SAMPLERS: tuple[SamplerInfo, ...] = (
    SamplerInfo("Euler", "EulerDiscreteScheduler", aliases=("k_euler",)),
    # diffusers' ancestral Euler has no "sample" branch; Serena adapts it exactly (see _euler_ancestral_class).
    SamplerInfo("Euler a", "EulerAncestralDiscreteScheduler", aliases=("k_euler_a",), fixed_eta=1.0),
    SamplerInfo("Heun", "HeunDiscreteScheduler", aliases=("k_heun",)),
    SamplerInfo("LMS", "LMSDiscreteScheduler", aliases=("k_lms",)),
    SamplerInfo("LMS Karras", "LMSDiscreteScheduler", {"use_karras_sigmas": True}, aliases=("k_lms_ka",)),
    SamplerInfo("DPM++ 2M", "DPMSolverMultistepScheduler", aliases=("k_dpmpp_2m",)),
    SamplerInfo(
        "DPM++ 2M Karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, aliases=("k_dpmpp_2m_ka",)
    ),
    SamplerInfo("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, fixed_eta=1.0),
    SamplerInfo(
        "DPM++ 2M SDE Karras",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
        fixed_eta=1.0,
    ),
    SamplerInfo("DDIM", "DDIMScheduler", aliases=("ddim",), uses_eta=True),
    SamplerInfo("DDPM", "DDPMScheduler"),
    SamplerInfo("UniPC", "UniPCMultistepScheduler", aliases=("unipc",)),
    SamplerInfo("DEIS", "DEISMultistepScheduler"),
    SamplerInfo("LCM", "LCMScheduler"),
    SamplerInfo("DPM2", "KDPM2DiscreteScheduler", aliases=("k_dpm_2",), prediction_types=NOISE_PREDICTIONS),
    SamplerInfo(
        "DPM2 Karras", "KDPM2DiscreteScheduler", {"use_karras_sigmas": True}, prediction_types=NOISE_PREDICTIONS
    ),
    SamplerInfo(
        "DPM2 a",
        "KDPM2AncestralDiscreteScheduler",
        aliases=("k_dpm_2_a",),
        prediction_types=NOISE_PREDICTIONS,
        fixed_eta=1.0,
    ),
    SamplerInfo(
        "DPM2 a Karras",
        "KDPM2AncestralDiscreteScheduler",
        {"use_karras_sigmas": True},
        prediction_types=NOISE_PREDICTIONS,
        fixed_eta=1.0,
    ),
    # PLMS proper: linear multistep from the first step, no Runge-Kutta warm-up (which repeats timesteps and breaks
    # at one step), as Stable Diffusion's own PNDM configuration sets it
    SamplerInfo(
        "PLMS", "PNDMScheduler", {"skip_prk_steps": True}, aliases=("plms",), prediction_types=NOISE_PREDICTIONS
    ),
)

_BY_NAME: dict[str, SamplerInfo] = {}
for _info in SAMPLERS:
    for _name in (_info.name, *_info.aliases):
        _BY_NAME[_name.lower()] = _info


def sampler_names() -> list[str]:
    return [info.name for info in SAMPLERS]


def find_sampler(name: str) -> SamplerInfo:
    """The sampler called `name` (case-insensitive, aliases too); ValueError listing the valid names otherwise."""
    info = _BY_NAME.get(str(name).strip().lower())
    if info is None:
        raise InputError("sampler_name", f"sampler_name: unknown sampler {name!r}; valid: {', '.join(sampler_names())}")
    return info


def samplers_for(prediction_type: str) -> list[SamplerInfo]:
    return [info for info in SAMPLERS if info.supports(prediction_type)]


@dataclass(frozen=True)
class ScheduleType:
    """A schedule type (the web UI's `scheduler` field): how the sampler spaces its noise levels over the steps,
    as the diffusers config keys that express it. `name`, `label`, `aliases`, `default_rho` and `need_inner_model` are
    what the web UI's /sdapi/v1/schedulers lists."""

    name: str
    label: str
    config: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    default_rho: float = -1.0
    need_inner_model: bool = False


AUTOMATIC = "Automatic"
# Only the schedule types diffusers computes; the web UI's others (Polyexponential, KL Optimal, Align Your Steps,
# Simple, Normal, DDIM) are refused by name rather than approximated.
SCHEDULE_TYPES: tuple[ScheduleType, ...] = (
    # the sampler's own spacing under the model's scheduler config
    ScheduleType("automatic", AUTOMATIC),
    # timesteps evenly spaced over the whole training range, first and last included
    ScheduleType("uniform", "Uniform", {"timestep_spacing": "linspace"}, need_inner_model=True),
    ScheduleType("karras", "Karras", {"use_karras_sigmas": True}, default_rho=7.0),
    ScheduleType("exponential", "Exponential", {"use_exponential_sigmas": True}),
    # evenly spaced from the last training timestep, the final one left out (SGM's uniform discretization)
    ScheduleType(
        "sgm_uniform", "SGM Uniform", {"timestep_spacing": "trailing"}, aliases=("SGMUniform",), need_inner_model=True
    ),
    ScheduleType("beta", "Beta", {"use_beta_sigmas": True}),
)
UNSUPPORTED_SCHEDULE_TYPES = ("Polyexponential", "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM")

_SCHEDULE_BY_NAME: dict[str, ScheduleType] = {}
for _schedule in SCHEDULE_TYPES:
    for _name in (_schedule.name, _schedule.label, *_schedule.aliases):
        _SCHEDULE_BY_NAME[_name.lower()] = _schedule


def schedule_type_labels() -> list[str]:
    return [schedule.label for schedule in SCHEDULE_TYPES]


def find_schedule_type(name: str | None) -> ScheduleType:
    """The schedule type called `name` (label, name or alias, case-insensitive; None or "" is Automatic)."""
    if name is None or not str(name).strip():
        return SCHEDULE_TYPES[0]
    schedule = _SCHEDULE_BY_NAME.get(str(name).strip().lower())
    if schedule is None:
        unsupported = str(name).strip().lower() in {label.lower() for label in UNSUPPORTED_SCHEDULE_TYPES}
        why = "is a web-UI schedule type diffusers cannot compute" if unsupported else "is not a schedule type"
        raise InputError("scheduler", f"scheduler {name!r} {why}; valid: {', '.join(schedule_type_labels())}")
    return schedule


def _scheduler_accepts(scheduler: str, key: str) -> bool:
    import inspect

    import diffusers

    return key in inspect.signature(getattr(diffusers, scheduler).__init__).parameters


def check_schedule(info: SamplerInfo, schedule: ScheduleType) -> None:
    """Refuse a schedule type the sampler cannot run (InputError naming `scheduler`): one whose config keys its
    diffusers scheduler lacks, or one that contradicts the schedule a sampler name already carries (LMS Karras)."""
    if schedule.label == AUTOMATIC:
        return
    own = {key: value for key, value in info.config.items() if key.startswith("use_") and key.endswith("_sigmas")}
    if own and dict(own) != {key: value for key, value in schedule.config.items() if key in own}:
        raise InputError(
            "scheduler",
            f"scheduler {schedule.label!r} contradicts sampler_name {info.name!r}, which sets its own schedule; "
            f"use scheduler 'Automatic', or the sampler without the schedule in its name",
        )
    for key in schedule.config:
        if not _scheduler_accepts(info.scheduler, key):
            raise InputError(
                "scheduler",
                f"scheduler {schedule.label!r} is not supported with {info.name} (diffusers' {info.scheduler} has no "
                f"{key}); use 'Automatic'"
                + (" or 'Uniform' / 'SGM Uniform'" if _scheduler_accepts(info.scheduler, "timestep_spacing") else ""),
            )


def scheduler_recipe(
    info: SamplerInfo, base_config: Mapping[str, Any], schedule: ScheduleType | None = None
) -> tuple[type, dict[str, Any], dict[str, Any]]:
    """The scheduler class, config and keyword overrides for `info` with `schedule` (default Automatic) on a model
    whose scheduler config is `base_config`: `cls.from_config(config, **overrides)` builds it. Refuses a schedule or
    prediction type the sampler cannot run."""
    import diffusers

    schedule = schedule or SCHEDULE_TYPES[0]
    check_schedule(info, schedule)
    prediction_type = base_config.get("prediction_type", "epsilon")
    if not info.supports(prediction_type):
        supported = ", ".join(s.name for s in samplers_for(prediction_type))
        raise InputError(
            "sampler_name",
            f"sampler_name: {info.name!r} does not support this model's prediction type {prediction_type!r}; "
            f"supported: {supported}",
        )
    config = dict(base_config)
    if info.scheduler == "EulerAncestralDiscreteScheduler" and prediction_type == "sample":
        cls = _euler_ancestral_class()
        config["prediction_type"] = "epsilon"
    else:
        cls = getattr(diffusers, info.scheduler)
    return cls, config, {**info.config, **schedule.config}


def build_scheduler(info: SamplerInfo, base_config: Mapping[str, Any], schedule: ScheduleType | None = None) -> Any:
    """A fresh scheduler for `info` with `schedule` (default Automatic), configured from the model's own config.

    It is a deep copy of one built once per class and configuration: construction is the same computation every time
    (the DPM2 schedulers spend about 0.1 s of it converting 1000 sigmas to timesteps), and a copy shares no state with
    the prototype or with another run's scheduler.
    """
    cls, config, overrides = scheduler_recipe(info, base_config, schedule)
    return copy.deepcopy(_prototype(cls, config, overrides))


_PROTOTYPE_LIMIT = 64  # distinct (class, config) pairs kept; the oldest goes first
_prototypes: dict[tuple[type, str], Any] = {}
_prototypes_lock = threading.Lock()


def _prototype(cls: type, config: Mapping[str, Any], overrides: Mapping[str, Any]) -> Any:
    """The scheduler `cls.from_config(config, **overrides)` builds, built once per distinct (class, config) and never
    handed out itself (a scheduler is stateful: callers get copies)."""
    key = (cls, json.dumps([config, overrides], sort_keys=True, default=repr))
    with _prototypes_lock:
        prototype = _prototypes.get(key)
    if prototype is None:
        prototype = cls.from_config(config, **overrides)  # type: ignore[attr-defined]
        with _prototypes_lock:
            _prototypes.setdefault(key, prototype)
            while len(_prototypes) > _PROTOTYPE_LIMIT:
                del _prototypes[next(iter(_prototypes))]
    return prototype


@cache
def _euler_ancestral_class() -> type:
    """Ancestral Euler for models that predict the clean sample x0.

    With sigma the current noise level, an epsilon prediction is turned into x0 by x0 = sample - sigma * eps, so an
    x0 prediction is handed over as eps = (sample - x0) / sigma: the scheduler recovers exactly the predicted x0.
    The signature keeps `generator` so the pipeline passes it and ancestral noise stays seeded.
    """
    from diffusers import EulerAncestralDiscreteScheduler

    class SamplePredictionEulerAncestral(EulerAncestralDiscreteScheduler):
        def step(self, model_output, timestep, sample, generator=None, return_dict=True):  # type: ignore[override]
            if self.step_index is None:
                self._init_step_index(timestep)
            sigma = self.sigmas[self.step_index].to(sample.device)
            epsilon = (sample - model_output.to(sample.dtype)) / sigma
            return super().step(epsilon, timestep, sample, generator=generator, return_dict=return_dict)

    return SamplePredictionEulerAncestral
