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


@dataclass(frozen=True)
class Variant:
    """A way to perturb a case: as new case parameters, option overrides, or a latent hook."""

    name: str
    expect: Expectation
    applies: Callable[[Case], bool]
    change: Callable[[Case], Case] = lambda case: case
    overrides: Callable[[int], dict[str, Any]] = lambda threads: {}
    hook: Callable[[], StepHook | None] = lambda: None


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
)


@dataclass(frozen=True)
class VariantResult:
    case_id: str
    variant: str
    expect: Expectation
    verdict: Verdict
    phash_distance: int
    mean_abs: float

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
            "ok": self.ok,
        }


def run_variant(
    case: Case, base: CaseRun, variant: Variant, cases_dir: Path, threads: int, tolerances: Tolerances
) -> VariantResult:
    """Run one variant of a case and judge it against the base run, image by image.

    Noise must leave every image equivalent, so the most-moved image counts; a control must change every image,
    so the least-moved image counts.
    """
    run = run_case(
        variant.change(case),
        cases_dir,
        threads=threads,
        extra_overrides=variant.overrides(threads),
        step_hook=variant.hook(),
    )
    pairs = [
        compare_images(image, measures, base_image, base_measures, tolerances)
        for image, measures, base_image, base_measures in zip(
            run.images, run.measures, base.images, base.measures, strict=True
        )
    ]
    if variant.expect == "changed":
        verdict, distance, mean_abs = min(pairs, key=lambda r: (r[0] is Verdict.CHANGED, r[1], r[2]))
    else:
        verdict, distance, mean_abs = max(pairs, key=lambda r: (r[0] is Verdict.CHANGED, r[1], r[2]))
    return VariantResult(case.id, variant.name, variant.expect, verdict, distance, mean_abs)
