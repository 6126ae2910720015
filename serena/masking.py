"""Inpainting on an ordinary (4-channel) model: the mask, the area denoised, what fills it, and the overlay.

The web UI's semantics, computed our own way:
- The mask is white where the image is repainted. An RGBA mask with transparency is read from its alpha channel
  (above 128 is masked, or as it is without `mask_round`), any other from its luminance. `inpainting_mask_invert` 1
  repaints the black part instead. `mask_blur_x` / `mask_blur_y` blur it with a Gaussian of that sigma along each axis
  (kernel radius int(2.5 sigma + 0.5), edges mirrored); `mask_blur` sets both.
- Whole picture (`inpaint_full_res` false): the init image and the mask are fitted to width x height by
  `resize_mode`, and the result is that size. Only masked (`inpaint_full_res` true): the mask's bounding box, grown by
  `inpaint_full_res_padding` pixels and then to the output's aspect, is cut from the init image and denoised at
  width x height; the result is scaled back into that box of the init image, so it keeps the init image's size. A
  blank mask then has no box: the run is plain img2img, as in the web UI.
- `inpainting_fill`: 0 fill (the masked pixels replaced by blurred colours of the rest, before encoding), 1 original,
  2 latent noise (the masked latents replaced by each image's seed noise), 3 latent nothing (zeroed).
- The latent mask is the mask scaled to the latents (bicubic) and, with `mask_round`, rounded. After every denoising
  step the unmasked latents are put back to the init latents noised to the next step's level with the run's noise,
  and after the last step to the init latents themselves (diffusers' inpainting of 4-channel models does the same;
  the web UI blends the model's denoised estimate instead, which comes to the same for deterministic first-order
  samplers with a rounded mask).
- The decoded image is composited under the init image wherever the mask is not: the overlay is the (fitted, or
  whole) init image with the blurred mask's inverse as alpha (twice as opaque for Whole picture).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serena.errors import InputError

if TYPE_CHECKING:
    from PIL.Image import Image

INPAINTING_FILLS: dict[int, str] = {0: "fill", 1: "original", 2: "latent noise", 3: "latent nothing"}
ORIGINAL, LATENT_NOISE, LATENT_NOTHING = 1, 2, 3
MASK_MODES: dict[int, str] = {0: "Inpaint masked", 1: "Inpaint not masked"}
ONLY_MASKED = "Only masked"
WHOLE_PICTURE = "Whole picture"
MAX_BLUR = 64
MAX_PADDING = 256
# the blur radii (and how often each is laid down) of the fill: wide ones first, so every hole gets some colour
_FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


# -- reading the fields ------------------------------------------------------------------------
def find_inpainting_fill(value: object) -> int:
    """A masked-content mode given as its number or its name (as infotext writes it); InputError naming the field."""
    if isinstance(value, int) and not isinstance(value, bool) and value in INPAINTING_FILLS:
        return value
    if isinstance(value, str):
        for number, name in INPAINTING_FILLS.items():
            if value.strip().lower() in (name, str(number)):
                return number
    choices = ", ".join(f"{number} ({name})" for number, name in INPAINTING_FILLS.items())
    raise InputError("inpainting_fill", f"inpainting_fill must be one of {choices}, got {value!r}")


def find_mask_mode(value: object) -> int:
    """inpainting_mask_invert as 0 or 1, from a number, a bool or its infotext name (Mask mode)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in MASK_MODES:
        return value
    if isinstance(value, str):
        for number, name in MASK_MODES.items():
            if value.strip().lower() in (name.lower(), str(number)):
                return number
    raise InputError("inpainting_mask_invert", f"inpainting_mask_invert must be 0 or 1, got {value!r}")


def inpaint_area(value: str) -> bool:
    """Infotext's Inpaint area as inpaint_full_res."""
    text = value.strip().lower()
    if text in (ONLY_MASKED.lower(), WHOLE_PICTURE.lower()):
        return text == ONLY_MASKED.lower()
    raise ValueError(value)


# -- the mask ----------------------------------------------------------------------------------
def binary_mask(mask: Image, round_alpha: bool = True) -> Image:
    """The mask as 8-bit luminance: from the alpha channel of an RGBA mask that has transparency (thresholded at 128
    when `round_alpha`), else from its luminance."""
    if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
        alpha = mask.getchannel("A")
        return alpha.point(lambda value: 255 if value > 128 else 0) if round_alpha else alpha
    return mask.convert("L")


def gaussian_blur(mask: Image, sigma_x: int, sigma_y: int) -> Image:
    """`mask` (L) blurred along x then y by a Gaussian of that sigma: kernel radius int(2.5 sigma + 0.5), edges
    mirrored without repeating the edge pixel, rounded back to 8 bits."""
    import numpy as np
    from PIL import Image as PILImage
    from scipy.ndimage import gaussian_filter1d

    values = np.asarray(mask, dtype=np.float64)
    for axis, sigma in ((1, sigma_x), (0, sigma_y)):
        if sigma > 0:
            values = gaussian_filter1d(values, sigma, axis=axis, mode="mirror", truncate=2.5)
    return PILImage.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def crop_region(mask: Image, padding: int) -> tuple[int, int, int, int] | None:
    """The box (x1, y1, x2, y2) around every masked pixel, grown by `padding` within the image; None when blank."""
    box = mask.getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return max(x1 - padding, 0), max(y1 - padding, 0), min(x2 + padding, mask.width), min(y2 + padding, mask.height)


def _grow(start: int, end: int, wanted: int, limit: int) -> tuple[int, int]:
    """The span start..end grown evenly on both sides to `wanted`, shifted back inside 0..limit, cut at limit."""
    extra = wanted - (end - start)
    start -= extra // 2
    end += extra - extra // 2
    if end > limit:
        start -= end - limit
        end = limit
    if start < 0:
        end -= start
        start = 0
    return start, min(end, limit)


def expand_to_aspect(
    box: tuple[int, int, int, int], width: int, height: int, image_width: int, image_height: int
) -> tuple[int, int, int, int]:
    """`box` grown along its shorter side until its aspect is width:height, staying inside the image (where it
    cannot, it stops at the edge and the rest is left to resize-and-fill)."""
    x1, y1, x2, y2 = box
    box_w, box_h = x2 - x1, y2 - y1
    if box_w * height > box_h * width:
        y1, y2 = _grow(y1, y2, int(box_w * height / width), image_height)
    else:
        x1, x2 = _grow(x1, x2, int(box_h * width / height), image_width)
    return x1, y1, x2, y2


def fill(image: Image, mask: Image) -> Image:
    """`image` with its masked pixels replaced by the colours around them: the unmasked pixels, blurred at falling
    radii, laid over one another (premultiplied by their coverage, so a hole takes its colour from the rest)."""
    from PIL import Image as PILImage
    from PIL import ImageFilter, ImageOps

    kept = PILImage.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    result = PILImage.new("RGBA", image.size)
    for radius, repeats in _FILL_PASSES:
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


# -- one run's preparation ---------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedMask:
    """What a run needs from the mask: `image_mask` at width x height (the latent mask is made from it), the mask the
    overlay uses at the init image's (fitted) size, and for Only masked the box cut out of the init image."""

    image_mask: Image
    overlay_mask: Image
    crop: tuple[int, int, int, int] | None


def prepare(
    mask: Image,
    *,
    width: int,
    height: int,
    resize_mode: int,
    round_alpha: bool,
    invert: bool,
    blur_x: int,
    blur_y: int,
    full_res: bool,
    padding: int,
) -> PreparedMask | None:
    """The run's mask prepared as the fields say; None for Only masked with a blank mask (the run is plain img2img)."""
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageOps

    from serena.image_resize import resize_image

    image_mask = binary_mask(mask, round_alpha)
    if invert:
        image_mask = ImageOps.invert(image_mask)
    if blur_x > 0 or blur_y > 0:
        image_mask = gaussian_blur(image_mask, blur_x, blur_y)
    if full_res:
        box = crop_region(image_mask, padding)
        if box is None:
            return None
        box = expand_to_aspect(box, width, height, image_mask.width, image_mask.height)
        return PreparedMask(resize_image(image_mask.crop(box), 2, width, height), image_mask, box)
    fitted = resize_image(image_mask, resize_mode, width, height)
    doubled = np.clip(np.asarray(fitted, dtype=np.uint16) * 2, 0, 255).astype(np.uint8)
    return PreparedMask(fitted, PILImage.fromarray(doubled, "L"), None)


def init_and_overlay(
    image: Image, prepared: PreparedMask, resize_mode: int, width: int, height: int
) -> tuple[Image, Image]:
    """An init image (RGB) as the pass starts from (fitted, or the box cut out and fitted), and its overlay: the init
    image at the size the result takes, transparent where it is repainted."""
    from PIL import ImageOps

    from serena.image_resize import resize_image

    if prepared.crop is None:
        image = resize_image(image, resize_mode, width, height)
    overlay = image.convert("RGBA")
    overlay.putalpha(ImageOps.invert(prepared.overlay_mask))
    if prepared.crop is not None:
        image = resize_image(image.crop(prepared.crop), 2, width, height)
    return image, overlay


def apply_overlay(image: Image, overlay: Image, crop: tuple[int, int, int, int] | None) -> Image:
    """The decoded image put back: for Only masked scaled into its box of a canvas the overlay's size, then the
    overlay laid over it."""
    from PIL import Image as PILImage

    from serena.image_resize import resize_image

    if crop is not None:
        x1, y1, x2, y2 = crop
        canvas = PILImage.new("RGBA", overlay.size)
        canvas.paste(resize_image(image, 1, x2 - x1, y2 - y1), (x1, y1))
        image = canvas
    result = image.convert("RGBA")
    result.alpha_composite(overlay)
    return result.convert("RGB")


def latent_mask(image_mask: Image, latent_width: int, latent_height: int, round_values: bool, like: Any) -> Any:
    """The mask at the latents' size as a (1, 1, h, w) tensor of `like`'s dtype and device: 1 where repainted."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    scaled = image_mask.convert("L").resize((latent_width, latent_height), PILImage.Resampling.BICUBIC)
    values = np.asarray(scaled, dtype=np.float32) / 255.0
    if round_values:
        values = np.around(values)
    return torch.from_numpy(values)[None, None].to(device=like.device, dtype=like.dtype)
