"""`golden calibrate` and `golden selftest`: measure the noise floor; prove every negative control is detected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.config import HarnessConfig
from harness.golden.cases import Case, load_cases
from harness.golden.controls import NEGATIVE_CONTROLS, NOISE_VARIANTS, VariantResult, run_variant
from harness.golden.manifest import GoldenSet, Tolerances, UpdateQueue, load_golden_set
from harness.golden.runner import isolated_runtime, run_case
from harness.golden.selection import Selection
from harness.golden.set_key import environment_key
from harness.outcome import CheckResult, Outcome

Progress = Callable[[str], None]
# The SSIM tolerance calibrate derives: the noise floor's distance from 1, times this headroom (phash16 and mean abs
# have 2-4x over their floors), kept within [SSIM_LOOSEST, SSIM_STRICTEST] and rounded down to 4 decimals.
SSIM_HEADROOM = 10.0
SSIM_STRICTEST = 0.999
SSIM_LOOSEST = 0.9
# selftest's default base cases: a txt2img with guidance, an ancestral sampler, an img2img
SELFTEST_CASES = ("t2i-euler", "t2i-euler-a", "i2i-ddim-gradient")


@dataclass
class ControlsReport:
    kind: str  # "calibrate" or "selftest"
    environment_key: str
    tolerances: Tolerances
    results: list[VariantResult] = field(default_factory=list)
    noise_floor: dict[str, Any] | None = None

    def check_result(self) -> CheckResult:
        failures = [r for r in self.results if not r.ok]
        if not self.results:
            return CheckResult(self.kind, Outcome.INCONCLUSIVE, "no variant ran", reason="no case selected")
        if self.kind == "calibrate":
            floor = self.noise_floor or {}
            summary = (
                f"noise floor on {self.environment_key}: phash16 <= {floor.get('max_phash_distance')} bits, "
                f"mean abs <= {floor.get('max_mean_abs')}, SSIM >= {floor.get('min_ssim')} "
                f"(tolerance {self.tolerances.phash_bits} bits, {self.tolerances.mean_abs:g}, "
                f"{self.tolerances.ssim:g})"
            )
            if "derived_ssim_tolerance" in floor:
                summary += f"; SSIM tolerance derived: {floor['derived_ssim_tolerance']:g}"
        else:
            controls = [r for r in self.results if r.expect == "changed"]
            noise = [r for r in self.results if r.expect == "equivalent"]
            summary = (
                f"{sum(r.ok for r in controls)}/{len(controls)} negative controls judged changed, "
                f"{sum(r.ok for r in noise)}/{len(noise)} noise variants judged equivalent"
            )
        problems = tuple(
            f"{r.case_id} {r.variant}: judged {r.verdict}, expected {r.expect} "
            f"(phash16 {r.phash_distance} bits, mean abs {r.mean_abs:.3f}, SSIM {r.ssim:.4f})"
            for r in failures
        )
        return CheckResult(
            check=f"golden {self.kind}",
            outcome=Outcome.FAILED if failures else Outcome.PASSED,
            summary=summary,
            figures={"variants": [r.to_dict() for r in self.results], "noise_floor": self.noise_floor},
            problems=problems,
        )


def _select(cfg: HarnessConfig, patterns: tuple[str, ...], default: tuple[str, ...] | None) -> tuple[list[Case], Any]:
    cases_dir = cfg.path("golden.cases_dir")
    cases = load_cases(cases_dir)
    if patterns:
        chosen = Selection(patterns).apply(cases)
    elif default is not None:
        chosen = [case for case in cases if case.id in default] or cases[:2]
    else:
        chosen = cases
    return chosen, cases_dir


def _tolerances(cfg: HarnessConfig, key: str) -> tuple[Tolerances, GoldenSet]:
    golden_set = load_golden_set(cfg.path("golden.goldens_dir"), key)
    return Tolerances.resolve(cfg, golden_set), golden_set


def _run_variants(
    cfg: HarnessConfig,
    cases: list[Case],
    cases_dir: Any,
    variants: tuple,
    tolerances: Tolerances,
    progress: Progress | None,
) -> list[VariantResult]:
    threads = cfg["golden.num_threads"]
    results: list[VariantResult] = []
    with isolated_runtime():
        for case in cases:
            base = run_case(case, cases_dir, threads=threads)
            for variant in variants:
                if not variant.applies(case):
                    continue
                if progress is not None:
                    progress(f"{case.id}: {variant.name}")
                results.append(run_variant(case, base, variant, cases_dir, threads, tolerances))
    return results


def derived_ssim_tolerance(min_ssim: float) -> float:
    """The SSIM tolerance a noise floor of `min_ssim` calls for (see SSIM_HEADROOM)."""
    import math

    derived = 1.0 - SSIM_HEADROOM * (1.0 - min_ssim)
    return max(SSIM_LOOSEST, min(SSIM_STRICTEST, math.floor(derived * 10_000) / 10_000))


def calibrate(
    cfg: HarnessConfig,
    *,
    patterns: tuple[str, ...] = (),
    record: bool = True,
    retune: bool = False,
    progress: Progress | None = None,
) -> ControlsReport:
    """Measure how far harmless noise moves each case; record the floor in the set; fail if it reaches tolerance.

    The set's SSIM tolerance is derived from the floor when the set has none yet, or with `retune`; an existing one
    is never loosened silently.
    """
    key = environment_key("cpu", "fp32")
    tolerances, golden_set = _tolerances(cfg, key)
    cases, cases_dir = _select(cfg, patterns, None)
    results = _run_variants(cfg, cases, cases_dir, NOISE_VARIANTS, tolerances, progress)
    floor = {
        "max_phash_distance": max((r.phash_distance for r in results), default=0),
        "max_mean_abs": round(max((r.mean_abs for r in results), default=0.0), 4),
        "min_ssim": round(min((r.min_ssim for r in results), default=1.0), 6),
        "per_variant": {
            variant.name: {
                "max_phash_distance": max((r.phash_distance for r in results if r.variant == variant.name), default=0),
                "max_mean_abs": round(max((r.mean_abs for r in results if r.variant == variant.name), default=0.0), 4),
                "min_ssim": round(min((r.min_ssim for r in results if r.variant == variant.name), default=1.0), 6),
            }
            for variant in NOISE_VARIANTS
        },
        "cases": sorted({r.case_id for r in results}),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "threads": cfg["golden.num_threads"],
    }
    new_tolerances = None
    if results and (retune or not golden_set.ssim_recorded):
        derived = derived_ssim_tolerance(floor["min_ssim"])
        floor["derived_ssim_tolerance"] = derived
        new_tolerances = Tolerances(golden_set.tolerances.phash_bits, golden_set.tolerances.mean_abs, derived)
    report = ControlsReport("calibrate", key, tolerances, results, floor)
    if record and golden_set.exists:
        queue = UpdateQueue(golden_set)
        queue.noise_floor = floor
        queue.tolerances = new_tolerances
        queue.flush()
    return report


def selftest(cfg: HarnessConfig, *, patterns: tuple[str, ...] = (), progress: Progress | None = None) -> ControlsReport:
    """Every negative control must be judged changed and every noise variant equivalent."""
    key = environment_key("cpu", "fp32")
    tolerances, _ = _tolerances(cfg, key)
    cases, cases_dir = _select(cfg, patterns, SELFTEST_CASES)
    results = _run_variants(cfg, cases, cases_dir, NEGATIVE_CONTROLS + NOISE_VARIANTS, tolerances, progress)
    return ControlsReport("selftest", key, tolerances, results)
