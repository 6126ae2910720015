"""Fixtures the runtime's quality tests share."""

from __future__ import annotations

from typing import Any

import pytest

from serena.models import TINY_MODEL_DIR


@pytest.fixture(scope="module")
def plain_pipelines() -> tuple[Any, Any]:
    """Plain diffusers txt2img and img2img pipelines on the shipped model's components, DDIM: what Serena's pixels
    are compared with where diffusers has the same computation."""
    import torch  # noqa: F401 - imported before diffusers, as users do
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    txt = StableDiffusionPipeline.from_pretrained(
        TINY_MODEL_DIR, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    txt.scheduler = DDIMScheduler.from_config(txt.scheduler.config)
    txt.set_progress_bar_config(disable=True)
    img = StableDiffusionImg2ImgPipeline(**txt.components)
    img.set_progress_bar_config(disable=True)
    return txt, img
