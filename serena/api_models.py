"""The HTTP API's limits and its pydantic request and response models, shaped as web-UI (A1111) clients expect."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from serena import masking, processing, samplers
from serena.errors import InputError
from serena.options import OPTION_TEMPLATES, OptionInfo

MIB = 1024 * 1024
DEFAULT_SAMPLER = processing.StableDiffusionProcessing.sampler_name
# Request fields that reach StableDiffusionProcessing under their own name: those the two share, except
# denoising_strength, which txt2img accepts only for client compatibility and img2img passes itself.
PROCESSING_FIELDS = tuple(
    item.name
    for item in fields(processing.StableDiffusionProcessing)
    if item.init and item.name != "denoising_strength"
)


# img2img's inpainting fields that have a default (mask_blur, which sets the two blurs, has none; the endpoint decodes
# the mask itself)
INPAINTING_FIELDS = (
    "mask_blur_x",
    "mask_blur_y",
    "mask_round",
    "inpainting_fill",
    "inpaint_full_res",
    "inpaint_full_res_padding",
    "inpainting_mask_invert",
)
# Request fields only one mode's processing class has, under their own name (img2img's denoising_strength and
# init_images are passed by the endpoint itself).
MODE_FIELDS: dict[str, tuple[str, ...]] = {
    "txt2img": (
        "denoising_strength",
        "enable_hr",
        "hr_scale",
        "hr_resize_x",
        "hr_resize_y",
        "hr_upscaler",
        "hr_second_pass_steps",
        "hr_sampler_name",
        "hr_scheduler",
        "hr_prompt",
        "hr_negative_prompt",
    ),
    "img2img": ("resize_mode", "mask_blur", *INPAINTING_FIELDS),
}


# -- limits ------------------------------------------------------------------------------------
# the range each limit may be set to: the runtime's own hard limits are the ceiling
LIMIT_BOUNDS: dict[str, tuple[int, int]] = {
    "max_width": (processing.MIN_SIZE, processing.MAX_SIZE),
    "max_height": (processing.MIN_SIZE, processing.MAX_SIZE),
    "max_steps": (1, processing.MAX_STEPS),
    "max_batch_size": (1, processing.MAX_BATCH_SIZE),
    "max_n_iter": (1, 10_000),
    "max_payload_bytes": (1024, 1024 * MIB),
}


@dataclass(frozen=True)
class ApiLimits:
    """What one API request may ask for; layered defaults → SERENA_API_* environment → `serena api` flags."""

    max_width: int = 2048
    max_height: int = 2048
    max_steps: int = 150
    max_batch_size: int = 8
    max_n_iter: int = 16
    # base64 image data in one request, all init_images together; the whole body may be 1 MiB more
    max_payload_bytes: int = 16 * MIB

    def __post_init__(self) -> None:
        for name, (low, high) in LIMIT_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InputError(
                    f"--{name.replace('_', '-')}",
                    f"API limit {name} must be an integer from {low} to {high}, got {value!r}",
                )

    @property
    def max_request_bytes(self) -> int:
        """The largest request body accepted at all: the base64 payload plus room for the JSON around it."""
        return self.max_payload_bytes + MIB

    @property
    def max_init_image_pixels(self) -> int:
        """Decoded init images larger than this are refused before their pixels are decompressed."""
        return 4 * self.max_width * self.max_height

    @property
    def max_init_images(self) -> int:
        return self.max_batch_size * self.max_n_iter

    def with_values(self, **values: int | None) -> ApiLimits:
        """A copy with the given limits replaced; None means "keep"."""
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ApiLimits:
        """Defaults overlaid with SERENA_API_MAX_WIDTH, _MAX_HEIGHT, _MAX_STEPS, _MAX_BATCH_SIZE, _MAX_N_ITER and
        _MAX_PAYLOAD_BYTES; ValueError naming the variable when one is not a whole number in range."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for limit in fields(cls):
            variable = environment_variable(limit.name)
            text = env.get(variable, "").strip()
            if not text:
                continue
            try:
                values[limit.name] = int(text)
            except ValueError:
                raise InputError(variable, f"{variable} must be a whole number, got {text!r}") from None
        try:
            return cls(**values)
        except InputError as exc:
            raise InputError(exc.field, f"{exc} (from the SERENA_API_* environment)") from None


def environment_variable(limit: str) -> str:
    """The environment variable that sets an API limit: max_steps → SERENA_API_MAX_STEPS."""
    return f"SERENA_API_{limit.upper()}"


# -- web-UI fields Serena does not implement -----------------------------------------------------
def _off(value: Any, request: Mapping[str, Any]) -> bool:
    return value in (None, False, 0, "", [], {})


def _always(value: Any, request: Mapping[str, Any]) -> bool:
    return True


def _unless(
    switch: str, switch_off: Callable[[Any, Mapping[str, Any]], bool] = _off
) -> Callable[[Any, Mapping[str, Any]], bool]:
    """No effect while the field `switch` is off by `switch_off` (scripts, a refiner)."""
    return lambda value, request: switch_off(request.get(switch), request)


def _one_of(*values: Any) -> Callable[[Any, Mapping[str, Any]], bool]:
    return lambda value, request: value is None or value in values


# the web UI's ways of saying "no refiner"
NO_REFINER = _one_of("", "None")


@dataclass(frozen=True)
class CompatField:
    """A web-UI (A1111) request field Serena accepts but does not implement: its type, the feature it belongs to, and
    `no_op(value, request)`: whether the value leaves the image as Serena makes it. Any other value is refused with a
    422 (or, under `--compat lenient`, ignored, logged and listed in info.ignored_fields)."""

    annotation: Any
    feature: str
    accepted: str
    no_op: Callable[[Any, Mapping[str, Any]], bool] = _off
    modes: tuple[str, ...] = ("txt2img", "img2img")


COMPAT_FIELDS: dict[str, CompatField] = {
    "seed_enable_extras": CompatField(bool | None, "variation seeds", "any", _always),
    "restore_faces": CompatField(bool | None, "face restoration", "null or false"),
    "tiling": CompatField(bool | None, "tiling", "null or false"),
    "do_not_save_grid": CompatField(bool | None, "grids (Serena never writes one)", "any", _always),
    "do_not_reload_embeddings": CompatField(bool | None, "textual inversion embeddings", "any", _always),
    "ddim_discretize": CompatField(str | None, "DDIM discretization", 'null or ""'),
    "s_min_uncond": CompatField(float | None, "sampler parameter s_min_uncond", "null or 0"),
    "s_churn": CompatField(float | None, "sampler parameter s_churn", "null or 0"),
    "s_tmin": CompatField(float | None, "sampler parameter s_tmin", "null or 0"),
    "s_tmax": CompatField(float | None, "sampler parameter s_tmax", "null or 0", _one_of(0)),
    "s_noise": CompatField(float | None, "sampler parameter s_noise", "null or 1", _one_of(1)),
    "refiner_checkpoint": CompatField(str | None, "refiner", 'null, "" or "None"', NO_REFINER),
    "refiner_switch_at": CompatField(
        float | None, "refiner", "any without a refiner", _unless("refiner_checkpoint", NO_REFINER)
    ),
    "comments": CompatField(dict[str, Any] | None, "infotext comments", "null or {}"),
    "script_name": CompatField(str | None, "scripts", 'null or ""'),
    "script_args": CompatField(list[Any] | None, "scripts", "any without a script", _unless("script_name")),
    "alwayson_scripts": CompatField(dict[str, Any] | None, "always-on scripts (ControlNet, …)", "null or {}"),
    "force_task_id": CompatField(str | None, "task ids (no effect on the image)", "any", _always),
    "infotext": CompatField(str | None, "parameters from infotext", 'null or ""'),
    # txt2img: the hires fix's parts Serena does not have
    "firstpass_image": CompatField(str | None, "hires fix from a given first pass", "null", modes=("txt2img",)),
    **{
        name: CompatField(
            int | None,
            "hires fix's legacy first-pass size",
            "null or 0, or any while enable_hr is off",
            lambda value, request: _off(value, request) or _off(request.get("enable_hr"), request),
            modes=("txt2img",),
        )
        for name in ("firstphase_width", "firstphase_height")
    },
    "hr_checkpoint_name": CompatField(
        str | None,
        "hires fix with another checkpoint",
        'null, "" or "Use same checkpoint", or any while enable_hr is off',
        lambda value, request: value in (None, "", "Use same checkpoint") or _off(request.get("enable_hr"), request),
        modes=("txt2img",),
    ),
    # img2img: resizing and inpainting
    "image_cfg_scale": CompatField(
        float | None, "instruct-pix2pix models (no effect on others)", "any", _always, modes=("img2img",)
    ),
    "latent_mask": CompatField(str | None, "inpainting with a separate latent mask", "null", modes=("img2img",)),
    "initial_noise_multiplier": CompatField(
        float | None, "initial noise multiplier", "null or 1", _one_of(1), modes=("img2img",)
    ),
}
# Request fields a web-UI client may send as null to mean "the default".
NULL_MEANS_DEFAULT = (
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "cfg_scale",
    "width",
    "height",
    "batch_size",
    "n_iter",
    "styles",
    "scheduler",
    "subseed",
    "subseed_strength",
    "seed_resize_from_w",
    "seed_resize_from_h",
    "override_settings_restore_afterwards",
    "send_images",
    "save_images",
    "include_init_images",
    "resize_mode",
    "enable_hr",
    "hr_scale",
    "hr_resize_x",
    "hr_resize_y",
    "hr_second_pass_steps",
    "hr_prompt",
    "hr_negative_prompt",
    "denoising_strength",
    *INPAINTING_FIELDS,
)


# -- generation requests -----------------------------------------------------------------------
def _known_sampler_name(name: str) -> str:
    try:
        samplers.find_sampler(name)
    except ValueError:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(samplers.sampler_names())}") from None
    return name


class GenerationRequest(BaseModel):
    """Fields and checks common to txt2img and img2img; the fields themselves are built per ApiLimits."""

    # fields no web-UI version has are kept aside (model_extra) to be refused or reported, never silently dropped
    model_config = ConfigDict(extra="allow")
    mode: ClassVar[str] = "txt2img"

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if not (value is None and key in NULL_MEANS_DEFAULT)}
        return data

    def unsupported_fields(self) -> list[tuple[str, str]]:
        """(field, why) for each field this request sets that would make the web UI's image differ from Serena's: a
        web-UI feature Serena does not implement set to anything but a no-op, or a field no web-UI version has."""
        values = self.model_dump()
        found = []
        for name, spec in COMPAT_FIELDS.items():
            if name in self.model_fields_set and self.mode in spec.modes and not spec.no_op(values[name], values):
                found.append((name, f"not supported by Serena ({spec.feature}); accepted: {spec.accepted}"))
        found += [(name, "not a field of the web-UI API") for name in sorted(self.model_extra or {})]
        return found

    def echo(self) -> dict[str, Any]:
        """The request as the response's `parameters`: every declared field, no unknown one."""
        return self.model_dump(mode="json", exclude=set(self.model_extra or {}))

    @field_validator("scheduler", check_fields=False)
    @classmethod
    def _known_scheduler(cls, name: str | None) -> str | None:
        if name is not None:
            samplers.find_schedule_type(name)  # InputError is a ValueError: a 422 naming the field
        return name

    @field_validator("hr_upscaler", check_fields=False)
    @classmethod
    def _known_upscaler(cls, name: str | None) -> str | None:
        if name is not None:
            from serena import upscalers

            upscalers.find_upscaler(name)  # InputError is a ValueError: a 422 naming the field
        return name

    @field_validator("hr_scheduler", check_fields=False)
    @classmethod
    def _known_hr_scheduler(cls, name: str | None) -> str | None:
        if name not in (None, "", "Use same scheduler"):
            samplers.find_schedule_type(name)
        return name

    @field_validator("hr_sampler_name", check_fields=False)
    @classmethod
    def _known_hr_sampler(cls, name: str | None) -> str | None:
        return None if name in ("", "Use same sampler") else _known_sampler_name(name)

    @field_validator("sampler_name", "sampler_index", check_fields=False)
    @classmethod
    def _known_sampler(cls, name: str | None) -> str | None:
        return None if name is None else _known_sampler_name(name)

    @property
    def effective_sampler(self) -> str:
        """sampler_name, else the legacy sampler_index clients still send, else the runtime's default."""
        return getattr(self, "sampler_name", None) or getattr(self, "sampler_index", None) or DEFAULT_SAMPLER

    def processing_args(self) -> dict[str, Any]:
        """Keyword arguments for StableDiffusionProcessing (init_images and denoising_strength excepted): the fields
        both share by name, with sampler_name, override_settings and do_not_save_samples translated."""
        values = self.model_dump()
        args = {name: values[name] for name in PROCESSING_FIELDS if name in values}
        args.update({name: values[name] for name in MODE_FIELDS[self.mode]})
        args["sampler_name"] = self.effective_sampler
        args["override_settings"] = dict(values["override_settings"] or {})
        args["do_not_save_samples"] = not values["save_images"]
        return args


class Img2ImgRequest(GenerationRequest):
    """img2img's own check: the denoising strength must leave at least one step."""

    mode: ClassVar[str] = "img2img"

    @field_validator("denoising_strength", check_fields=False)
    @classmethod
    def _leaves_a_step(cls, strength: float, info: ValidationInfo) -> float:
        steps = info.data.get("steps")
        if steps is not None and int(steps * strength) < 1:
            raise ValueError(
                f"{strength:g} with steps {steps} leaves no denoising step; raise steps or denoising_strength"
            )
        return strength


class RequestModels(NamedTuple):
    """The request models for one set of limits."""

    txt2img: type[GenerationRequest]
    img2img: type[GenerationRequest]


def _bounded_int(low: int, high: int, **extra: Any) -> Any:
    return Annotated[int, Field(ge=low, le=high, **extra)]


@cache
def request_models(limits: ApiLimits) -> RequestModels:
    """Request models whose bounds are `limits` (so the OpenAPI document states them); one pair per limits."""
    size = {"ge": processing.MIN_SIZE, "multiple_of": 8}
    size = {"ge": processing.MIN_SIZE, "multiple_of": 8}

    def nullable(kind: Any, default: Any) -> tuple[Any, Any]:
        # null is accepted and means the default (see NULL_MEANS_DEFAULT); the schema says so
        info = default if hasattr(default, "default") else Field(default)
        return (kind | None, info)

    common: dict[str, Any] = {
        "prompt": nullable(Annotated[str, Field(max_length=processing.MAX_PROMPT_CHARS)], ""),
        "negative_prompt": nullable(Annotated[str, Field(max_length=processing.MAX_PROMPT_CHARS)], ""),
        "seed": nullable(
            _bounded_int(-1, processing.MAX_SEED),
            Field(-1, description="Seed of the first image; image i gets seed+i; -1 picks one at random."),
        ),
        "steps": nullable(_bounded_int(1, limits.max_steps), min(20, limits.max_steps)),
        "cfg_scale": nullable(Annotated[float, Field(ge=0, le=processing.MAX_CFG, allow_inf_nan=False)], 7.0),
        "width": nullable(Annotated[int, Field(le=limits.max_width, **size)], min(512, limits.max_width)),
        "height": nullable(Annotated[int, Field(le=limits.max_height, **size)], min(512, limits.max_height)),
        "sampler_name": (str | None, Field(None, description=f"A sampler name or alias; default {DEFAULT_SAMPLER}.")),
        "sampler_index": (str | None, Field(None, description="Legacy name of sampler_name, used when that is unset.")),
        "scheduler": nullable(
            str,
            Field(
                processing.StableDiffusionProcessing.scheduler,
                description="Schedule type (see /sdapi/v1/schedulers): "
                f"{', '.join(samplers.schedule_type_labels())}; Automatic is the sampler's own.",
            ),
        ),
        "subseed": nullable(
            _bounded_int(-1, processing.MAX_SEED),
            Field(-1, description="Variation seed of the first image; image i gets subseed+i; -1 picks one at random."),
        ),
        "subseed_strength": nullable(
            Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)],
            Field(0.0, description="How far the noise moves towards the variation seed's: 0 none, 1 all the way."),
        ),
        **{
            f"seed_resize_from_{axis}": nullable(
                _bounded_int(-1, processing.MAX_SIZE),
                Field(-1, description=f"Draw the noise at this {name} and centre it in the image's; <= 0: off."),
            )
            for axis, name in (("w", "width"), ("h", "height"))
        },
        "styles": nullable(
            list[Annotated[str, Field(max_length=1024)]],
            Field(
                default_factory=list,
                max_length=64,
                description="Saved prompt styles (see /sdapi/v1/prompt-styles) applied in order to the prompt and "
                "negative prompt: a style's {prompt} is replaced by the prompt, else the style is appended.",
            ),
        ),
        "batch_size": nullable(_bounded_int(1, limits.max_batch_size), 1),
        "n_iter": nullable(_bounded_int(1, limits.max_n_iter), 1),
        "eta": (
            Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None,
            Field(
                None,
                description="Eta for DDIM, overriding the eta_ddim option; samplers that add noise each step (Euler a, "
                "DPM2 a, DPM++ 2M SDE) accept only 1 or null.",
            ),
        ),
    }
    tail: dict[str, Any] = {
        "override_settings": (
            dict[str, Any] | None,
            Field(
                None,
                description="Options for this request only; a key Serena does not have is refused (422), or under "
                "--compat lenient skipped and listed in info.skipped_override_keys.",
            ),
        ),
        "override_settings_restore_afterwards": nullable(bool, True),
        "send_images": nullable(bool, Field(True, description="Return the images as base64 PNG.")),
        "save_images": nullable(bool, Field(False, description="Also save the images under the data dir.")),
    }

    hires_fields: dict[str, Any] = {
        "enable_hr": nullable(
            bool, Field(False, description="The hires fix: upscale, then denoise again at the larger size.")
        ),
        "hr_scale": nullable(
            Annotated[float, Field(ge=1, le=8, allow_inf_nan=False)],
            Field(2.0, description="Hires size as a multiple of width x height (unless hr_resize_x/y are set)."),
        ),
        **{
            name: nullable(
                _bounded_int(0, processing.MAX_SIZE),
                Field(0, description=f"Hires {axis} in pixels (0: from hr_scale, or the aspect with the other set)."),
            )
            for name, axis in (("hr_resize_x", "width"), ("hr_resize_y", "height"))
        },
        "hr_upscaler": (
            str | None,
            Field(None, description="Latent upscale mode or image upscaler (see /sdapi/v1/upscalers); default Latent."),
        ),
        "hr_second_pass_steps": nullable(
            _bounded_int(0, limits.max_steps), Field(0, description="Hires pass steps (0: the same as steps).")
        ),
        "hr_sampler_name": (str | None, Field(None, description="Hires pass sampler (unset: the same sampler).")),
        "hr_scheduler": (str | None, Field(None, description="Hires pass schedule type (unset: the same).")),
        "hr_prompt": nullable(
            Annotated[str, Field(max_length=processing.MAX_PROMPT_CHARS)],
            Field("", description="Hires pass prompt (empty: the same prompt)."),
        ),
        "hr_negative_prompt": nullable(
            Annotated[str, Field(max_length=processing.MAX_PROMPT_CHARS)],
            Field("", description="Hires pass negative prompt (empty: the same)."),
        ),
    }

    def compat(mode: str) -> dict[str, Any]:
        return {
            name: (
                spec.annotation,
                Field(None, description=f"Web UI: {spec.feature}. Not implemented; accepted: {spec.accepted}."),
            )
            for name, spec in COMPAT_FIELDS.items()
            if mode in spec.modes
        }

    txt2img = create_model(
        "StableDiffusionTxt2ImgProcessingAPI",
        __base__=GenerationRequest,
        __doc__="A txt2img request.",
        **common,
        denoising_strength=(
            Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None,
            Field(
                None, description="The hires fix's denoising strength (default 0.75); no effect while enable_hr is off."
            ),
        ),
        **hires_fields,
        **tail,
        **compat("txt2img"),
    )
    image_data = Annotated[str, StringConstraints(min_length=1, max_length=limits.max_payload_bytes)]
    img2img = create_model(
        "StableDiffusionImg2ImgProcessingAPI",
        __base__=Img2ImgRequest,
        __doc__="An img2img request: init_images are base64 images (a data: URL is accepted too).",
        __validators__={"_payload": field_validator("init_images")(_payload_check(limits))},
        init_images=(
            Annotated[list[image_data], Field(min_length=1, max_length=limits.max_init_images)],
            Field(description=f"Base64 images, at most {limits.max_payload_bytes} characters in all."),
        ),
        **common,
        denoising_strength=nullable(Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)], 0.75),
        **tail,
        include_init_images=nullable(bool, Field(False, description="Echo init_images back in parameters.")),
        resize_mode=nullable(
            Annotated[int, Field(ge=0, le=3)],
            Field(
                0,
                description="How init images whose size differs from width x height are fitted: 0 just resize, "
                "1 crop and resize, 2 resize and fill, 3 just resize (latent upscale).",
            ),
        ),
        mask=(
            image_data | None,
            Field(
                None,
                description="Inpainting: a base64 image the init images' size, white (or, with transparency, opaque) "
                "where the image is repainted; the fields below take effect only with one.",
            ),
        ),
        mask_blur=(
            _bounded_int(0, masking.MAX_BLUR) | None,
            Field(None, description="Sets mask_blur_x and mask_blur_y both."),
        ),
        **{
            f"mask_blur_{axis}": nullable(
                _bounded_int(0, masking.MAX_BLUR),
                Field(4, description=f"Gaussian blur (sigma, pixels) of the mask along {axis}."),
            )
            for axis in ("x", "y")
        },
        mask_round=nullable(
            bool, Field(True, description="Threshold a transparent mask's alpha and round the latent mask.")
        ),
        inpainting_fill=nullable(
            _bounded_int(0, 3),
            Field(0, description="Masked content: 0 fill, 1 original, 2 latent noise, 3 latent nothing."),
        ),
        inpaint_full_res=nullable(
            bool,
            Field(
                True,
                description="Inpaint area: true only masked (the masked box, padded, denoised at width x height and "
                "put back; the result keeps the init image's size), false the whole picture.",
            ),
        ),
        inpaint_full_res_padding=nullable(
            _bounded_int(0, masking.MAX_PADDING), Field(0, description="Pixels added around the masked box.")
        ),
        inpainting_mask_invert=nullable(
            _bounded_int(0, 1), Field(0, description="Mask mode: 0 inpaint masked, 1 inpaint not masked.")
        ),
        **compat("img2img"),
    )
    return RequestModels(txt2img, img2img)


def _payload_check(limits: ApiLimits) -> Any:
    def check_payload(cls: type, images: list[str]) -> list[str]:
        total = 0
        for index, image in enumerate(images):
            total += len(image)
            if total > limits.max_payload_bytes:
                raise ValueError(
                    f"init_images[{index}]: the images hold more than the {limits.max_payload_bytes} characters of "
                    "base64 one request may carry (max_payload_bytes)"
                )
        return images

    return classmethod(check_payload)


# -- responses ---------------------------------------------------------------------------------
class TextToImageResponse(BaseModel):
    """The txt2img result: base64 PNGs (infotext in their `parameters` chunk), the request, and Processed as JSON."""

    images: list[str] = Field(description="Base64 PNG images; empty when send_images is false.")
    parameters: dict[str, Any] = Field(description="The request as received.")
    info: str = Field(description="JSON of the run: seeds, infotexts, model hash, interrupted, …")


class ImageToImageResponse(TextToImageResponse):
    """The img2img result, shaped like txt2img's."""


class ProgressResponse(BaseModel):
    progress: float = Field(description="Fraction of the current job done, 0 to 1.")
    eta_relative: float = Field(description="Estimated seconds left.")
    state: dict[str, Any] = Field(description="The job state: job, job_no, job_count, sampling_step, …")
    current_image: str | None = Field(None, description="Always null: Serena does not preview.")
    textinfo: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, str]


class SDModelItem(BaseModel):
    title: str
    model_name: str
    hash: str | None
    sha256: str | None
    filename: str
    config: str | None = None


class MalformedBodyResponse(BaseModel):
    """A body that is not UTF-8 JSON at all (400)."""

    detail: str


class ErrorResponse(BaseModel):
    """A request that failed on the server's side (500), or a body over the size limit (413)."""

    error: str = Field(description="The error's class name.")
    detail: str = Field(description="What went wrong, in one line.")


# -- options -----------------------------------------------------------------------------------
def _option_type(info: OptionInfo) -> Any:
    bounds = {"ge": info.minimum, "le": info.maximum}
    kinds: dict[str, Any] = {
        "bool": StrictBool,
        "int": Annotated[StrictInt, Field(**bounds)],
        "float": Annotated[float, Field(strict=True, allow_inf_nan=False, **bounds)],
        "str": Literal[info.choices] if info.choices else StrictStr,
        "list": list[StrictStr],
    }
    return kinds[info.type]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


@cache
def options_models(lenient: bool = False) -> tuple[type[BaseModel], type[BaseModel]]:
    """(Options, OptionsUpdate): every option with its type for GET; each one optional for POST, where a key Serena
    does not have is refused, or with `lenient` kept aside (model_extra) to be skipped and reported."""
    current = {key: (_option_type(info), Field(description=info.label)) for key, info in OPTION_TEMPLATES.items()}
    update = {
        key: (
            _option_type(info),
            # absent means "leave as is"; null is refused like any value of the wrong type
            Field(None, description=info.label, json_schema_extra=_drop_default),
        )
        for key, info in OPTION_TEMPLATES.items()
    }
    options = create_model("Options", __doc__="Every option's current value.", **current)
    options_update = create_model(
        "OptionsUpdate",
        __config__=ConfigDict(extra="allow" if lenient else "forbid"),
        __doc__="Options to set: every value is checked before any is applied.",
        **update,
    )
    return options, options_update


def response_schemas() -> dict[str, dict[str, Any]]:
    """JSON schemas of the txt2img and img2img responses, for snapshots."""
    return {
        "txt2img": TextToImageResponse.model_json_schema(),
        "img2img": ImageToImageResponse.model_json_schema(),
    }
