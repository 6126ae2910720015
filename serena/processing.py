"""txt2img and img2img processing: inputs, the override seam, the options snapshot, generation and the result.

Concurrency: `process_images` holds one process-wide re-entrant lock for the whole run — overrides applied,
images generated, originals restored — so two runs never see each other's overrides and the global options are
only changed by one run at a time. Generation reads options from the run's immutable snapshot, so even a
concurrent `opts.set` from another thread (e.g. an API options request) cannot change a run already under way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import serena
from serena import hires, masking, models, samplers, script_callbacks
from serena.errors import InputError
from serena.filenames import text_problem
from serena.image_resize import LATENT_RESIZE, find_resize_mode, resize_image, resize_mode_name
from serena.runtime_context import RuntimeContext
from serena.runtime_utils import temporary_opts

if TYPE_CHECKING:
    from PIL.Image import Image

    from serena.noise import Variation
    from serena.options_snapshot import OptionsSnapshot

log = logging.getLogger("serena")

MAX_SEED = 2**32 - 1
MIN_SIZE, MAX_SIZE = 64, 2048
MAX_STEPS = 1000
MAX_BATCH_SIZE = 64
MAX_CFG = 100.0
# a first, cheap bound (tokenizing megabytes would hold the worker for minutes); text_encoding.MAX_CHUNKS is the
# real one: at most 20 chunks of 75 tokens are encoded
MAX_PROMPT_CHARS = 65536

_generation_lock = threading.RLock()

StepCallback = Callable[[int, int, int, dict[str, Any]], None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(eq=False)
class StableDiffusionProcessing:
    """What to generate. Fields set by the run (seeds, prompts, snapshot, context) are filled by process_images."""

    mode: ClassVar[Literal["txt2img", "img2img"]] = "txt2img"
    outdir_option: ClassVar[str] = "outdir_txt2img"

    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    sampler_name: str = "Euler a"
    # the schedule type (the web UI's `scheduler`): a label of samplers.SCHEDULE_TYPES; Automatic is the sampler's own
    scheduler: str = samplers.AUTOMATIC
    # variation seeds: image i's noise blended towards subseed + i's by subseed_strength (0 = none, 1 = the subseed's)
    subseed: int = -1
    subseed_strength: float = 0.0
    # the noise drawn at this size and pasted, centred, into the output's (both > 0 to take effect)
    seed_resize_from_w: int = 0
    seed_resize_from_h: int = 0
    batch_size: int = 1
    n_iter: int = 1
    # saved prompt styles applied, in order, to the prompt and negative prompt (names in the styles file)
    styles: list[str] = field(default_factory=list)
    denoising_strength: float | None = None
    # overrides the eta_ddim option for DDIM when set; samplers with fresh noise each step accept only their own
    eta: float | None = None
    override_settings: dict[str, Any] = field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    do_not_save_samples: bool = False
    outpath_samples: str | None = None
    extra_generation_params: dict[str, Any] = field(default_factory=dict)
    step_callback: StepCallback | None = None

    # filled by the run
    all_prompts: list[str] = field(default_factory=list, init=False)
    all_negative_prompts: list[str] = field(default_factory=list, init=False)
    all_seeds: list[int] = field(default_factory=list, init=False)
    all_subseeds: list[int] = field(default_factory=list, init=False)
    opts_snapshot: OptionsSnapshot | None = field(default=None, init=False)
    runtime_context: RuntimeContext | None = field(default=None, init=False)
    skipped_override_keys: tuple[str, ...] = field(default=(), init=False)
    callback_errors: list[script_callbacks.CallbackFailure] = field(default_factory=list, init=False)
    job_timestamp: datetime = field(default_factory=datetime.now, init=False)

    def check(self) -> None:
        """Raise InputError (a ValueError) naming the first argument out of range or of the wrong type."""
        if not isinstance(self.prompt, str):
            raise InputError("prompt", f"prompt must be a string, got {self.prompt!r}")
        if not isinstance(self.negative_prompt, str):
            raise InputError("negative_prompt", f"negative_prompt must be a string, got {self.negative_prompt!r}")
        for name in ("prompt", "negative_prompt"):
            text = getattr(self, name)
            if len(text) > MAX_PROMPT_CHARS:
                raise InputError(name, f"{name} is {len(text)} characters long; at most {MAX_PROMPT_CHARS} are allowed")
            if problem := text_problem(text):
                raise InputError(name, f"{name} {problem}")
        if not _is_int(self.seed) or not (self.seed == -1 or 0 <= self.seed <= MAX_SEED):
            raise InputError("seed", f"seed must be -1 (random) or an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        if not _is_int(self.steps) or not 1 <= self.steps <= MAX_STEPS:
            raise InputError("steps", f"steps must be an integer from 1 to {MAX_STEPS}, got {self.steps!r}")
        if not _is_number(self.cfg_scale) or not 0 <= self.cfg_scale <= MAX_CFG:
            raise InputError("cfg_scale", f"cfg_scale must be a number from 0 to {MAX_CFG:g}, got {self.cfg_scale!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or not MIN_SIZE <= value <= MAX_SIZE or value % 8:
                raise InputError(name, f"{name} must be a multiple of 8 from {MIN_SIZE} to {MAX_SIZE}, got {value!r}")
        sampler = samplers.find_sampler(self.sampler_name)
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise InputError("scheduler", f"scheduler must be a schedule type's name, got {self.scheduler!r}")
        samplers.check_schedule(sampler, samplers.find_schedule_type(self.scheduler))
        self._check_variation()
        if self.eta is not None:
            if not _is_number(self.eta) or not 0 <= self.eta <= 1:
                raise InputError("eta", f"eta must be a number from 0 to 1 or null, got {self.eta!r}")
            if sampler.fixed_eta is not None and self.eta != sampler.fixed_eta:
                raise InputError(
                    "eta",
                    f"eta {self.eta:g} is not supported with {sampler.name}: Serena runs it at eta "
                    f"{sampler.fixed_eta:g} (use DDIM for another eta, or null)",
                )
        if not _is_int(self.batch_size) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise InputError(
                "batch_size", f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, got {self.batch_size!r}"
            )
        if not _is_int(self.n_iter) or self.n_iter < 1:
            raise InputError("n_iter", f"n_iter must be a positive integer, got {self.n_iter!r}")
        if self.seed != -1 and self.seed + self.batch_size * self.n_iter - 1 > 2**63 - 1:
            raise InputError("seed", f"seed {self.seed} + batch_size * n_iter exceeds the generator's range")
        if not isinstance(self.styles, list | tuple) or not all(isinstance(name, str) for name in self.styles):
            raise InputError("styles", f"styles must be a list of style names, got {self.styles!r}")
        if not isinstance(self.override_settings, dict) or not all(isinstance(k, str) for k in self.override_settings):
            raise InputError(
                "override_settings",
                f"override_settings must be a dict with string keys, got {self.override_settings!r}",
            )
        if not isinstance(self.extra_generation_params, dict):
            raise InputError(
                "extra_generation_params",
                f"extra_generation_params must be a dict, got {self.extra_generation_params!r}",
            )

    def _check_variation(self) -> None:
        if not _is_int(self.subseed) or not (self.subseed == -1 or 0 <= self.subseed <= MAX_SEED):
            raise InputError(
                "subseed", f"subseed must be -1 (random) or an integer from 0 to {MAX_SEED}, got {self.subseed!r}"
            )
        if not _is_number(self.subseed_strength) or not 0 <= self.subseed_strength <= 1:
            raise InputError(
                "subseed_strength", f"subseed_strength must be a number from 0 to 1, got {self.subseed_strength!r}"
            )
        for name in ("seed_resize_from_w", "seed_resize_from_h"):
            value = getattr(self, name)
            if not _is_int(value) or not (value <= 0 or (8 <= value <= MAX_SIZE and value % 8 == 0)):
                raise InputError(
                    name, f"{name} must be 0 or less (off) or a multiple of 8 up to {MAX_SIZE}, got {value!r}"
                )
        if (self.seed_resize_from_w > 0) != (self.seed_resize_from_h > 0):
            raise InputError(
                "seed_resize_from_w" if self.seed_resize_from_w <= 0 else "seed_resize_from_h",
                "seed_resize_from_w and seed_resize_from_h take effect together: set both above 0, or neither "
                f"(got {self.seed_resize_from_w} x {self.seed_resize_from_h})",
            )
        if self.subseed != -1 and self.subseed + self.batch_size * self.n_iter - 1 > 2**63 - 1:
            raise InputError("subseed", f"subseed {self.subseed} + batch_size * n_iter exceeds the generator's range")

    @property
    def seed_resize_from(self) -> tuple[int, int] | None:
        """(width, height) the noise is drawn at, when it is not the output's size."""
        size = (self.seed_resize_from_w, self.seed_resize_from_h)
        return size if min(size) > 0 and size != (self.width, self.height) else None

    def effective_eta(self, snapshot: OptionsSnapshot) -> float:
        """The eta DDIM runs at: the request's own, else the eta_ddim option (as in the web UI)."""
        return float(self.eta) if self.eta is not None else float(snapshot["eta_ddim"])

    @property
    def total_images(self) -> int:
        return self.batch_size * self.n_iter

    def pipeline(self, model: models.SdModel) -> Any:
        """The diffusers pipeline this mode runs on (each holds its own scheduler; an inpainting model has one)."""
        return model.pipeline_for(self.mode)

    @property
    def jobs_per_batch(self) -> int:
        """Denoising passes per batch (the progress the state reports counts them)."""
        return 1

    @property
    def effective_denoising_strength(self) -> float | None:
        """The denoising strength a pass of this run uses, if any (img2img, the hires fix)."""
        return None

    def run_batch(
        self, model: models.SdModel, batch: int, kwargs: dict[str, Any], variation: Variation | None = None
    ) -> list[Image]:
        return txt2img_pass(self.pipeline(model), self, kwargs, variation)

    def infotext_params(self) -> dict[str, Any]:
        return {}


@dataclass(eq=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    """Text to image; with `enable_hr`, the hires fix (serena.hires): upscaled and denoised again at a larger size."""

    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""

    def check(self) -> None:
        super().check()
        if not isinstance(self.enable_hr, bool):
            raise InputError("enable_hr", f"enable_hr must be true or false, got {self.enable_hr!r}")
        if self.enable_hr:
            hires.check(self)

    @property
    def jobs_per_batch(self) -> int:
        return 2 if self.enable_hr else 1

    @property
    def effective_denoising_strength(self) -> float | None:
        return hires.strength_of(self) if self.enable_hr else None

    def run_batch(
        self, model: models.SdModel, batch: int, kwargs: dict[str, Any], variation: Variation | None = None
    ) -> list[Image]:
        if not self.enable_hr:
            return super().run_batch(model, batch, kwargs, variation)
        assert variation is not None
        return hires.run_batch(self, model, kwargs, variation)

    def infotext_params(self) -> dict[str, Any]:
        return hires.infotext_params(self) if self.enable_hr else {}


@dataclass(eq=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """Image to image: `init_images[i % len(init_images)]` is the start of image i, fitted to width x height by
    `resize_mode` (serena.image_resize: 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale)."""

    mode: ClassVar[Literal["txt2img", "img2img"]] = "img2img"
    outdir_option: ClassVar[str] = "outdir_img2img"

    init_images: list[Any] = field(default_factory=list)
    denoising_strength: float | None = 0.75
    resize_mode: int = 0
    # inpainting (serena.masking): a PIL image, white where the init image is repainted; the fields below it take
    # effect only with one. mask_blur, when set, sets both mask_blur_x and mask_blur_y.
    mask: Any = None
    mask_blur: int | None = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    mask_round: bool = True

    def check(self) -> None:
        super().check()
        from PIL.Image import Image

        if not isinstance(self.init_images, list | tuple) or not self.init_images:
            raise InputError("init_images", "init_images must hold at least one image for img2img, got none")
        for index, image in enumerate(self.init_images):
            if not isinstance(image, Image):
                raise InputError("init_images", f"init_images[{index}] must be a PIL image, got {type(image).__name__}")
        self.resize_mode = find_resize_mode(self.resize_mode)
        if self.mask is not None:
            self._check_mask()
        strength = self.denoising_strength
        if not _is_number(strength) or not 0 < strength <= 1:
            raise InputError("denoising_strength", f"denoising_strength must be a number in (0, 1], got {strength!r}")
        if int(self.steps * strength) < 1:
            raise InputError(
                "denoising_strength",
                f"denoising_strength {strength:g} with steps {self.steps} leaves no denoising step; "
                "raise steps or denoising_strength",
            )

    def _check_mask(self) -> None:
        """Raise InputError naming the first inpainting field out of range (only called with a mask)."""
        from PIL.Image import Image

        if not isinstance(self.mask, Image):
            raise InputError("mask", f"mask must be a PIL image, got {type(self.mask).__name__}")
        for index, image in enumerate(self.init_images):
            if image.size != self.mask.size:
                raise InputError(
                    "mask",
                    f"mask is {self.mask.width}x{self.mask.height} but init_images[{index}] is "
                    f"{image.width}x{image.height}; a mask must have its init image's size",
                )
        if self.resize_mode == LATENT_RESIZE:
            raise InputError("resize_mode", "resize_mode 3 (latent upscale) cannot be used with a mask; use 0, 1 or 2")
        if self.mask_blur is not None:
            if not _is_int(self.mask_blur):
                raise InputError("mask_blur", f"mask_blur must be an integer, got {self.mask_blur!r}")
            self.mask_blur_x = self.mask_blur_y = self.mask_blur
        for name, high in (
            ("mask_blur_x", masking.MAX_BLUR),
            ("mask_blur_y", masking.MAX_BLUR),
            ("inpaint_full_res_padding", masking.MAX_PADDING),
        ):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= high:
                shown = "mask_blur" if self.mask_blur is not None and name.startswith("mask_blur") else name
                raise InputError(shown, f"{shown} must be an integer from 0 to {high}, got {value!r}")
        self.inpainting_fill = masking.find_inpainting_fill(self.inpainting_fill)
        self.inpainting_mask_invert = masking.find_mask_mode(self.inpainting_mask_invert)
        for name in ("inpaint_full_res", "mask_round"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(name, f"{name} must be true or false, got {getattr(self, name)!r}")

    def prepared_mask(self) -> masking.PreparedMask | None:
        """The run's mask as the inpainting fields say; None without one, or for Only masked with a blank one.
        Prepared once per set of fields (every batch and every infotext of a run asks)."""
        if self.mask is None:
            return None
        settings = {
            "width": self.width,
            "height": self.height,
            "resize_mode": self.resize_mode,
            "round_alpha": self.mask_round,
            "invert": bool(self.inpainting_mask_invert),
            "blur_x": self.mask_blur_x,
            "blur_y": self.mask_blur_y,
            "full_res": self.inpaint_full_res,
            "padding": self.inpaint_full_res_padding,
        }
        key = (id(self.mask), tuple(settings.items()))
        cached = self.__dict__.get("_prepared_mask")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_prepared_mask"] = (key, masking.prepare(self.mask, **settings))
        return cached[1]

    @property
    def effective_denoising_strength(self) -> float | None:
        return self.denoising_strength

    def run_batch(
        self, model: models.SdModel, batch: int, kwargs: dict[str, Any], variation: Variation | None = None
    ) -> list[Image]:
        first = batch * self.batch_size
        originals = [
            self.init_images[index % len(self.init_images)].convert("RGB")
            for index in range(first, first + self.batch_size)
        ]
        del kwargs["width"], kwargs["height"]
        pipe = self.pipeline(model)
        assert self.denoising_strength is not None
        prepared = self.prepared_mask()
        if prepared is not None:
            return inpaint_batch(pipe, self, originals, prepared, kwargs, variation)
        if self.mask is not None:
            log.info("inpainting Only masked with a blank mask: the run is plain img2img")
        images = [resize_image(image, self.resize_mode, self.width, self.height) for image in originals]
        init: Any = images
        if self.resize_mode == LATENT_RESIZE and any(image.size != (self.width, self.height) for image in images):
            init = self._latents_resized(pipe, images, kwargs["generator"])
        return img2img_pass(pipe, self, init, self.denoising_strength, kwargs, variation)

    def _latents_resized(self, pipe: Any, images: list[Image], generators: list[Any]) -> Any:
        """Each image encoded at its own size (its latents sampled with its own generator, as the pipeline does) and
        its latents stretched to the output's; the pipeline takes latents in place of images."""
        import torch

        scale = pipe.vae_scale_factor
        latents = []
        for image, generator in zip(images, generators, strict=True):
            latents.append(
                torch.nn.functional.interpolate(
                    _encode(pipe, image, generator), size=(self.height // scale, self.width // scale), mode="bilinear"
                )
            )
        return torch.cat(latents)

    def infotext_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "Denoising strength": self.denoising_strength,
            "Resize mode": resize_mode_name(self.resize_mode) if self.resize_mode else None,
        }
        if self.mask is None or self.prepared_mask() is None:
            return params
        same_blur = self.mask_blur_x == self.mask_blur_y
        return {
            **params,
            "Mask blur": self.mask_blur_x if same_blur else None,
            "Mask blur X": None if same_blur else self.mask_blur_x,
            "Mask blur Y": None if same_blur else self.mask_blur_y,
            "Mask mode": masking.MASK_MODES[self.inpainting_mask_invert] if self.inpainting_mask_invert else None,
            "Masked content": masking.INPAINTING_FILLS[self.inpainting_fill],
            "Inpaint area": masking.ONLY_MASKED if self.inpaint_full_res else masking.WHOLE_PICTURE,
            "Masked area padding": self.inpaint_full_res_padding if self.inpaint_full_res else None,
            "Mask round": None if self.mask_round else False,
        }


def conditioning(pipe: Any, p: StableDiffusionProcessing, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with its prompt and negative_prompt lists replaced by their embeddings, encoded the web UI's way
    (serena.text_encoding: emphasis, BREAK, 75-token chunks, clip skip on both) under the run's options."""
    from serena.text_encoding import encode_batch

    assert p.opts_snapshot is not None
    snapshot = p.opts_snapshot
    kwargs = dict(kwargs)
    prompt_embeds, negative_prompt_embeds = encode_batch(
        pipe.tokenizer,
        pipe.text_encoder,
        list(kwargs.pop("prompt")),
        list(kwargs.pop("negative_prompt")),
        clip_skip=snapshot["CLIP_stop_at_last_layers"],
        emphasis=snapshot["emphasis"],
        device=pipe._execution_device,
        comma_padding_backtrack=snapshot["comma_padding_backtrack"],
    )
    return {**kwargs, "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}


def txt2img_pass(pipe: Any, p: StableDiffusionProcessing, kwargs: dict[str, Any], variation: Variation | None) -> Any:
    """One txt2img pass; with a variation, the starting noise is drawn here from the seeds' generators as the
    pipeline would (so they continue from the same state) and handed to it varied."""
    kwargs = conditioning(pipe, p, kwargs)
    if variation is not None and variation.active:
        kwargs = {**kwargs, "latents": variation.apply(_starting_noise(pipe, kwargs["generator"], p.width, p.height))}
    if is_inpainting(pipe):
        # the web UI's txt2img on an inpainting model: everything masked, over an empty (mid-grey) image
        grey = _plain_image(p.width, p.height, (127, 127, 127))
        kwargs.update(image=grey, strength=1.0, **_unmasked_inputs(pipe, p.width, p.height))
    return pipe(**kwargs).images


def is_inpainting(pipe: Any) -> bool:
    """Whether `pipe` is an inpainting model's pipeline (its UNet also takes the mask and the masked image)."""
    return bool(pipe.unet.config.in_channels == models.INPAINTING_IN_CHANNELS)


def _starting_noise(pipe: Any, generators: list[Any], width: int, height: int) -> Any:
    """The noise a pass starting from pure noise draws from the images' generators, drawn here as the pipeline would."""
    from diffusers.utils.torch_utils import randn_tensor

    scale = pipe.vae_scale_factor
    shape = (len(generators), pipe.vae.config.latent_channels, height // scale, width // scale)
    return randn_tensor(shape, generator=generators, device=pipe._execution_device, dtype=pipe.text_encoder.dtype)


def _plain_image(width: int, height: int, colour: Any) -> Image:
    from PIL import Image as PILImage

    return PILImage.new("L" if isinstance(colour, int) else "RGB", (width, height), colour)


def _masked_image_latents(pipe: Any, images: list[Image], mask: Image) -> Any:
    """An inpainting model's conditioning image: the images with their masked pixels (the mask thresholded at half, as
    the pipeline reads it) set to zero (mid-grey), encoded to the distribution's mean (no generator drawn from)."""
    import torch

    device, dtype = pipe._execution_device, pipe.vae.dtype
    pixels = torch.cat([pipe.image_processor.preprocess(image) for image in images]).to(device=device, dtype=dtype)
    held = pipe.mask_processor.preprocess(mask).to(device=device, dtype=dtype) < 0.5
    encoded = pipe.vae.encode(pixels * held).latent_dist.mode()
    return encoded * pipe.vae.config.scaling_factor


def _unmasked_inputs(pipe: Any, width: int, height: int) -> dict[str, Any]:
    """An inpainting model's pass with nothing held: the whole image masked, over an empty (all-zero) image."""
    white = _plain_image(width, height, 255)
    empty = _plain_image(width, height, (0, 0, 0))
    return {
        "mask_image": white,
        "masked_image_latents": _masked_image_latents(pipe, [empty], white),
        "width": width,
        "height": height,
    }


def img2img_pass(
    pipe: Any,
    p: StableDiffusionProcessing,
    init: Any,
    strength: float,
    kwargs: dict[str, Any],
    variation: Variation | None,
) -> Any:
    """One img2img pass over `init` (images, or latents); with a variation, the noise the pipeline draws is varied
    on its way into the scheduler's add_noise. On an inpainting model everything is masked over an empty image, and
    at strength 1 the pass starts from the noise alone (drawn here, so a variation can apply to it)."""
    kwargs = conditioning(pipe, p, kwargs)
    if is_inpainting(pipe):
        width, height = _size_of(pipe, init)
        kwargs.update(_unmasked_inputs(pipe, width, height))
        if strength == 1 and variation is not None and variation.active:
            kwargs["latents"] = variation.apply(_starting_noise(pipe, kwargs["generator"], width, height))
    if variation is None or not variation.active:
        return pipe(image=init, strength=strength, **kwargs).images
    scheduler = pipe.scheduler
    add_noise = scheduler.add_noise

    def add_varied_noise(original_samples: Any, noise: Any, timesteps: Any) -> Any:
        return add_noise(original_samples, variation.apply(noise), timesteps)

    scheduler.add_noise = add_varied_noise
    try:
        return pipe(image=init, strength=strength, **kwargs).images
    finally:
        del scheduler.add_noise


def _size_of(pipe: Any, init: Any) -> tuple[int, int]:
    """The pixel size of a pass's init: images, or latents."""
    if isinstance(init, list):
        return init[0].width, init[0].height
    return init.shape[-1] * pipe.vae_scale_factor, init.shape[-2] * pipe.vae_scale_factor


def inpaint_batch(
    pipe: Any,
    p: StableDiffusionProcessingImg2Img,
    originals: list[Image],
    prepared: masking.PreparedMask,
    kwargs: dict[str, Any],
    variation: Variation | None,
) -> list[Image]:
    """One batch of inpainting, on a 4-channel or an inpainting model: init images fitted (or cut out) and filled, an
    img2img pass whose unmasked latents are held to the init image's, and each result laid under its overlay."""
    starts, overlays = [], []
    for image in originals:
        start, overlay = masking.init_and_overlay(image, prepared, p.resize_mode, p.width, p.height)
        if p.inpainting_fill != masking.ORIGINAL:
            start = masking.fill(start, prepared.image_mask)
        starts.append(start)
        overlays.append(overlay)
    assert p.denoising_strength is not None
    if is_inpainting(pipe) and not p.mask_round:
        raise InputError(
            "mask_round",
            "mask_round false cannot be used with an inpainting model: its mask conditioning is always rounded",
        )
    results = inpaint_pass(pipe, p, starts, p.denoising_strength, prepared.image_mask, kwargs, variation)
    pairs = zip(results, overlays, strict=True)
    return [masking.apply_overlay(image, overlay, prepared.crop) for image, overlay in pairs]


def inpaint_pass(
    pipe: Any,
    p: StableDiffusionProcessingImg2Img,
    images: list[Image],
    strength: float,
    image_mask: Image,
    kwargs: dict[str, Any],
    variation: Variation | None,
) -> Any:
    """An img2img pass over `images` in which, after every step, the latents outside the mask are put back to the
    init latents noised to the next step's level with the pass's own noise (after the last step: the init latents)."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    kwargs = conditioning(pipe, p, kwargs)
    generators = kwargs["generator"]
    init: Any = images
    if p.inpainting_fill in (masking.LATENT_NOISE, masking.LATENT_NOTHING):
        # encoded here, as the pipeline would (each with its own generator), to change the masked latents
        latents = _encode_all(pipe, images, generators)
        masked = masking.latent_mask(image_mask, latents.shape[-1], latents.shape[-2], p.mask_round, latents)
        if p.inpainting_fill == masking.LATENT_NOISE:
            assert variation is not None
            noise = torch.cat(
                [
                    randn_tensor(
                        (1, *latents.shape[1:]),
                        generator=torch.Generator(device=variation.generator_device).manual_seed(seed),
                        device=latents.device,
                        dtype=latents.dtype,
                    )
                    for seed in variation.seeds
                ]
            )
            latents = latents * (1 - masked) + noise * masked
        else:
            latents = latents * (1 - masked)
        init = latents

    scheduler = pipe.scheduler
    add_noise = scheduler.add_noise
    start: dict[str, Any] = {}
    if is_inpainting(pipe):
        conditioning_image = _masked_image_latents(pipe, images, image_mask)
        kwargs.update(mask_image=image_mask, masked_image_latents=conditioning_image, width=p.width, height=p.height)
        if strength == 1:
            # the pipeline starts from the noise alone and never noises the init latents: both are made here (encoded
            # first, then drawn, from the images' generators as img2img does) for the unmasked latents to be held to
            if isinstance(init, list):
                init = _encode_all(pipe, images, generators)
            noise = _starting_noise(pipe, generators, p.width, p.height)
            start.update(latents=init, noise=noise if variation is None else variation.apply(noise))
            kwargs["latents"] = start["noise"]

    def add_noise_recorded(original_samples: Any, noise: Any, timesteps: Any) -> Any:
        if variation is not None:
            noise = variation.apply(noise)
        start.update(latents=original_samples, noise=noise)
        return add_noise(original_samples, noise, timesteps)

    steps = kwargs["num_inference_steps"]
    on_step_end = kwargs["callback_on_step_end"]

    def hold_unmasked(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
        latents = tensors["latents"]
        if "mask" not in start:
            start["mask"] = masking.latent_mask(image_mask, latents.shape[-1], latents.shape[-2], p.mask_round, latents)
            # the timesteps this pass runs (the img2img pipeline's own arithmetic)
            t_start = max(steps - min(int(steps * strength), steps), 0)
            start["timesteps"] = scheduler.timesteps[t_start * scheduler.order :]
        following = start["timesteps"][step + 1 : step + 2]
        held = add_noise(start["latents"], start["noise"], following) if len(following) else start["latents"]
        tensors["latents"] = held * (1 - start["mask"]) + latents * start["mask"]
        return on_step_end(pipeline, step, timestep, tensors)

    scheduler.add_noise = add_noise_recorded
    try:
        return pipe(image=init, strength=strength, **{**kwargs, "callback_on_step_end": hold_unmasked}).images
    finally:
        del scheduler.add_noise


def _encode_all(pipe: Any, images: list[Image], generators: list[Any]) -> Any:
    """A batch's latents as the img2img pipeline makes them, image i sampled with generator i."""
    import torch

    return torch.cat([_encode(pipe, image, generator) for image, generator in zip(images, generators, strict=True)])


def _encode(pipe: Any, image: Image, generator: Any) -> Any:
    """An image's latents as the img2img pipeline makes them: encoded, sampled with the image's generator, scaled."""
    pixels = pipe.image_processor.preprocess(image).to(device=pipe._execution_device, dtype=pipe.vae.dtype)
    return pipe.vae.encode(pixels).latent_dist.sample(generator) * pipe.vae.config.scaling_factor


@dataclass(eq=False)
class Processed:
    """The result of a run: images and everything needed to reproduce or describe each of them."""

    images: list[Any]
    prompt: str
    negative_prompt: str
    seed: int
    all_seeds: list[int]
    subseed: int
    all_subseeds: list[int]
    subseed_strength: float
    seed_resize_from_w: int
    seed_resize_from_h: int
    all_prompts: list[str]
    all_negative_prompts: list[str]
    infotexts: list[str]
    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler_name: str
    scheduler: str
    styles: list[str]
    batch_size: int
    n_iter: int
    denoising_strength: float | None
    sd_model_name: str
    sd_model_hash: str
    clip_skip: int
    eta_ddim: float
    extra_generation_params: dict[str, Any]
    job_timestamp: str
    saved_paths: list[str] = field(default_factory=list)
    skipped_override_keys: list[str] = field(default_factory=list)
    callback_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    # the web UI's: the first image that is not a grid (Serena never makes one)
    index_of_first_image: int = 0

    @property
    def info(self) -> str:
        return self.infotexts[0] if self.infotexts else ""

    def to_dict(self) -> dict[str, Any]:
        """Every field but the images, plus the runtime version: what `js()` serialises."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "images"}
        data["version"] = serena.__version__
        return data

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of `js()`, derived from the field annotations."""
        hints = typing.get_type_hints(cls)
        properties = {f.name: _json_type(hints[f.name]) for f in dataclasses.fields(cls) if f.name != "images"}
        properties["version"] = {"type": "string"}
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Processed",
            "type": "object",
            "properties": properties,
            "required": sorted(properties),
            "additionalProperties": False,
        }

    def js(self) -> str:
        """Everything but the images, as JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)


def _json_type(annotation: Any) -> dict[str, Any]:
    """A JSON Schema fragment for a field annotation (str, int, float, bool, list[...], dict[...], X | None)."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        options = [_json_type(arg) for arg in typing.get_args(annotation)]
        return {"anyOf": options}
    if origin is list:
        (item,) = typing.get_args(annotation)
        return {"type": "array", "items": _json_type(item)}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if annotation in simple:
        return {"type": simple[annotation]}
    return {}


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Run `p` with its override_settings applied through `temporary_opts`, restoring them afterwards."""
    # 1. check inputs, let extensions adjust p, check again
    p.check()
    p.callback_errors += script_callbacks.run_callbacks("before_process", p)
    p.check()
    # 2. one run at a time; overrides applied for the run only (kept when override_settings_restore_afterwards is off)
    with (
        _generation_lock,
        temporary_opts(p.override_settings, restore=p.override_settings_restore_afterwards) as applied,
    ):
        p.skipped_override_keys = applied.skipped
        return process_images_inner(p)


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    """Generate with the options as they are now, through an immutable snapshot and a RuntimeContext."""
    # the phases (prepare, execute, finalize) live in serena.processing_runner, which imports this module
    from serena.processing_runner import ProcessingRunner

    return ProcessingRunner(p).run()


def infotext_params(p: StableDiffusionProcessing, index: int) -> dict[str, Any]:
    """The `Key: value` part of image `index`'s infotext, in the familiar order."""
    assert p.opts_snapshot is not None and p.runtime_context is not None
    snapshot, model = p.opts_snapshot, p.runtime_context.model
    sampler = samplers.find_sampler(p.sampler_name)
    params: dict[str, Any] = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "Schedule type": p.scheduler if p.scheduler != samplers.AUTOMATIC else None,
        "CFG scale": f"{p.cfg_scale:g}",
        "Seed": p.all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        "Model hash": model.short_hash,
        "Model": model.name,
        "Variation seed": p.all_subseeds[index] if p.subseed_strength > 0 else None,
        "Variation seed strength": f"{p.subseed_strength:g}" if p.subseed_strength > 0 else None,
        "Seed resize from": "{}x{}".format(*p.seed_resize_from) if p.seed_resize_from else None,
        "Batch size": p.batch_size if p.batch_size > 1 else None,
        "Batch pos": index % p.batch_size if p.batch_size > 1 else None,
        **p.infotext_params(),
        "Clip skip": snapshot["CLIP_stop_at_last_layers"] if snapshot["CLIP_stop_at_last_layers"] > 1 else None,
        "Emphasis": snapshot["emphasis"] if snapshot["emphasis"] != "Original" else None,
        "Eta DDIM": f"{p.effective_eta(snapshot):g}" if sampler.uses_eta and p.effective_eta(snapshot) != 0 else None,
        "RNG": snapshot["randn_source"] if snapshot["randn_source"] != "CPU" else None,
    }
    params.update(p.extra_generation_params)
    params["Version"] = f"serena {serena.__version__}"
    return params
