"""Text encoding with the shipped tiny CLIP: diffusers' exact embedding for plain prompts, then chunks, BREAK, emphasis.

The tiny tokenizer has no merges: every character is a token (a word's last one carries `</w>`), so "a " * n is n
tokens; each test that depends on a count asserts it first.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from serena.errors import InputError
from serena.models import TINY_MODEL_DIR
from serena.text_encoding import CHUNK_LENGTH, encode_batch, encode_prompt, tokenize_chunks

# 15 two-letter and 45 one-letter words: 60 words, 75 tokens, the most one chunk holds
SIXTY_WORDS = " ".join(["ab"] * 15 + ["c"] * 45)
PLAIN_PROMPTS = [
    "",
    "a red fox in the snow",
    "fox, snow; sky! 'q' \"r\" - 1/2 a:b, 100% <ok> #tag @x {y} break",
    SIXTY_WORDS,
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(TINY_MODEL_DIR / "tokenizer", local_files_only=True)


@pytest.fixture(scope="module")
def text_encoder():
    from transformers import CLIPTextModel

    return CLIPTextModel.from_pretrained(TINY_MODEL_DIR / "text_encoder", local_files_only=True)


@pytest.fixture(scope="module")
def pipeline():
    import torch  # noqa: F401 - imported before diffusers, as users do
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        TINY_MODEL_DIR, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def biased_text_encoder(text_encoder):
    """The tiny encoder with a final layer norm bias of 0.5: its embeddings then have a mean well away from zero, as
    real CLIP's do. The tiny model's own bias is 0, so every position's embedding has mean 0 and the overall mean is
    float32 rounding noise (~1e-8), which makes "Original"'s mean ratio meaningless to test on it."""
    import torch

    biased = copy.deepcopy(text_encoder)
    with torch.no_grad():
        biased.text_model.final_layer_norm.bias.fill_(0.5)
    return biased


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def empty_chunk_ids(tokenizer) -> tuple[int, ...]:
    return (tokenizer.bos_token_id, *[tokenizer.eos_token_id] * 76)


# -- plain prompts: exactly diffusers' embedding ---------------------------------------------------


def test_sixty_word_prompt_is_exactly_one_chunk(tokenizer) -> None:
    assert len(SIXTY_WORDS.split()) == 60
    assert len(token_ids(tokenizer, SIXTY_WORDS)) == 75
    assert len(tokenize_chunks(tokenizer, SIXTY_WORDS)) == 1
    assert len(tokenize_chunks(tokenizer, SIXTY_WORDS + " d")) == 2


@pytest.mark.parametrize("clip_skip", [1, 2])
@pytest.mark.parametrize("prompt", PLAIN_PROMPTS)
def test_plain_prompt_is_bit_identical_to_diffusers(
    tokenizer, text_encoder, pipeline, prompt: str, clip_skip: int
) -> None:
    import torch

    ours = encode_prompt(tokenizer, text_encoder, prompt, clip_skip=clip_skip)
    theirs = pipeline.encode_prompt(prompt, "cpu", 1, True, clip_skip=None if clip_skip == 1 else clip_skip - 1)[0]

    assert ours.shape == (1, CHUNK_LENGTH, 32)
    assert ours.dtype == text_encoder.dtype
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("prompt", PLAIN_PROMPTS)
def test_plain_prompt_ids_are_diffusers_ids(tokenizer, prompt: str) -> None:
    (chunk,) = tokenize_chunks(tokenizer, prompt)
    expected = tokenizer(prompt, padding="max_length", max_length=77, truncation=True)["input_ids"]

    assert list(chunk.ids) == expected
    assert chunk.multipliers == (1.0,) * CHUNK_LENGTH


def test_plain_negative_prompt_is_bit_identical_to_diffusers(tokenizer, text_encoder, pipeline) -> None:
    import torch

    # diffusers encodes a negative prompt without clip skip: compare at clip_skip 1, where both agree
    negative = pipeline.encode_prompt("fox", "cpu", 1, True, negative_prompt="blurry, low quality")[1]

    assert torch.equal(encode_prompt(tokenizer, text_encoder, "blurry, low quality"), negative)


def test_clip_skip_2_differs_from_clip_skip_1(tokenizer, text_encoder) -> None:
    import torch

    last = encode_prompt(tokenizer, text_encoder, "a red fox", clip_skip=1)
    penultimate = encode_prompt(tokenizer, text_encoder, "a red fox", clip_skip=2)

    assert not torch.equal(last, penultimate)


# -- long prompts: 75-token chunks -----------------------------------------------------------------


def test_long_prompt_is_two_chunks_and_its_tail_counts(tokenizer, text_encoder, pipeline) -> None:
    import torch

    first, second = "a " * 80, "a " * 75 + "b " * 5
    assert len(token_ids(tokenizer, first)) == len(token_ids(tokenizer, second)) == 80

    first_embedding = encode_prompt(tokenizer, text_encoder, first)
    second_embedding = encode_prompt(tokenizer, text_encoder, second)

    assert first_embedding.shape == second_embedding.shape == (1, 2 * CHUNK_LENGTH, 32)
    assert torch.equal(first_embedding[:, :CHUNK_LENGTH], second_embedding[:, :CHUNK_LENGTH])
    assert not torch.equal(first_embedding[:, CHUNK_LENGTH:], second_embedding[:, CHUNK_LENGTH:])
    # diffusers truncates at 75 tokens and cannot tell the two apart
    assert torch.equal(
        pipeline.encode_prompt(first, "cpu", 1, False)[0], pipeline.encode_prompt(second, "cpu", 1, False)[0]
    )


def test_each_chunk_is_encoded_on_its_own(tokenizer, text_encoder) -> None:
    import torch

    embedding = encode_prompt(tokenizer, text_encoder, "a " * 75 + "b " * 5)

    assert torch.equal(embedding[:, :CHUNK_LENGTH], encode_prompt(tokenizer, text_encoder, "a " * 75))
    assert torch.equal(embedding[:, CHUNK_LENGTH:], encode_prompt(tokenizer, text_encoder, "b " * 5))


def test_chunk_layout_is_bos_tokens_eos_padding(tokenizer) -> None:
    chunks = tokenize_chunks(tokenizer, "a " * 80)
    a_id = token_ids(tokenizer, "a")[0]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id

    assert [len(chunk.ids) for chunk in chunks] == [CHUNK_LENGTH, CHUNK_LENGTH]
    assert chunks[0].ids == (bos, *[a_id] * 75, eos)
    assert chunks[1].ids == (bos, *[a_id] * 5, *[eos] * 71)


# -- comma backtracking ----------------------------------------------------------------------------


def test_full_chunk_ends_after_a_recent_comma(tokenizer) -> None:
    prompt = "a " * 65 + ", " + "b " * 15
    a_id, comma_id, b_id = (token_ids(tokenizer, text)[0] for text in ("a", ",", "b"))
    assert token_ids(tokenizer, prompt) == [a_id] * 65 + [comma_id] + [b_id] * 15

    first, second = tokenize_chunks(tokenizer, prompt)

    # the comma is 10 tokens from the end of the full chunk: the 9 b's after it move to the next chunk
    assert first.ids[1:68] == (*[a_id] * 65, comma_id, tokenizer.eos_token_id)
    assert set(first.ids[68:]) == {tokenizer.eos_token_id}
    assert second.ids[1:17] == (*[b_id] * 15, tokenizer.eos_token_id)


def test_comma_backtrack_zero_or_a_far_comma_splits_at_75(tokenizer) -> None:
    a_id, b_id = token_ids(tokenizer, "a")[0], token_ids(tokenizer, "b")[0]
    near = "a " * 65 + ", " + "b " * 15
    far = "a " * 40 + ", " + "b " * 40  # the comma is 35 tokens from the end of the chunk

    for chunks in (tokenize_chunks(tokenizer, near, comma_padding_backtrack=0), tokenize_chunks(tokenizer, far)):
        assert len(chunks) == 2
        assert tokenizer.eos_token_id not in chunks[0].ids[1:76]
        assert chunks[1].ids[1:7] == (b_id,) * 6
    assert tokenize_chunks(tokenizer, far, comma_padding_backtrack=40)[1].ids[1:41] == (b_id,) * 40
    assert a_id not in tokenize_chunks(tokenizer, far, comma_padding_backtrack=40)[1].ids


def test_overflowing_comma_starts_the_next_chunk(tokenizer) -> None:
    comma_id = token_ids(tokenizer, ",")[0]
    prompt = "a " * 60 + ", " + "a " * 14 + ", b"
    assert len(token_ids(tokenizer, prompt)) == 77

    first, second = tokenize_chunks(tokenizer, prompt)

    # the chunk is full when the second comma comes: no backtrack to the first one, the comma opens chunk two
    assert tokenizer.eos_token_id not in first.ids[1:76]
    assert second.ids[1] == comma_id


# -- BREAK -----------------------------------------------------------------------------------------


def test_break_starts_a_new_chunk(tokenizer, text_encoder) -> None:
    import torch

    chunks = tokenize_chunks(tokenizer, "a BREAK b")
    embedding = encode_prompt(tokenizer, text_encoder, "a BREAK b")

    assert len(chunks) == 2
    assert chunks[0].ids[1:3] == (*token_ids(tokenizer, "a"), tokenizer.eos_token_id)
    assert chunks[1].ids[1:3] == (*token_ids(tokenizer, "b"), tokenizer.eos_token_id)
    assert embedding.shape == (1, 2 * CHUNK_LENGTH, 32)
    assert torch.equal(embedding[:, CHUNK_LENGTH:], encode_prompt(tokenizer, text_encoder, "b"))


@pytest.mark.parametrize(
    ("prompt", "layout"),
    [
        # the web UI's rule: BREAK closes the current chunk even when it is empty; a closing empty chunk is dropped
        ("BREAK", [""]),
        ("BREAK a", ["", "a"]),
        ("a BREAK", ["a"]),
        ("a BREAK BREAK b", ["a", "", "b"]),
        ("a BREAK BREAK", ["a", ""]),
    ],
)
def test_break_edge_cases(tokenizer, prompt: str, layout: list[str]) -> None:
    chunks = tokenize_chunks(tokenizer, prompt)

    assert [chunk.ids for chunk in chunks] == [tokenize_chunks(tokenizer, text)[0].ids for text in layout]


def test_break_after_a_full_chunk_adds_no_empty_chunk(tokenizer) -> None:
    chunks = tokenize_chunks(tokenizer, "a " * 75 + "BREAK b")

    assert len(chunks) == 2
    assert chunks[1].ids[1:3] == (*token_ids(tokenizer, "b"), tokenizer.eos_token_id)


def test_empty_prompt_is_bos_and_eos(tokenizer) -> None:
    (chunk,) = tokenize_chunks(tokenizer, "")

    assert chunk.ids == empty_chunk_ids(tokenizer)


# -- emphasis --------------------------------------------------------------------------------------


def test_escaped_parentheses_reach_the_encoder(tokenizer, text_encoder, pipeline) -> None:
    import torch

    (chunk,) = tokenize_chunks(tokenizer, r"\(fox\)")

    assert chunk.ids[1:6] == tuple(token_ids(tokenizer, "(fox)"))
    assert chunk.multipliers == (1.0,) * CHUNK_LENGTH
    assert torch.equal(
        encode_prompt(tokenizer, text_encoder, r"\(fox\)"), pipeline.encode_prompt("(fox)", "cpu", 1, False)[0]
    )


def test_weight_changes_the_embedding_not_the_ids(tokenizer, text_encoder) -> None:
    import torch

    (weighted,) = tokenize_chunks(tokenizer, "(fox:1.5)")
    (plain,) = tokenize_chunks(tokenizer, "fox")

    assert weighted.ids == plain.ids
    assert weighted.multipliers == (1.0, 1.5, 1.5, 1.5, *[1.0] * 73)
    assert not torch.equal(
        encode_prompt(tokenizer, text_encoder, "(fox:1.5)"), encode_prompt(tokenizer, text_encoder, "fox")
    )


def test_no_norm_multiplies_each_position_by_its_weight(tokenizer, text_encoder) -> None:
    import torch

    weighted = encode_prompt(tokenizer, text_encoder, "(fox:1.5)", emphasis="No norm")
    plain = encode_prompt(tokenizer, text_encoder, "fox")

    assert torch.equal(weighted[:, 1:4], plain[:, 1:4] * 1.5)
    assert torch.equal(weighted[:, 0], plain[:, 0])
    assert torch.equal(weighted[:, 4:], plain[:, 4:])


def test_original_keeps_the_chunk_mean(tokenizer, biased_text_encoder) -> None:
    import torch

    weighted = encode_prompt(tokenizer, biased_text_encoder, "a (red fox:1.5) in the [snow]")
    plain = encode_prompt(tokenizer, biased_text_encoder, "a red fox in the snow")
    no_norm = encode_prompt(tokenizer, biased_text_encoder, "a (red fox:1.5) in the [snow]", emphasis="No norm")

    assert (
        tokenize_chunks(tokenizer, "a (red fox:1.5) in the [snow]")[0].ids
        == tokenize_chunks(tokenizer, "a red fox in the snow")[0].ids
    )
    assert abs(plain.mean().item()) > 0.1
    assert weighted.mean().item() == pytest.approx(plain.mean().item(), rel=1e-5)
    assert no_norm.mean().item() != pytest.approx(plain.mean().item(), rel=1e-2)
    # "Original" is "No norm" scaled as a whole
    scale = plain.mean() / no_norm.mean()
    assert torch.allclose(weighted, no_norm * scale, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_original_skips_the_rescale_when_the_mean_is_rounding_noise(tokenizer, text_encoder, clip_skip: int) -> None:
    import torch

    # the tiny encoder's final layer norm has no bias: every position has mean 0, the chunk's mean is ~1e-8 of noise
    plain = encode_prompt(tokenizer, text_encoder, "a red fox in the snow", clip_skip=clip_skip)
    assert abs(plain.mean().item()) < 1e-6 * plain.abs().mean().item()

    for prompt in ("(fox:1.5)", "a red fox in the (snow)", "a (red fox:1.5) in the [snow]"):
        original = encode_prompt(tokenizer, text_encoder, prompt, clip_skip=clip_skip)
        no_norm = encode_prompt(tokenizer, text_encoder, prompt, clip_skip=clip_skip, emphasis="No norm")
        assert torch.equal(original, no_norm)
        assert torch.isfinite(original).all()


def test_emphasis_ignore_ignores_weights_but_reads_the_syntax(tokenizer, text_encoder) -> None:
    import torch

    def ignore(prompt: str) -> torch.Tensor:
        return encode_prompt(tokenizer, text_encoder, prompt, emphasis="Ignore")

    assert torch.equal(ignore("(fox:1.5)"), encode_prompt(tokenizer, text_encoder, "fox"))
    assert torch.equal(ignore("[[a]] ((red)) fox"), encode_prompt(tokenizer, text_encoder, "a red fox"))
    assert ignore("a BREAK b").shape == (1, 2 * CHUNK_LENGTH, 32)


def test_emphasis_none_reads_no_syntax_at_all(tokenizer, text_encoder) -> None:
    import torch

    literal = encode_prompt(tokenizer, text_encoder, "(fox:1.5)", emphasis="None")
    ids = tokenizer("(fox:1.5)").input_ids
    chunk = tokenize_chunks(tokenizer, "(fox:1.5)", emphasis="None")[0]
    assert list(chunk.ids[: len(ids)]) == ids and set(chunk.multipliers) == {1.0}
    assert not torch.equal(literal, encode_prompt(tokenizer, text_encoder, "fox"))
    assert encode_prompt(tokenizer, text_encoder, "a BREAK b", emphasis="None").shape == (1, CHUNK_LENGTH, 32)


def test_unknown_emphasis_and_clip_skip_are_input_errors(tokenizer, text_encoder) -> None:
    with pytest.raises(InputError) as emphasis_error:
        encode_prompt(tokenizer, text_encoder, "fox", emphasis="Strong")  # type: ignore[arg-type]
    assert emphasis_error.value.field == "emphasis"
    assert "Original" in str(emphasis_error.value)

    for clip_skip in (0, 3, True):
        with pytest.raises(InputError) as clip_skip_error:
            encode_prompt(tokenizer, text_encoder, "fox", clip_skip=clip_skip)
        assert clip_skip_error.value.field == "clip_skip"


# -- batches ---------------------------------------------------------------------------------------


def test_batch_pads_the_shorter_side_with_the_empty_prompt(tokenizer, text_encoder) -> None:
    import torch

    long_prompt = "a " * 80
    cond, uncond = encode_batch(tokenizer, text_encoder, [long_prompt, "fox"], ["", "blurry"])
    empty = encode_prompt(tokenizer, text_encoder, "")

    assert cond.shape == uncond.shape == (2, 2 * CHUNK_LENGTH, 32)
    assert torch.equal(cond[:1], encode_prompt(tokenizer, text_encoder, long_prompt))
    assert torch.equal(cond[1:, :CHUNK_LENGTH], encode_prompt(tokenizer, text_encoder, "fox"))
    assert torch.equal(cond[1:, CHUNK_LENGTH:], empty)
    assert torch.equal(uncond[:1], torch.cat([empty, empty], dim=1))
    assert torch.equal(uncond[1:, :CHUNK_LENGTH], encode_prompt(tokenizer, text_encoder, "blurry"))
    assert torch.equal(uncond[1:, CHUNK_LENGTH:], empty)


def test_batch_pads_the_prompt_when_the_negative_is_longer(tokenizer, text_encoder) -> None:
    import torch

    cond, uncond = encode_batch(tokenizer, text_encoder, ["fox"], ["a BREAK b BREAK c"], clip_skip=2)

    assert cond.shape == uncond.shape == (1, 3 * CHUNK_LENGTH, 32)
    empty = encode_prompt(tokenizer, text_encoder, "", clip_skip=2)
    assert torch.equal(
        cond, torch.cat([encode_prompt(tokenizer, text_encoder, "fox", clip_skip=2), empty, empty], dim=1)
    )


def test_batch_encodes_each_distinct_prompt_once(tokenizer, text_encoder) -> None:
    calls: list[tuple[int, ...]] = []
    hook = text_encoder.register_forward_hook(lambda module, args, output: calls.append(tuple(args[0][0].tolist())))
    try:
        cond, uncond = encode_batch(tokenizer, text_encoder, ["fox", "fox", "fox"], ["", "", ""])
    finally:
        hook.remove()

    assert cond.shape == uncond.shape == (3, CHUNK_LENGTH, 32)
    assert sorted(calls) == sorted([tokenize_chunks(tokenizer, "fox")[0].ids, empty_chunk_ids(tokenizer)])


def test_batch_input_errors(tokenizer, text_encoder) -> None:
    with pytest.raises(InputError) as mismatch:
        encode_batch(tokenizer, text_encoder, ["fox", "cat"], ["blurry"])
    assert mismatch.value.field == "negative_prompts"
    with pytest.raises(InputError) as empty:
        encode_batch(tokenizer, text_encoder, [], [])
    assert empty.value.field == "prompts"
    with pytest.raises(InputError) as emphasis:
        encode_batch(tokenizer, text_encoder, ["fox"], [""], emphasis="none")  # type: ignore[arg-type]
    assert emphasis.value.field == "emphasis"


# -- imports ---------------------------------------------------------------------------------------


def test_importing_the_modules_loads_no_torch() -> None:
    code = (
        "import sys; import serena.text_encoding, serena.prompt_parser; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


def test_a_prompt_of_more_than_max_chunks_is_refused_naming_its_field(tokenizer, text_encoder) -> None:
    from serena.text_encoding import MAX_CHUNKS

    longest = " BREAK ".join(["x"] * MAX_CHUNKS)  # exactly MAX_CHUNKS chunks: encoded
    assert encode_prompt(tokenizer, text_encoder, longest).shape[1] == MAX_CHUNKS * CHUNK_LENGTH
    too_long = f"{longest} BREAK one more"
    with pytest.raises(InputError) as caught:
        encode_batch(tokenizer, text_encoder, ["a fox"], [too_long])
    assert caught.value.field == "negative_prompt" and f"takes {MAX_CHUNKS + 1} chunks" in str(caught.value)
    with pytest.raises(InputError) as caught:
        encode_batch(tokenizer, text_encoder, [too_long], [""])
    assert caught.value.field == "prompt"
