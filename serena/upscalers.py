"""The upscalers Serena has, by the web UI's names: image upscalers (PIL) and latent upscale modes (torch).

Image upscalers: "None" (the image as it is), "Lanczos", "Nearest". Latent upscale modes stretch the latents with
torch.nn.functional.interpolate: "Latent" (bilinear), "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic
antialiased)", "Latent (nearest)", "Latent (nearest-exact)". Serena ships no model upscalers (ESRGAN and the like).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from serena.errors import InputError

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image


@dataclass(frozen=True)
class ImageUpscaler:
    """An image upscaler: `resample` is PIL's filter name, None for "None" (no resize). `scale` is a model
    upscaler's native factor as /sdapi/v1/upscalers lists it; None here, as a PIL resize reaches any size."""

    name: str
    resample: str | None
    scale: float | None = None


@dataclass(frozen=True)
class LatentUpscaleMode:
    """A latent upscale mode: torch's interpolation mode and whether it antialiases."""

    name: str
    mode: str
    antialias: bool = False


IMAGE_UPSCALERS: tuple[ImageUpscaler, ...] = (
    ImageUpscaler("None", None),
    ImageUpscaler("Lanczos", "LANCZOS"),
    ImageUpscaler("Nearest", "NEAREST"),
)
LATENT_UPSCALE_MODES: tuple[LatentUpscaleMode, ...] = (
    LatentUpscaleMode("Latent", "bilinear"),
    LatentUpscaleMode("Latent (antialiased)", "bilinear", antialias=True),
    LatentUpscaleMode("Latent (bicubic)", "bicubic"),
    LatentUpscaleMode("Latent (bicubic antialiased)", "bicubic", antialias=True),
    LatentUpscaleMode("Latent (nearest)", "nearest"),
    LatentUpscaleMode("Latent (nearest-exact)", "nearest-exact"),
)
_BY_NAME: dict[str, ImageUpscaler | LatentUpscaleMode] = {
    entry.name.lower(): entry for entry in (*IMAGE_UPSCALERS, *LATENT_UPSCALE_MODES)
}


def upscaler_names() -> list[str]:
    """The image upscalers, as /sdapi/v1/upscalers lists them."""
    return [upscaler.name for upscaler in IMAGE_UPSCALERS]


def latent_upscale_modes() -> list[str]:
    """The latent upscale modes, as /sdapi/v1/latent-upscale-modes lists them."""
    return [mode.name for mode in LATENT_UPSCALE_MODES]


def find_upscaler(name: str) -> ImageUpscaler | LatentUpscaleMode:
    """The upscaler called `name` (case-insensitive); InputError naming hr_upscaler and the valid names otherwise."""
    found = _BY_NAME.get(str(name).strip().lower())
    if found is None:
        valid = ", ".join([*upscaler_names(), *latent_upscale_modes()])
        raise InputError("hr_upscaler", f"hr_upscaler: unknown upscaler {name!r}; valid: {valid}")
    return found


def is_latent_upscaler(name: str) -> bool:
    """Whether `name` is a latent upscale mode; InputError for an unknown name, as find_upscaler."""
    return isinstance(find_upscaler(name), LatentUpscaleMode)


def upscale_image(image: Image, name: str, width: int, height: int) -> Image:
    """`image` resized to width x height by the image upscaler `name`; "None" returns it as it is, whatever its size
    (the web UI's "None" leaves the image alone)."""
    from PIL import Image as PILImage

    upscaler = find_upscaler(name)
    if not isinstance(upscaler, ImageUpscaler):
        raise InputError("hr_upscaler", f"hr_upscaler {upscaler.name!r} upscales latents, not images")
    if upscaler.resample is None or image.size == (width, height):
        return image
    return image.resize((width, height), PILImage.Resampling[upscaler.resample])


def upscale_latent(latents: torch.Tensor, name: str, height: int, width: int) -> torch.Tensor:
    """`latents` (batch, channels, h, w) stretched to the latent size of height x width pixels (1/8 of each)."""
    import torch

    mode = find_upscaler(name)
    if not isinstance(mode, LatentUpscaleMode):
        raise InputError("hr_upscaler", f"hr_upscaler {mode.name!r} upscales images, not latents")
    size = (height // 8, width // 8)
    align = {"align_corners": False} if mode.mode in ("bilinear", "bicubic") else {}
    return torch.nn.functional.interpolate(latents, size=size, mode=mode.mode, antialias=mode.antialias, **align)
