"""Rebuild the shipped tiny Stable-Diffusion model deterministically from a fixed seed and written-down shapes."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "serena" / "assets" / "tiny-sd"
WEIGHT_SEED = 0
MANIFEST_NAME = "SHA256SUMS"


def bytes_to_unicode() -> dict[int, str]:
    """The byte-level BPE alphabet: every byte mapped to a printable unicode character."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), ord("\xff") + 1),
    ]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


def write_tokenizer_sources(folder: Path) -> None:
    """A 514-entry byte-level vocabulary with no merges: every prompt byte is its own token."""
    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    # Without model_max_length the tokenizer pads to a huge length and the pipeline breaks.
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}), encoding="utf-8")


def build(out_dir: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(WEIGHT_SEED)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        sample_size=64,
    )
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
    # The UNet predicts the clean sample ("sample" prediction): with random weights that is what makes the output
    # respond to prompt, CFG and steps. Samplers that need epsilon or v-prediction (DPM2, PLMS) are refused for it.
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="sample",
    )
    with tempfile.TemporaryDirectory() as tokenizer_src:
        write_tokenizer_sources(Path(tokenizer_src))
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_src, local_files_only=True)
        pipe = StableDiffusionPipeline(
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
    write_manifest(out_dir)


def write_manifest(model_dir: Path) -> None:
    lines = []
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        path.chmod(0o644)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(model_dir).as_posix()}\n")
    (model_dir / MANIFEST_NAME).write_text("".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"model folder to (re)write (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and swap at the end, so an interrupted rebuild never leaves half a model.
    staging = Path(tempfile.mkdtemp(prefix=".tiny-sd-", dir=out_dir.parent))
    try:
        build(staging)
        if out_dir.exists():
            retired = out_dir.with_name(out_dir.name + ".old")
            shutil.rmtree(retired, ignore_errors=True)
            out_dir.rename(retired)
            staging.rename(out_dir)
            shutil.rmtree(retired)
        else:
            staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
