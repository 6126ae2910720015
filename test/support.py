"""Helpers shared by the tests: fast generation settings, processing builders, image measures, temporary git
repositories and the verify evidence a milestone closes from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_EXTENSIONS = REPO_ROOT / "examples" / "extensions"

# Small, fast generation settings: 64 px and 10 steps, where prompt, CFG and sampler changes move the image.
FAST = {"width": 64, "height": 64, "steps": 10, "sampler_name": "DDIM", "cfg_scale": 7.5, "seed": 1}


# Whether this test session runs in CI, read once at import: the tests themselves run with CI unset (conftest's
# outside_ci), and a check whose tool CI installs fails there instead of skipping.
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def txt2img(**overrides: Any):
    """A fast txt2img processing object; saving off unless asked for."""
    from serena.processing import StableDiffusionProcessingTxt2Img

    args = {**FAST, "prompt": "a red fox in the snow", "do_not_save_samples": True, **overrides}
    return StableDiffusionProcessingTxt2Img(**args)


def img2img(init_image: Any, **overrides: Any):
    from serena.processing import StableDiffusionProcessingImg2Img

    args = {
        **FAST,
        "prompt": "a red fox in the snow",
        "do_not_save_samples": True,
        "init_images": [init_image],
        "denoising_strength": 0.6,
        **overrides,
    }
    return StableDiffusionProcessingImg2Img(**args)


def gradient_image(width: int = 64, height: int = 64):
    """A deterministic, non-flat RGB test image."""
    from PIL import Image

    image = Image.new("RGB", (width, height))
    image.putdata([((x * 4) % 256, (y * 4) % 256, ((x + y) * 2) % 256) for y in range(height) for x in range(width)])
    return image


def phash16(image: Any) -> Any:
    import imagehash

    return imagehash.phash(image, hash_size=16)


def pixels(image: Any) -> bytes:
    return image.convert("RGB").tobytes()


def assert_float_noise_only(image: Any, other: Any) -> None:
    """The same image up to float noise: what a batch of another size gives, since it runs other float kernels
    (which ones depends on the CPU): at most 1 LSB per pixel, few pixels off, the same phash16."""
    import numpy as np

    difference = np.abs(np.asarray(image.convert("RGB"), dtype=float) - np.asarray(other.convert("RGB"), dtype=float))
    assert difference.max() <= 1 and difference.mean() < 0.01, (difference.max(), difference.mean())
    assert phash16(image) - phash16(other) == 0


def git(root: Path, *args: str) -> str:
    """Run git in `root` as a throwaway identity (tests build temporary repositories); its stdout, stripped."""
    import subprocess

    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


# -- a milestone's evidence, as `milestone verify` and `serena-verify run` leave it (for `milestone close`) --


def verify_document(head: str, *, verdict: str = "met", claims: tuple[str, ...] = ("unchanged", "unchanged")) -> dict:
    """A milestone-verify document as `milestone verify` writes it (the measurement itself is tested in quality)."""
    cases = [{"case": f"c{i}", "verdict": "identical", "claim": claim, "images": []} for i, claim in enumerate(claims)]
    plan = {
        "milestone": "M01",
        "title": "The runtime",
        "posture": "behavior-preserving",
        "baseline": "base",
        "invariants": ["all"],
        "changes": [],
        "exit_criteria": [
            {"criterion": c, "evidence": e}
            for c, e in (
                (
                    "Every golden case gives the same pixels at the baseline and at the head, or changes as declared",
                    "verify:model-outputs",
                ),
                (
                    "Every public surface renders the same at the baseline and at the head, or changes as declared",
                    "verify:surfaces",
                ),
                ("Every invariant the milestone keeps is verified at the head", "verify:invariants"),
                ("The test suite passes at the head", "check:tests"),
            )
        ],
    }
    return {
        "milestone": "M01",
        "plan": plan,
        "baseline": {"ref": "base", "sha": "0" * 40},
        "head": {"sha": head, "uncommitted": []},
        "verdict": verdict,
        "reasons": [] if verdict == "met" else ["golden c0: changed"],
        "parts": {
            "model-outputs": {"status": "met", "summary": "2 cases", "cases": cases},
            "surfaces": {
                "status": "met",
                "summary": "1 surface",
                "surfaces": [{"surface": "cli-help", "claim": "unchanged", "status": "unchanged"}],
            },
            "invariants": {
                "status": "met",
                "summary": "2/2",
                "statuses": {"INV-001": "verified", "INV-002": "not run"},
                "kept": [],
            },
            "coverage": {
                "status": "met",
                "summary": "90%",
                "total": 90.0,
                "floor": 80.0,
                "changed_lines": {"percent": 50.0, "covered": 1, "changed_measured_lines": 2},
            },
        },
        "observability": [{"surface": "Model outputs (golden cases)", "status": "Unchanged", "evidence": "A/B"}],
        "exit_criteria": [
            {"criterion": c["criterion"], "evidence": c["evidence"], "status": "met", "detail": "ok"}
            for c in plan["exit_criteria"]
        ],
        "dependencies": {"summary": "no dependency moved"},
        "ci": {"summary": "CI unchanged", "changes": []},
        "seconds": {"total": 1.0, "goldens": 0.5, "surfaces": 0.5},
    }


RUN_RESULTS = {
    "deps": {"check": "deps", "outcome": "passed", "summary": "pinned"},
    "ruff": {"check": "ruff", "outcome": "failed", "summary": "2 problems"},
    "audit-deps": {"check": "audit-deps", "outcome": "inconclusive", "summary": "0 audited", "reason": "no network"},
    "env": {"check": "env", "outcome": "passed", "summary": "recorded"},
    "golden": {"check": "golden", "outcome": "passed", "summary": "not a gate"},
}


def write_verify(root: Path, document: dict) -> Path:
    """M01's evidence folder: `document` (baseline `base`, M01's plan as it stands) and the head's run results."""
    from harness.ledger.plan import parse_plan

    ev = root / "docs/milestones/M01/evidence"
    ev.mkdir(parents=True, exist_ok=True)
    document["baseline"]["sha"] = git(root, "rev-parse", "base")
    plan_path = root / "docs/milestones/M01/M01_plan.md"
    document["plan"] = parse_plan(plan_path.read_text(encoding="utf-8"), plan_path).to_dict()
    wrapper = {
        "schema_version": 1,
        "outcome": "passed",
        "results": [{"check": "milestone-verify", "figures": document}],
    }
    (ev / "milestone-verify.json").write_text(json.dumps(wrapper), encoding="utf-8")
    run = {"schema_version": 1, "results": list(RUN_RESULTS.values())}
    (ev / "summary.json").write_text(json.dumps(run), encoding="utf-8")
    return ev
