"""Fitting an init image to the output size: the web UI's img2img resize modes.

0 Just resize: stretched to width x height.
1 Crop and resize: scaled, aspect kept, until it covers width x height; the overhang is cropped evenly from both sides.
2 Resize and fill: scaled, aspect kept, until it fits inside; the bands left empty are filled by stretching the
  image's own edge rows (or columns) across them.
3 Just resize (latent upscale): the image is encoded at its own size and its latents are stretched (bilinear) to the
  output's; nothing is resized here (see StableDiffusionProcessingImg2Img).
Scaling uses Lanczos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from serena.errors import InputError

if TYPE_CHECKING:
    from PIL.Image import Image

ResizeMode = Literal[0, 1, 2, 3]
RESIZE_MODES: dict[int, str] = {
    0: "Just resize",
    1: "Crop and resize",
    2: "Resize and fill",
    3: "Just resize (latent upscale)",
}
LATENT_RESIZE = 3


def resize_mode_name(mode: int) -> str:
    return RESIZE_MODES[mode]


def find_resize_mode(value: object) -> int:
    """A resize mode given as its number or its name (as infotext writes it); InputError naming resize_mode."""
    if isinstance(value, int) and not isinstance(value, bool) and value in RESIZE_MODES:
        return value
    if isinstance(value, str):
        for number, name in RESIZE_MODES.items():
            if value.strip().lower() in (name.lower(), str(number)):
                return number
    choices = ", ".join(f"{number} ({name})" for number, name in RESIZE_MODES.items())
    raise InputError("resize_mode", f"resize_mode must be one of {choices}, got {value!r}")


def _scaled(image: Image, width: int, height: int) -> Image:
    from PIL import Image as PILImage

    if image.size == (width, height):
        return image
    return image.resize((width, height), PILImage.Resampling.LANCZOS)


def resize_image(image: Image, mode: int, width: int, height: int) -> Image:
    """`image` (RGB, or a mask) fitted to width x height by resize mode `mode` (0, 1 or 2; mode 3 resizes latents
    instead)."""
    from PIL import Image as PILImage

    if mode in (0, LATENT_RESIZE):
        return _scaled(image, width, height) if mode == 0 else image
    if image.size == (width, height):
        return image
    # 1 covers the output (the larger of the two scales), 2 fits inside it (the smaller)
    scale_w, scale_h = width / image.width, height / image.height
    scale = max(scale_w, scale_h) if mode == 1 else min(scale_w, scale_h)
    inner_w = width if scale == scale_w else max(1, round(image.width * scale))
    inner_h = height if scale == scale_h else max(1, round(image.height * scale))
    inner = _scaled(image, inner_w, inner_h)
    canvas = PILImage.new(image.mode, (width, height))
    left, top = (width - inner_w) // 2, (height - inner_h) // 2
    canvas.paste(inner, (left, top))  # negative offsets crop the overhang evenly
    if mode == 1:
        return canvas
    # 2: stretch the outermost row or column of the scaled image across each empty band
    if top > 0:
        canvas.paste(inner.crop((0, 0, inner_w, 1)).resize((width, top)), (0, 0))
        bottom = height - top - inner_h
        canvas.paste(inner.crop((0, inner_h - 1, inner_w, inner_h)).resize((width, bottom)), (0, top + inner_h))
    if left > 0:
        canvas.paste(inner.crop((0, 0, 1, inner_h)).resize((left, height)), (0, 0))
        right = width - left - inner_w
        canvas.paste(inner.crop((inner_w - 1, 0, inner_w, inner_h)).resize((right, height)), (left + inner_w, 0))
    return canvas
