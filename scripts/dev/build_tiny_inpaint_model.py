"""Make the shipped inpainting tiny model, serena/assets/tiny-sd-inpaint, from a fixed seed and written-down shapes.

The model exists so that inpainting models (a UNet of 9 input channels: the latents, the mask, and the masked image's
latents, as in the web UI's and diffusers' inpainting pipelines) have tests and golden cases. It is tiny-sd-eps with
a 9-channel UNet (build_tiny_eps_model.build with in_channels=9), saved as a StableDiffusionInpaintPipeline.

Run it into a new folder (it refuses one that exists):

    python scripts/dev/build_tiny_inpaint_model.py --out /tmp/tiny-sd-inpaint

Its output is committed: the files in serena/assets/tiny-sd-inpaint ARE the model, and the golden cases in
harness/cases/inpainting_model.toml were recorded on them. Never regenerate it over the committed files: random init
can change between torch or diffusers releases, and the goldens must not. Run it into another folder and compare
SHA256SUMS to check that this environment still reproduces the shipped model bit for bit.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_tiny_eps_model import ASSETS, main

SHIPPED_OUT = ASSETS / "tiny-sd-inpaint"
IN_CHANNELS = 9  # 4 latent channels, 1 mask channel, 4 masked-image latent channels


if __name__ == "__main__":
    sys.exit(
        main(
            kind="inpainting",
            shipped=SHIPPED_OUT,
            in_channels=IN_CHANNELS,
            pipeline_class="StableDiffusionInpaintPipeline",
        )
    )
