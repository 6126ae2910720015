"""Prompt syntax in a run: emphasis moves the image, a long prompt's ending matters, BREAK starts a chunk, escaped
brackets reach the encoder as brackets, clip skip applies to the negative prompt too, and infotext carries it all."""

from __future__ import annotations

from typing import Any

import pytest
from support import phash16, pixels, txt2img

from serena.infotext import infotext_to_params, parse_infotext
from serena.processing import StableDiffusionProcessingTxt2Img, process_images
from serena.text_encoding import CHUNK_LENGTH, encode_prompt, tokenize_chunks

# the bar: at least this far apart on the tiny model at 64 px
DISTINCT_BITS = 18
# 94 words; with either ending below, 100
LONG_PROMPT = (
    "a quiet village by the sea with small houses and red roofs narrow streets fishing boats in the "
    "harbour gulls over the water old stone walls a church tower on the hill green fields behind it sheep "
    "on the slopes a lighthouse at the end of the pier nets drying in the sun children playing on the "
    "beach a market square with stalls of fruit and fish a baker opening his shop a cat asleep on a warm "
    "step bicycles leaning on a fence flower boxes under every window smoke rising from the chimneys"
)


def _embeddings(**fields: Any) -> tuple[Any, Any]:
    """(negative, positive) prompt embeddings the UNet is given, captured at the first step."""
    seen: dict[str, Any] = {}

    def capture(batch: int, step: int, timestep: int, tensors: dict[str, Any]) -> None:
        seen.setdefault("embeds", tensors["prompt_embeds"].clone())

    process_images(txt2img(steps=2, step_callback=capture, **fields))
    negative, positive = seen["embeds"].chunk(2)
    return negative, positive


@pytest.fixture(scope="module")
def encoder() -> tuple[Any, Any]:
    from serena import models, shared

    model = models.load_checkpoint("tiny-sd", shared.cmd_opts, "cpu")
    return model.txt2img.tokenizer, model.txt2img.text_encoder


def test_emphasis_moves_the_image(encoder: tuple[Any, Any]) -> None:
    plain = process_images(txt2img(prompt="fox", seed=7)).images[0]
    weighted = process_images(txt2img(prompt="(fox:1.5)", seed=7)).images[0]
    assert phash16(plain) - phash16(weighted) >= DISTINCT_BITS
    in_a_sentence = process_images(txt2img(prompt="a red (fox:1.5) in the snow", seed=7)).images[0]
    assert phash16(in_a_sentence) - phash16(process_images(txt2img(seed=7)).images[0]) >= DISTINCT_BITS


def test_a_long_prompts_ending_matters(encoder: tuple[Any, Any]) -> None:
    tokenizer, _ = encoder
    sky = f"{LONG_PROMPT}, under a clear blue morning sky"
    storm = f"{LONG_PROMPT}, under a dark stormy night sky"
    assert len(sky.split()) == len(storm.split()) == 100
    # the endings lie beyond the first 75 tokens, which is all a text encoder reads at once
    assert len(tokenize_chunks(tokenizer, sky)) > 1 and len(tokenizer(LONG_PROMPT).input_ids) > 77
    images = [process_images(txt2img(prompt=prompt, seed=7)).images[0] for prompt in (sky, storm)]
    assert phash16(images[0]) - phash16(images[1]) >= DISTINCT_BITS


def test_break_starts_a_new_chunk_and_moves_the_image() -> None:
    _, one_chunk = _embeddings(prompt="a red fox in the snow")
    negative, two_chunks = _embeddings(prompt="a red fox BREAK in the snow")
    assert one_chunk.shape[1] == CHUNK_LENGTH and two_chunks.shape[1] == 2 * CHUNK_LENGTH
    assert negative.shape == two_chunks.shape  # the negative is padded to the same length
    plain = process_images(txt2img(prompt="a red fox in the snow", seed=7)).images[0]
    broken = process_images(txt2img(prompt="a red fox BREAK in the snow", seed=7)).images[0]
    assert pixels(plain) != pixels(broken)


def test_escaped_brackets_reach_the_encoder_as_brackets(encoder: tuple[Any, Any]) -> None:
    import torch

    tokenizer, text_encoder = encoder
    _, escaped = _embeddings(prompt=r"a \(fox\)")
    literal = encode_prompt(tokenizer, text_encoder, "a (fox)", emphasis="None")
    assert torch.equal(escaped, literal)
    _, emphasised = _embeddings(prompt="a (fox)")
    assert not torch.equal(emphasised, literal)


def test_clip_skip_applies_to_the_negative_prompt_too(encoder: tuple[Any, Any]) -> None:
    import torch

    tokenizer, text_encoder = encoder
    overrides = {"CLIP_stop_at_last_layers": 2}
    negative, positive = _embeddings(negative_prompt="blurry", override_settings=overrides)
    assert torch.equal(negative, encode_prompt(tokenizer, text_encoder, "blurry", clip_skip=2))
    assert torch.equal(positive, encode_prompt(tokenizer, text_encoder, "a red fox in the snow", clip_skip=2))
    assert not torch.equal(negative, encode_prompt(tokenizer, text_encoder, "blurry", clip_skip=1))


@pytest.mark.parametrize(
    ("prompt", "overrides"),
    [
        ("a red (fox:1.5) in the [snow], BREAK at dusk", {}),
        (r"a \(fox\) (in the snow)", {"emphasis": "No norm"}),
        (f"{LONG_PROMPT}, under a dark stormy night sky", {"emphasis": "Ignore", "comma_padding_backtrack": 0}),
    ],
    ids=["weights-and-break", "escaped-no-norm", "long-ignore"],
)
def test_pasting_the_infotext_reproduces_the_image(prompt: str, overrides: dict[str, Any]) -> None:
    original = process_images(txt2img(prompt=prompt, seed=12, override_settings=overrides))
    fields = parse_infotext(original.infotexts[0])
    assert fields["Prompt"] == prompt
    if "emphasis" in overrides:
        assert fields["Emphasis"] == overrides["emphasis"]
    params = infotext_to_params(original.infotexts[0])
    params["override_settings"] = {
        **params.get("override_settings", {}),
        **{key: value for key, value in overrides.items() if key == "comma_padding_backtrack"},
    }
    again = process_images(StableDiffusionProcessingTxt2Img(**params, do_not_save_samples=True))
    assert pixels(again.images[0]) == pixels(original.images[0])


def test_a_prompt_at_the_character_cap_is_refused_before_any_denoising() -> None:
    from serena.errors import InputError
    from serena.processing import MAX_PROMPT_CHARS

    steps: list[int] = []
    with pytest.raises(InputError) as caught:
        process_images(txt2img(prompt="fox " * (MAX_PROMPT_CHARS // 4), step_callback=lambda *args: steps.append(1)))
    assert caught.value.field == "prompt" and "chunks of 75 tokens" in str(caught.value)
    assert steps == []  # refused while encoding, before the UNet ran once
