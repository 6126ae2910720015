"""Helpers shared by the tests: fast generation settings, processing builders and image measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_EXTENSIONS = REPO_ROOT / "examples" / "extensions"

# Small, fast generation settings: 64 px and 10 steps, where prompt, CFG and sampler changes move the image.
FAST = {"width": 64, "height": 64, "steps": 10, "sampler_name": "DDIM", "cfg_scale": 7.5, "seed": 1}


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
