"""Hires fix: txt2img at width x height, upscaled, then denoised again at the larger size by an img2img pass.

The web UI's semantics, computed our own way:
- The target is width x height times `hr_scale`, or `hr_resize_x` x `hr_resize_y` (one of them 0: the other follows
  the aspect; both set: the image is upscaled until it covers that size, then cropped evenly to it).
- `hr_upscaler` "Latent…" upscales the first pass's latents (never decoded); an image upscaler (Lanczos, Nearest,
  None) upscales the decoded image, which the second pass encodes again.
- The second pass is img2img at `denoising_strength` (0.75 when unset) with `hr_second_pass_steps` steps (0: the
  first pass's), `hr_sampler_name` / `hr_scheduler` (unset: the first pass's), `hr_prompt` / `hr_negative_prompt`
  (empty: the first pass's, styles applied alike), and fresh generators seeded with each image's seed, so it equals
  a plain img2img run over the upscaled image. Variation seeds apply to its noise too.
- Infotext keeps the first pass's Size and adds Denoising strength, Hires upscale or Hires resize, Hires steps,
  Hires upscaler, Hires sampler, Hires schedule type and Hires prompt / Hires negative prompt where set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serena import samplers, upscalers
from serena.errors import InputError

if TYPE_CHECKING:
    from PIL.Image import Image

    from serena.models import SdModel
    from serena.noise import Variation
    from serena.processing import StableDiffusionProcessingTxt2Img

DEFAULT_DENOISING_STRENGTH = 0.75
DEFAULT_UPSCALER = "Latent"
MAX_SCALE = 8.0
SAME = ("", "Use same sampler", "Use same scheduler")


@dataclass(frozen=True)
class HiresSize:
    """The second pass's size, and the size the first pass is upscaled to before it is cropped to it."""

    width: int
    height: int
    upscale_width: int
    upscale_height: int


def _is_set(name: str | None) -> bool:
    return name is not None and name.strip() not in SAME


def target_size(p: StableDiffusionProcessingTxt2Img) -> HiresSize:
    """Where the hires pass ends up; InputError naming the field when that is not a usable size."""
    from serena.processing import MAX_SIZE, MIN_SIZE

    width, height = p.width, p.height
    x, y = p.hr_resize_x, p.hr_resize_y
    if x == 0 and y == 0:
        target_w, target_h = int(width * p.hr_scale), int(height * p.hr_scale)
        cover_w, cover_h, field = target_w, target_h, "hr_scale"
    elif y == 0:
        target_w, target_h = x, x * height // width
        cover_w, cover_h, field = target_w, target_h, "hr_resize_x"
    elif x == 0:
        target_w, target_h = y * width // height, y
        cover_w, cover_h, field = target_w, target_h, "hr_resize_y"
    else:
        target_w, target_h, field = x, y, "hr_resize_x"
        # upscaled, aspect kept, until it covers x by y; then cropped evenly
        if width / height < x / y:
            cover_w, cover_h = x, -(-x * height // width)
        else:
            cover_w, cover_h = -(-y * width // height), y
    for value in (target_w, target_h, cover_w, cover_h):
        if not MIN_SIZE <= value <= MAX_SIZE or value % 8:
            raise InputError(
                field,
                f"hires fix from {width}x{height} gives {target_w}x{target_h} (upscaled to {cover_w}x{cover_h} "
                f"first); each side must be a multiple of 8 from {MIN_SIZE} to {MAX_SIZE}",
            )
    return HiresSize(target_w, target_h, cover_w, cover_h)


def check(p: StableDiffusionProcessingTxt2Img) -> None:
    """Raise InputError naming the first hires field out of range (only called with enable_hr on)."""
    from serena.processing import MAX_STEPS, _is_int, _is_number

    if not _is_number(p.hr_scale) or not 1 <= p.hr_scale <= MAX_SCALE:
        raise InputError("hr_scale", f"hr_scale must be a number from 1 to {MAX_SCALE:g}, got {p.hr_scale!r}")
    for name in ("hr_resize_x", "hr_resize_y"):
        if not _is_int(getattr(p, name)) or getattr(p, name) < 0:
            raise InputError(name, f"{name} must be 0 (use hr_scale) or a size in pixels, got {getattr(p, name)!r}")
    target_size(p)
    upscalers.find_upscaler(p.hr_upscaler or DEFAULT_UPSCALER)
    if not _is_int(p.hr_second_pass_steps) or not 0 <= p.hr_second_pass_steps <= MAX_STEPS:
        raise InputError(
            "hr_second_pass_steps",
            f"hr_second_pass_steps must be 0 (as steps) or an integer up to {MAX_STEPS}, "
            f"got {p.hr_second_pass_steps!r}",
        )
    strength = strength_of(p)
    if not _is_number(strength) or not 0 < strength <= 1:
        raise InputError("denoising_strength", f"denoising_strength must be a number in (0, 1], got {strength!r}")
    if int(second_pass_steps(p) * strength) < 1:
        raise InputError(
            "denoising_strength",
            f"denoising_strength {strength:g} with {second_pass_steps(p)} hires steps leaves no denoising step",
        )
    sampler = second_pass_sampler(p)
    try:
        samplers.check_schedule(sampler, second_pass_schedule(p))
    except InputError as exc:
        raise InputError("hr_scheduler" if _is_set(p.hr_scheduler) else "hr_sampler_name", str(exc)) from None
    for name in ("hr_prompt", "hr_negative_prompt"):
        if not isinstance(getattr(p, name), str):
            raise InputError(name, f"{name} must be a string, got {getattr(p, name)!r}")


def strength_of(p: StableDiffusionProcessingTxt2Img) -> float:
    return DEFAULT_DENOISING_STRENGTH if p.denoising_strength is None else p.denoising_strength


def second_pass_steps(p: StableDiffusionProcessingTxt2Img) -> int:
    return p.hr_second_pass_steps or p.steps


def second_pass_sampler(p: StableDiffusionProcessingTxt2Img) -> samplers.SamplerInfo:
    if not _is_set(p.hr_sampler_name):
        return samplers.find_sampler(p.sampler_name)
    try:
        return samplers.find_sampler(str(p.hr_sampler_name))
    except InputError as exc:
        raise InputError("hr_sampler_name", str(exc).replace("sampler_name:", "hr_sampler_name:")) from None


def second_pass_schedule(p: StableDiffusionProcessingTxt2Img) -> samplers.ScheduleType:
    if not _is_set(p.hr_scheduler):
        return samplers.find_schedule_type(p.scheduler)
    try:
        return samplers.find_schedule_type(p.hr_scheduler)
    except InputError as exc:
        raise InputError("hr_scheduler", str(exc).replace("scheduler ", "hr_scheduler ", 1)) from None


def infotext_params(p: StableDiffusionProcessingTxt2Img) -> dict[str, Any]:
    size = target_size(p)
    resized = p.hr_resize_x or p.hr_resize_y
    return {
        "Denoising strength": f"{strength_of(p):g}",
        "Hires upscale": None if resized else f"{p.hr_scale:g}",
        "Hires resize": f"{size.width}x{size.height}" if resized else None,
        "Hires steps": p.hr_second_pass_steps or None,
        "Hires upscaler": p.hr_upscaler or DEFAULT_UPSCALER,
        "Hires sampler": second_pass_sampler(p).name if _is_set(p.hr_sampler_name) else None,
        "Hires schedule type": second_pass_schedule(p).label if _is_set(p.hr_scheduler) else None,
        "Hires prompt": p.hr_prompt or None,
        "Hires negative prompt": p.hr_negative_prompt or None,
    }


def _crop_centre(latents: Any, width: int, height: int, scale: int) -> Any:
    rows, columns = height // scale, width // scale
    top, left = (latents.shape[-2] - rows) // 2, (latents.shape[-1] - columns) // 2
    return latents[..., top : top + rows, left : left + columns]


def _second_pass_prompts(p: StableDiffusionProcessingTxt2Img, kwargs: dict[str, Any]) -> tuple[list[str], list[str]]:
    from serena import shared

    count = len(kwargs["prompt"])
    prompt = p.hr_prompt
    negative = p.hr_negative_prompt
    if (prompt or negative) and p.styles:
        from serena import styles

        saved = styles.load_styles(shared.cmd_opts.resolved_styles_file)
        styled_prompt, styled_negative = styles.apply_styles(prompt, negative, list(p.styles), saved)
        prompt, negative = (styled_prompt if prompt else ""), (styled_negative if negative else "")
    prompts = [prompt] * count if prompt else list(kwargs["prompt"])
    negatives = [negative] * count if negative else list(kwargs["negative_prompt"])
    return prompts, negatives


def run_batch(
    p: StableDiffusionProcessingTxt2Img, model: SdModel, kwargs: dict[str, Any], variation: Variation
) -> list[Image]:
    """One batch with the hires fix: the first pass, the upscale, the second pass."""
    import torch

    from serena import shared
    from serena.processing import img2img_pass, txt2img_pass

    size = target_size(p)
    upscaler = upscalers.find_upscaler(p.hr_upscaler or DEFAULT_UPSCALER)
    latent = upscalers.is_latent_upscaler(upscaler.name)
    txt2img = model.pipeline_for("txt2img")
    scale = txt2img.vae_scale_factor

    # 1. the first pass at width x height: latents kept for a latent upscaler, decoded images otherwise
    first = txt2img_pass(txt2img, p, {**kwargs, "output_type": "latent" if latent else "pil"}, variation)
    if shared.state.interrupted or shared.state.skipped:
        if not latent:
            return first
        decoded = txt2img.vae.decode(first / txt2img.vae.config.scaling_factor, return_dict=False)[0]
        return txt2img.image_processor.postprocess(decoded.detach(), output_type="pil")

    # 2. upscaled until it covers the target, then cropped evenly to it
    if latent:
        upscaled: Any = upscalers.upscale_latent(first, upscaler.name, size.upscale_height, size.upscale_width)
        upscaled = _crop_centre(upscaled, size.width, size.height, scale)
    else:
        from serena.image_resize import resize_image

        upscaled = [
            resize_image(
                upscalers.upscale_image(image, upscaler.name, size.upscale_width, size.upscale_height),
                1,
                size.width,
                size.height,
            )
            for image in first
        ]

    # 3. the second pass: img2img over the upscaled images, with fresh generators seeded like the first pass's
    prompts, negatives = _second_pass_prompts(p, kwargs)
    pipe = model.pipeline_for("img2img")
    pipe.scheduler = samplers.build_scheduler(second_pass_sampler(p), model.scheduler_config, second_pass_schedule(p))
    hr_kwargs = {key: value for key, value in kwargs.items() if key not in ("width", "height", "latents")}
    hr_kwargs.update(
        prompt=prompts,
        negative_prompt=negatives,
        num_inference_steps=second_pass_steps(p),
        generator=[torch.Generator(device=variation.generator_device).manual_seed(seed) for seed in variation.seeds],
    )
    shared.state.next_job(int(second_pass_steps(p) * strength_of(p)))
    return img2img_pass(pipe, p, upscaled, strength_of(p), hr_kwargs, variation)
