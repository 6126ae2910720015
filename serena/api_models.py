"""The HTTP API's limits and its pydantic request and response models, shaped as web-UI (A1111) clients expect."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cache
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal, NamedTuple

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
)

from serena import models, processing, samplers, shared
from serena.errors import ModelError, OptionError
from serena.options import OPTION_TEMPLATES, OptionInfo

MIB = 1024 * 1024
# Options naming folders: through the API they must stay inside the data dir, or any client could write anywhere.
PATH_OPTIONS = ("outdir_txt2img", "outdir_img2img")
DEFAULT_SAMPLER = processing.StableDiffusionProcessing.sampler_name


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
                raise ValueError(f"API limit {name} must be an integer from {low} to {high}, got {value!r}")

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
                raise ValueError(f"{variable} must be a whole number, got {text!r}") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"{exc} (from the SERENA_API_* environment)") from None


def environment_variable(limit: str) -> str:
    """The environment variable that sets an API limit: max_steps → SERENA_API_MAX_STEPS."""
    return f"SERENA_API_{limit.upper()}"


# -- option checks shared by override_settings and POST /options --------------------------------
def check_api_option(key: str, value: Any) -> Any:
    """`value` validated as option `key` plus the API's own rules; OptionError naming the key and value otherwise.

    Through the API, output folders must be relative paths inside the data dir, and sd_model_checkpoint must name a
    model that exists (so a bad name is refused now rather than failing every later generation).
    """
    value = shared.opts.validate(key, value)
    if key in PATH_OPTIONS and _escapes_data_dir(value):
        raise OptionError(
            f"option {key!r}: {value!r}: through the API an output folder must be relative to the data dir"
        )
    if key == "sd_model_checkpoint":
        cmd_opts = shared.cmd_opts
        try:
            models.resolve_model(value, cmd_opts.data_dir, cmd_opts.model)
        except ModelError as exc:
            raise OptionError(f"option {key!r}: {exc}") from None
        except OSError as exc:  # e.g. a folder that cannot be read
            raise OptionError(f"option {key!r}: {value!r}: {exc}") from None
    return value


def _escapes_data_dir(folder: str) -> bool:
    return any(path.is_absolute() or ".." in path.parts for path in (PurePosixPath(folder), PureWindowsPath(folder)))


# -- generation requests -----------------------------------------------------------------------
class GenerationRequest(BaseModel):
    """Fields and checks common to txt2img and img2img; the fields themselves are built per ApiLimits."""

    # web-UI clients send many fields Serena has no use for (styles, hires fix, scripts…): ignored, not refused
    model_config = ConfigDict(extra="ignore")

    @field_validator("sampler_name", "sampler_index", check_fields=False)
    @classmethod
    def _known_sampler(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                samplers.find_sampler(name)
            except ValueError:
                raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(samplers.sampler_names())}") from None
        return name

    @field_validator("override_settings", check_fields=False)
    @classmethod
    def _valid_overrides(cls, overrides: dict[str, Any] | None) -> dict[str, Any] | None:
        problems = []
        # unknown keys pass: the run skips them with a warning and lists them in info.skipped_override_keys
        for key, value in (overrides or {}).items():
            if key in shared.opts:
                try:
                    check_api_option(key, value)
                except OptionError as exc:
                    problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return overrides

    @property
    def effective_sampler(self) -> str:
        """sampler_name, else the legacy sampler_index clients still send, else the runtime's default."""
        return getattr(self, "sampler_name", None) or getattr(self, "sampler_index", None) or DEFAULT_SAMPLER

    def processing_args(self) -> dict[str, Any]:
        """Keyword arguments for StableDiffusionProcessing (init_images and denoising_strength excepted)."""
        values = self.model_dump()
        return {
            "prompt": values["prompt"],
            "negative_prompt": values["negative_prompt"],
            "seed": values["seed"],
            "steps": values["steps"],
            "cfg_scale": values["cfg_scale"],
            "width": values["width"],
            "height": values["height"],
            "sampler_name": self.effective_sampler,
            "batch_size": values["batch_size"],
            "n_iter": values["n_iter"],
            "override_settings": dict(values["override_settings"] or {}),
            "override_settings_restore_afterwards": values["override_settings_restore_afterwards"],
            "do_not_save_samples": not values["save_images"],
        }


class Img2ImgRequest(GenerationRequest):
    """img2img's own check: the denoising strength must leave at least one step."""

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
    common: dict[str, Any] = {
        "prompt": (str, ""),
        "negative_prompt": (str, ""),
        "seed": (
            _bounded_int(-1, processing.MAX_SEED),
            Field(-1, description="Seed of the first image; image i gets seed+i; -1 picks one at random."),
        ),
        "steps": (_bounded_int(1, limits.max_steps), min(20, limits.max_steps)),
        "cfg_scale": (Annotated[float, Field(ge=0, le=processing.MAX_CFG, allow_inf_nan=False)], 7.0),
        "width": (Annotated[int, Field(le=limits.max_width, **size)], min(512, limits.max_width)),
        "height": (Annotated[int, Field(le=limits.max_height, **size)], min(512, limits.max_height)),
        "sampler_name": (str | None, Field(None, description=f"A sampler name or alias; default {DEFAULT_SAMPLER}.")),
        "sampler_index": (str | None, Field(None, description="Legacy name of sampler_name, used when that is unset.")),
        "batch_size": (_bounded_int(1, limits.max_batch_size), 1),
        "n_iter": (_bounded_int(1, limits.max_n_iter), 1),
    }
    tail: dict[str, Any] = {
        "override_settings": (
            dict[str, Any] | None,
            Field(None, description="Options for this request only; unknown keys are skipped and listed in info."),
        ),
        "override_settings_restore_afterwards": (bool, True),
        "send_images": (bool, Field(True, description="Return the images as base64 PNG.")),
        "save_images": (bool, Field(False, description="Also save the images under the data dir.")),
    }
    txt2img = create_model(
        "StableDiffusionTxt2ImgProcessingAPI",
        __base__=GenerationRequest,
        __doc__="A txt2img request.",
        **common,
        denoising_strength=(
            Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None,
            Field(None, description="Accepted for client compatibility; txt2img does not use it."),
        ),
        **tail,
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
        denoising_strength=(Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)], 0.75),
        **tail,
        include_init_images=(bool, Field(False, description="Echo init_images back in parameters.")),
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
def options_models() -> tuple[type[BaseModel], type[BaseModel]]:
    """(Options, OptionsUpdate): every option with its type for GET; each one optional, none unknown, for POST."""
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
        __config__=ConfigDict(extra="forbid"),
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
