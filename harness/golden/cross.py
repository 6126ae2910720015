"""Distances between two recorded golden sets (e.g. cpu-fp32 and cuda-fp32), case by case and image by image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.config import HarnessConfig
from harness.golden.manifest import load_golden_set
from harness.golden.measures import mean_abs_difference, phash_distance, ssim
from harness.golden.set_key import parse_environment_key
from harness.outcome import CheckResult, Outcome


@dataclass
class CrossReport:
    first: str
    second: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    missing_reason: str | None = None

    def check_result(self) -> CheckResult:
        if self.missing_reason:
            return CheckResult("golden cross", Outcome.SKIPPED, "nothing to compare", reason=self.missing_reason)
        if not self.rows:
            return CheckResult(
                "golden cross", Outcome.INCONCLUSIVE, "no case in both sets", reason="the sets share no case"
            )
        worst_bits = max(row["phash_distance"] for row in self.rows)
        worst_mean = max(row["mean_abs"] for row in self.rows)
        least_ssim = min(row["ssim"] for row in self.rows)
        return CheckResult(
            "golden cross",
            Outcome.PASSED,
            f"{self.first} vs {self.second}: {len(self.rows)} images, phash16 up to {worst_bits} bits, "
            f"mean abs up to {worst_mean:.3f}, SSIM down to {least_ssim:.4f}",
            figures={
                "rows": self.rows,
                "max_phash_distance": worst_bits,
                "max_mean_abs": round(worst_mean, 4),
                "min_ssim": least_ssim,
            },
        )


def cross_sets(cfg: HarnessConfig, first: str, second: str) -> CrossReport:
    """Informational: how far one environment's goldens are from another's (both must be recorded)."""
    parse_environment_key(first)
    parse_environment_key(second)
    goldens_dir = cfg.path("golden.goldens_dir")
    sets = [load_golden_set(goldens_dir, key) for key in (first, second)]
    report = CrossReport(first, second)
    for golden_set in sets:
        if not golden_set.exists:
            hint = (
                " (record it on a machine with a GPU: golden update --all --device cuda)"
                if "cuda" in golden_set.key
                else ""
            )
            report.missing_reason = f"no {golden_set.key} set recorded in {goldens_dir}{hint}"
            return report
    a, b = sets
    for case_id in sorted(set(a.entries) & set(b.entries)):
        entry_a, entry_b = a.entries[case_id], b.entries[case_id]
        if entry_a.digest != entry_b.digest:
            continue
        for index, ((name_a, m_a), (name_b, m_b)) in enumerate(zip(entry_a.images, entry_b.images, strict=False)):
            image_a, image_b = a.load_image(name_a, m_a), b.load_image(name_b, m_b)
            report.rows.append(
                {
                    "case": case_id,
                    "index": index,
                    "phash_distance": phash_distance(m_a.phash16, m_b.phash16),
                    "mean_abs": round(mean_abs_difference(image_a, image_b), 4),
                    "ssim": round(ssim(image_a, image_b), 6),
                    "identical": m_a.sha256 == m_b.sha256,
                }
            )
    return report
