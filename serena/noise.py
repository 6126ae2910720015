"""Variation seeds: an image's starting noise blended with a second seed's noise, or kept from a smaller size.

The web UI's semantics, computed our own way:
- `subseed_strength` s blends the seed's noise a with the subseed's noise b by spherical interpolation (slerp) over
  the whole latent: the result stays on the sphere both lie near, so its statistics stay those of unit noise. s = 0
  is exactly a, s = 1 exactly b.
- `seed_resize_from_w/h` draws the seed's (and subseed's) noise at that size instead and pastes it, centred, into
  the noise of the output size, so an image keeps most of its composition when its size changes.
Image i of a run uses seed all_seeds[i] and subseed all_subseeds[i]. The noise a is the very tensor diffusers drew
from image i's generator, so with no variation nothing changes, down to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# below this, the two noises are parallel and slerp is plain linear interpolation
_PARALLEL = 1e-6


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from `low` (strength 0) to `high` (strength 1) over the whole tensor, in float32."""
    import torch

    low32, high32 = low.float(), high.float()
    cosine = (low32 * high32).sum() / (low32.norm() * high32.norm())
    omega = torch.acos(cosine.clamp(-1.0, 1.0))
    sin_omega = torch.sin(omega)
    if sin_omega.abs() < _PARALLEL:
        blended = (1.0 - strength) * low32 + strength * high32
    else:
        blended = (
            torch.sin((1.0 - strength) * omega) / sin_omega * low32 + torch.sin(strength * omega) / sin_omega * high32
        )
    return blended.to(low.dtype)


def paste_centred(small: torch.Tensor, large: torch.Tensor) -> torch.Tensor:
    """`large` with `small` pasted into its centre; where `small` is the larger along an axis, its centre is kept.
    Both are (..., height, width)."""
    result = large.clone()
    target_h, target_w = large.shape[-2:]
    source_h, source_w = small.shape[-2:]
    # along each axis: the span both share, its start in the target and in the source
    dy, dx = (target_h - source_h) // 2, (target_w - source_w) // 2
    height, width = min(source_h, target_h), min(source_w, target_w)
    ty, tx = max(dy, 0), max(dx, 0)
    sy, sx = max(-dy, 0), max(-dx, 0)
    result[..., ty : ty + height, tx : tx + width] = small[..., sy : sy + height, sx : sx + width]
    return result


@dataclass(frozen=True)
class Variation:
    """What changes the starting noise of one batch's images: each image's seed and subseed, the strength, and the
    size (width, height in pixels) the noise is drawn at, when it is resized from one."""

    seeds: tuple[int, ...]
    subseeds: tuple[int, ...]
    strength: float
    resize_from: tuple[int, int] | None
    latent_scale: int
    generator_device: str

    @property
    def active(self) -> bool:
        return self.strength > 0 or self.resize_from is not None

    def _randn(self, seed: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A seed's noise as diffusers draws it: on the generator's device, in the latents' dtype, then moved."""
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        generator = torch.Generator(device=self.generator_device).manual_seed(seed)
        return randn_tensor(shape, generator=generator, device=like.device, dtype=like.dtype)

    def apply(self, noise: torch.Tensor) -> torch.Tensor:
        """The batch's noise (batch, channels, h, w), drawn from the seeds' generators, with the variation applied."""
        import torch

        if not self.active:
            return noise
        rows = []
        for index, row in enumerate(noise.split(1)):
            # 1. the seed's noise at the size it is drawn at: the image's own, or drawn afresh at the smaller size
            if self.resize_from is None:
                base = row
            else:
                width, height = self.resize_from
                shape = (1, row.shape[1], height // self.latent_scale, width // self.latent_scale)
                base = self._randn(self.seeds[index], shape, row)
            # 2. blended with the subseed's noise of the same shape
            if self.strength > 0:
                base = slerp(self.strength, base, self._randn(self.subseeds[index], tuple(base.shape), row))
            # 3. pasted into the image's noise at the output size
            rows.append(base if self.resize_from is None else paste_centred(base, row))
        return torch.cat(rows)
