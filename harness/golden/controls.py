"""Noise variants and negative controls: evidence that the harness tells harmless noise from real change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.golden.cases import Case
from harness.golden.compare import Verdict, compare_images
from harness.golden.manifest import Tolerances
from harness.golden.runner import CaseRun, StepHook, run_case

Expectation = Literal["changed", "equivalent"]
JITTER = 1e-4
# Image controls: slight enough that phash16 stays within tolerance on the shipped model's 64 px images (it moved
# 0-4 bits for each), so only mean abs or SSIM can catch them.
BLUR_RADIUS = 0.5
CONTRAST_FACTOR = 0.95
SATURATION_FACTOR = 0.9


@dataclass(frozen=True)
class Variant:
    """A way to perturb a case: as new case parameters, option overrides, or a latent hook."""

    name: str
    expect: Expectation
    applies: Callable[[Case], bool]
    change: Callable[[Case], Case] = lambda case: case
    overrides: Callable[[int], dict[str, Any]] = lambda threads: {}
    hook: Callable[[], StepHook | None] = lambda: None
    # a change to the decoded images themselves (no new generation): what phash is blind to
    post: Callable[[Any], Any] | None = None


def _jitter_hook() -> StepHook:
    """Add N(0, 1e-4) to the latents after the first step: numeric noise far below any real change."""
    import torch

    generator = torch.Generator().manual_seed(1234)

    def hook(step: int, tensors: dict[str, Any]) -> None:
        if step == 0:
            latents = tensors["latents"]
            noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32) * JITTER
            tensors["latents"] = latents + noise.to(latents.device, latents.dtype)

    return hook


def _blur(image: Any) -> Any:
    from PIL import ImageFilter

    return image.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))


def _contrast(image: Any) -> Any:
    from PIL import ImageEnhance

    return ImageEnhance.Contrast(image).enhance(CONTRAST_FACTOR)


def _desaturate(image: Any) -> Any:
    from PIL import ImageEnhance

    return ImageEnhance.Color(image).enhance(SATURATION_FACTOR)


def _other_sampler(case: Case) -> Case:
    return case.with_changes(sampler="Euler" if case.sampler != "Euler" else "DDIM")


def _one_character(case: Case) -> Case:
    prompt = case.prompt
    for position in range(len(prompt) - 1, -1, -1):
        char = prompt[position]
        if char.isalpha():
            # the shipped tokenizer lowercases, so change the letter itself, not its case
            replacement = "b" if char.lower() == "a" else "a"
            return case.with_changes(prompt=prompt[:position] + replacement + prompt[position + 1 :])
    return case.with_changes(prompt=prompt + "x")


def _is_img2img(case: Case) -> bool:
    return case.mode == "img2img"


def _strength(delta: float) -> Callable[[Case], bool]:
    def applies(case: Case) -> bool:
        return _is_img2img(case) and 0 < (case.denoising_strength or 0) + delta <= 1

    return applies


def _always(case: Case) -> bool:
    return True


NOISE_VARIANTS: tuple[Variant, ...] = (
    Variant("rerun", "equivalent", _always),
    Variant("threads 1", "equivalent", _always, overrides=lambda threads: {"num_threads": 1}),
    Variant("threads 2", "equivalent", _always, overrides=lambda threads: {"num_threads": 2}),
    Variant("latent jitter 1e-4", "equivalent", _always, hook=_jitter_hook),
)
NEGATIVE_CONTROLS: tuple[Variant, ...] = (
    Variant("seed+1", "changed", _always, change=lambda c: c.with_changes(seed=c.seed + 1)),
    Variant("steps+1", "changed", _always, change=lambda c: c.with_changes(steps=c.steps + 1)),
    Variant("CFG -0.5", "changed", _always, change=lambda c: c.with_changes(cfg_scale=c.cfg_scale - 0.5)),
    Variant("prompt one character", "changed", _always, change=_one_character),
    Variant("another sampler", "changed", _always, change=_other_sampler),
    Variant(
        "strength +0.1",
        "changed",
        _strength(0.1),
        change=lambda c: c.with_changes(denoising_strength=round((c.denoising_strength or 0) + 0.1, 4)),
    ),
    Variant(
        "strength -0.1",
        "changed",
        _strength(-0.1),
        change=lambda c: c.with_changes(denoising_strength=round((c.denoising_strength or 0) - 0.1, 4)),
    ),
    Variant(f"blur {BLUR_RADIUS} px", "changed", _always, post=_blur),
    Variant(f"contrast x{CONTRAST_FACTOR}", "changed", _always, post=_contrast),
    Variant(f"saturation x{SATURATION_FACTOR}", "changed", _always, post=_desaturate),
)


@dataclass(frozen=True)
class VariantResult:
    case_id: str
    variant: str
    expect: Expectation
    verdict: Verdict
    phash_distance: int
    mean_abs: float
    ssim: float = 1.0
    beyond: tuple[str, ...] = ()  # the measures past tolerance
    min_ssim: float = 1.0  # the least SSIM over the case's images (the noise floor's figure)

    @property
    def ok(self) -> bool:
        if self.expect == "changed":
            return self.verdict is Verdict.CHANGED
        return self.verdict in (Verdict.IDENTICAL, Verdict.EQUIVALENT)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case_id,
            "variant": self.variant,
            "expect": self.expect,
            "verdict": str(self.verdict),
            "phash_distance": self.phash_distance,
            "mean_abs": round(self.mean_abs, 4),
            "ssim": round(self.ssim, 6),
            "beyond": list(self.beyond),
            "ok": self.ok,
        }


def run_variant(
    case: Case, base: CaseRun, variant: Variant, cases_dir: Path, threads: int, tolerances: Tolerances
) -> VariantResult:
    """Run one variant of a case and judge it against the base run, image by image.

    Noise must leave every image equivalent, so the most-moved image counts; a control must change every image,
    so the least-moved image counts.
    """
    if variant.post is not None:
        from harness.golden.measures import measure

        images = [variant.post(image) for image in base.images]
        return judge_variant(case, variant, images, [measure(image) for image in images], base, tolerances)
    run = run_case(
        variant.change(case),
        cases_dir,
        threads=threads,
        extra_overrides=variant.overrides(threads),
        step_hook=variant.hook(),
    )
    return judge_variant(case, variant, run.images, run.measures, base, tolerances)


def judge_variant(
    case: Case, variant: Variant, images: list[Any], measures: list[Any], base: CaseRun, tolerances: Tolerances
) -> VariantResult:
    pairs = [
        compare_images(image, measure, base_image, base_measure, tolerances)
        for image, measure, base_image, base_measure in zip(images, measures, base.images, base.measures, strict=True)
    ]
    if variant.expect == "changed":
        judged = min(pairs, key=lambda r: (r.verdict is Verdict.CHANGED, r.phash_distance, r.mean_abs, -r.ssim))
    else:
        judged = max(pairs, key=lambda r: (r.verdict is Verdict.CHANGED, r.phash_distance, r.mean_abs, -r.ssim))
    return VariantResult(
        case.id,
        variant.name,
        variant.expect,
        judged.verdict,
        judged.phash_distance,
        judged.mean_abs,
        judged.ssim,
        judged.beyond,
        min(p.ssim for p in pairs),
    )
