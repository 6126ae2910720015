"""What is recorded and compared per image: pixel sha256, phash16, channel statistics, and degeneracy; and the
distances between two images: phash16 bits, mean absolute difference and SSIM."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

HASH_SIZE = 16
PHASH_BITS = HASH_SIZE * HASH_SIZE
MIN_STD = 2.0  # below this (0-255 scale) an image is flat: phash is meaningless on it
FLAT_HASHES = {"0" * 64, "8" + "0" * 63}
SSIM_MIN_SIDE = 11  # the Gaussian window's width (sigma 1.5, truncated at 3.5 sigma)


@dataclass(frozen=True)
class ImageMeasures:
    sha256: str  # of the raw RGB pixels and the size, so PNG encoder changes do not matter
    phash16: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "phash16": self.phash16,
            "mean": list(self.mean),
            "std": list(self.std),
            "size": list(self.size),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageMeasures:
        return cls(
            sha256=str(data["sha256"]),
            phash16=str(data["phash16"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            size=(int(data["size"][0]), int(data["size"][1])),
        )


def pixel_sha256(image: Any) -> str:
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def measure(image: Any) -> ImageMeasures:
    import imagehash
    import numpy as np

    rgb = image.convert("RGB")
    array = np.asarray(rgb, dtype=np.float64)
    return ImageMeasures(
        sha256=pixel_sha256(rgb),
        phash16=str(imagehash.phash(rgb, hash_size=HASH_SIZE)),
        mean=tuple(round(float(v), 4) for v in array.mean(axis=(0, 1))),  # type: ignore[arg-type]
        std=tuple(round(float(v), 4) for v in array.std(axis=(0, 1))),  # type: ignore[arg-type]
        size=(rgb.width, rgb.height),
    )


def degenerate_reason(image: Any, measures: ImageMeasures) -> str | None:
    """Why an image cannot serve as a golden (flat, near-uniform, flat hash, NaN), or None when it can."""
    import numpy as np

    array = np.asarray(image.convert("RGB"), dtype=np.float64)
    if not np.isfinite(array).all():
        return "image holds NaN or infinite values"
    overall = float(array.std())
    if overall < MIN_STD:
        return f"flat image (pixel std {overall:.2f} < {MIN_STD})"
    if measures.phash16 in FLAT_HASHES:
        return f"phash16 {measures.phash16[:8]}… is the flat-image hash"
    if max(measures.std) < MIN_STD:
        return f"near-uniform channels (std {max(measures.std):.2f} < {MIN_STD})"
    return None


def phash_distance(first: str, second: str) -> int:
    import imagehash

    return int(imagehash.hex_to_hash(first) - imagehash.hex_to_hash(second))


def mean_abs_difference(first: Any, second: Any) -> float:
    import numpy as np

    a = np.asarray(first.convert("RGB"), dtype=np.float64)
    b = np.asarray(second.convert("RGB"), dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).mean())


def ssim(first: Any, second: Any) -> float:
    """The structural similarity of two images (1.0 = equal), the way image-snapshot tools gate on it.

    scikit-image's implementation with the settings of Wang et al. (2004): an 11-tap Gaussian window (sigma 1.5),
    population statistics, computed per RGB channel and averaged. Unlike phash it sees blur, contrast and
    saturation changes. Images of different sizes are 0.0 (nothing in common structurally).
    """
    import numpy as np
    from skimage.metrics import structural_similarity

    a = np.asarray(first.convert("RGB"), dtype=np.float64)
    b = np.asarray(second.convert("RGB"), dtype=np.float64)
    if a.shape != b.shape:
        return 0.0
    if min(a.shape[0], a.shape[1]) < 3:  # no window fits: equal or not
        return 1.0 if np.array_equal(a, b) else 0.0
    if min(a.shape[0], a.shape[1]) < SSIM_MIN_SIDE:
        # too small for the window: a uniform window as wide as the image
        return float(structural_similarity(a, b, channel_axis=2, data_range=255.0, win_size=_odd(min(a.shape[:2]))))
    return float(
        structural_similarity(
            a, b, channel_axis=2, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def _odd(side: int) -> int:
    return side if side % 2 else side - 1


def heatmap(first: Any, second: Any, scale: float = 8.0) -> Any:
    """A picture of where two images differ: black where equal, brighter (yellow→white) where they differ more."""
    import numpy as np
    from PIL import Image

    a = np.asarray(first.convert("RGB"), dtype=np.float64)
    b = np.asarray(second.convert("RGB"), dtype=np.float64)
    if a.shape != b.shape:
        return Image.new("RGB", first.size, (255, 0, 255))
    difference = np.clip(np.abs(a - b).mean(axis=2) * scale, 0, 255)
    red = np.clip(difference * 3, 0, 255)
    green = np.clip(difference * 3 - 255, 0, 255) + np.clip(difference * 1.5, 0, 128)
    blue = np.clip(difference * 3 - 510, 0, 255)
    return Image.fromarray(np.stack([red, np.clip(green, 0, 255), blue], axis=-1).astype(np.uint8), "RGB")
