"""Make the shipped epsilon-prediction tiny model, serena/assets/tiny-sd-eps, from a fixed seed and written-down shapes.

The model exists so that the samplers that need a noise-predicting model (DPM2, DPM2 Karras, DPM2 a, DPM2 a Karras,
PLMS) have golden cases: it is tiny-sd's tokenizer (copied byte for byte), the same 2-layer CLIP text encoder, a
smaller UNet and VAE, and tiny-sd's DDIM scheduler config with prediction_type "epsilon".

Run it into a new folder (it refuses one that exists):

    python scripts/dev/build_tiny_eps_model.py --out /tmp/tiny-sd-eps

Its output is committed: the files in serena/assets/tiny-sd-eps ARE the model, and the golden cases in
harness/cases/epsilon.toml were recorded on them. Never regenerate it over the committed files: random init can change
between torch or diffusers releases, and the goldens must not. Run it into another folder and compare SHA256SUMS to
check that this environment still reproduces the shipped model bit for bit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_tiny_model import write_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = REPO_ROOT / "serena" / "assets"
SOURCE_MODEL = ASSETS / "tiny-sd"  # tokenizer files and scheduler config come from here
SHIPPED_OUT = ASSETS / "tiny-sd-eps"
WEIGHT_SEED = 0
MANIFEST_NAME = "SHA256SUMS"
TOKENIZER_FILES = ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")
# Random init leaves the UNet's noise prediction small, and the text's share of it smaller: each step removes little,
# the image is the decoded seed noise, and a Karras toggle, a steps_offset slip or CFG -0.5 moves it less than the
# golden tolerances. Scaling the UNet's last convolution and its cross-attention outputs by 16 (measured against 4,
# 8 and 32 for each) makes those changes visible beyond tolerance while a 1e-4 latent jitter still moves nothing.
UNET_OUTPUT_SCALE = 16.0
CROSS_ATTENTION_SCALE = 16.0


def build(out_dir: Path, in_channels: int = 4, pipeline_class: str = "StableDiffusionPipeline") -> None:
    """The model into `out_dir`; `in_channels` 9 (and StableDiffusionInpaintPipeline) makes the inpainting model of
    build_tiny_inpaint_model.py, whose UNet also takes the mask and the masked image's latents."""
    import diffusers
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(WEIGHT_SEED)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 16, 16),  # 4 blocks: 8x downsampling, as in real SD
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )
    # tiny-sd's text encoder architecture
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=514,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            layer_norm_eps=1e-5,
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
        )
    )
    with torch.no_grad():
        unet.conv_out.weight.mul_(UNET_OUTPUT_SCALE)
        unet.conv_out.bias.mul_(UNET_OUTPUT_SCALE)
        for name, module in unet.named_modules():
            if name.endswith("attn2.to_out.0"):  # cross-attention: where the prompt enters
                module.weight.mul_(CROSS_ATTENTION_SCALE)
                module.bias.mul_(CROSS_ATTENTION_SCALE)
    # tiny-sd's scheduler config, predicting the noise
    source_config = json.loads((SOURCE_MODEL / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    source_config["prediction_type"] = "epsilon"
    scheduler = DDIMScheduler.from_config(source_config)
    tokenizer = CLIPTokenizer.from_pretrained(SOURCE_MODEL / "tokenizer", local_files_only=True)
    pipe = getattr(diffusers, pipeline_class)(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out_dir, safe_serialization=True)
    # the same tokenizer as tiny-sd, byte for byte, whatever this transformers release would write
    shutil.rmtree(out_dir / "tokenizer")
    (out_dir / "tokenizer").mkdir()
    for name in TOKENIZER_FILES:
        shutil.copyfile(SOURCE_MODEL / "tokenizer" / name, out_dir / "tokenizer" / name)
    write_manifest(out_dir)


def main(
    argv: list[str] | None = None,
    *,
    kind: str = "epsilon-prediction",
    shipped: Path = SHIPPED_OUT,
    in_channels: int = 4,
    pipeline_class: str = "StableDiffusionPipeline",
) -> int:
    """Make the model (this one, or with other arguments build_tiny_inpaint_model.py's) into the new folder --out."""
    parser = argparse.ArgumentParser(
        description=f"Make the {kind} tiny model into a new folder (see the module docstring).",
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to create; must not exist yet")
    args = parser.parse_args(argv)
    out_dir: Path = args.out.resolve()
    if out_dir.exists():
        hint = " (the shipped model: its files are committed, never regenerated)" if out_dir == shipped else ""
        print(f"{out_dir}: already exists{hint}; choose a new folder", file=sys.stderr)
        return 2
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename at the end, so an interrupted run never leaves half a model.
    staging = Path(tempfile.mkdtemp(prefix=f".{shipped.name}-", dir=out_dir.parent))
    try:
        build(staging, in_channels=in_channels, pipeline_class=pipeline_class)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
