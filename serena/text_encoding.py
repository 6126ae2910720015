"""CLIP conditioning the web UI's way: emphasis weights, prompts longer than 75 tokens in chunks, and BREAK.

A prompt is parsed into weighted pieces (`serena.prompt_parser`), each piece tokenized on its own, and the tokens laid
into chunks of 75. Each chunk becomes 77 ids, `[BOS] tokens [EOS] padding`, encoded by the text encoder on its own;
the chunks' embeddings are concatenated, so a prompt of k chunks conditions on 77·k positions.

- A full chunk that has a comma among its last `comma_padding_backtrack` tokens ends after that comma, and the words
  after it move to the next chunk, so a phrase is not cut in two.
- BREAK ends the current chunk, even an empty one: `BREAK a` is an empty chunk then a, `a BREAK BREAK b` is a, an
  empty chunk, b. A BREAK at the end adds nothing (`a BREAK` is one chunk). This is what the web UI does.
- Emphasis (the web UI's `emphasis` option): "Original" multiplies each position's embedding by its weight, then
  rescales the chunk so its mean is what it was unweighted; "No norm" only multiplies; "Ignore" reads the syntax
  (brackets and BREAK) but ignores the weights; "None" reads no syntax at all: brackets, backslashes and BREAK reach
  the tokenizer as the text they are.
  Unlike the web UI, "Original" leaves out the rescale when either mean is float rounding noise around zero (see
  MEAN_NOISE_FLOOR): the ratio of two noise values is not a scale, it is a random number, inf or NaN.

A prompt with no emphasis, no BREAK and at most 75 tokens gives exactly (bit for bit) diffusers' own embedding of it:
the same ids, the same single call of the text encoder, and no arithmetic on the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, assert_never, get_args

from serena.errors import InputError
from serena.prompt_parser import BREAK_PIECE, parse_prompt_attention

if TYPE_CHECKING:
    import torch
    from transformers import CLIPTextModel, PreTrainedTokenizerBase

Emphasis = Literal["Original", "No norm", "Ignore", "None"]
EMPHASIS_MODES: tuple[Emphasis, ...] = get_args(Emphasis)
CHUNK_TOKENS = 75  # prompt tokens per chunk
CHUNK_LENGTH = CHUNK_TOKENS + 2  # with BOS and the closing EOS: CLIP's 77 positions
DEFAULT_COMMA_PADDING_BACKTRACK = 20
# the most chunks a prompt may take: every chunk is 77 more positions the UNet cross-attends to at every step, so a
# prompt of hundreds of chunks (the API's 65,536 characters) would hold the worker and its memory; the web UI's
# longest real prompts take a handful
MAX_CHUNKS = 20
# "Original" skips its mean rescale when a mean is within this fraction of the mean |value| of zero: float32 rounding
# leaves ~1e-7 of it, and an encoder whose final layer norm has a bias has a mean far above 1e-4
MEAN_NOISE_FLOOR = 1e-4


@dataclass(frozen=True)
class PromptChunk:
    """One 77-position input of the text encoder: its token ids and the emphasis weight of each position."""

    ids: tuple[int, ...]
    multipliers: tuple[float, ...]


def tokenize_chunks(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    *,
    comma_padding_backtrack: int = DEFAULT_COMMA_PADDING_BACKTRACK,
    emphasis: Emphasis = "Original",
) -> list[PromptChunk]:
    """The prompt as chunks of 77 ids with their weights; at least one chunk (an empty prompt is BOS and padding).
    With emphasis "None" the prompt is read as plain text: no weights, no BREAK."""
    # 1. parse, and tokenize each piece on its own: a weight boundary is a token boundary
    pieces = [(prompt, 1.0)] if emphasis == "None" else parse_prompt_attention(prompt)
    texts = [text for text, weight in pieces if (text, weight) != BREAK_PIECE]
    # verbose=False: a prompt longer than CLIP's 77 is expected here, it is what the chunks are for
    encoded = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False) if texts else None
    token_lists = iter(encoded["input_ids"] if encoded else [])
    comma_id = tokenizer.get_vocab().get(",</w>")

    # 2. lay the tokens into chunks of 75
    chunks: list[PromptChunk] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1  # index in tokens of the current chunk's last comma

    def close_chunk(keep: int) -> None:
        """End the current chunk after its first `keep` tokens; the rest start the next one."""
        nonlocal last_comma
        chunks.append(_wrap_chunk(tokenizer, tokens[:keep], weights[:keep]))
        del tokens[:keep]
        del weights[:keep]
        last_comma = -1  # what is carried over comes after the last comma: it holds none

    for text, weight in pieces:
        if (text, weight) == BREAK_PIECE:
            close_chunk(len(tokens))
            continue
        for token in next(token_lists):
            if len(tokens) == CHUNK_TOKENS:
                # a comma that overflows simply starts the next chunk, as in the web UI; otherwise backtrack to a
                # comma among the last comma_padding_backtrack tokens if there is one
                near_comma = last_comma >= 0 and CHUNK_TOKENS - last_comma <= comma_padding_backtrack
                backtrack = token != comma_id and comma_padding_backtrack > 0 and near_comma
                close_chunk(last_comma + 1 if backtrack else CHUNK_TOKENS)
            if token == comma_id:
                last_comma = len(tokens)
            tokens.append(token)
            weights.append(weight)

    # 3. the last chunk, unless a BREAK or a full chunk just closed it; an empty prompt still has one chunk
    if tokens or not chunks:
        close_chunk(len(tokens))
    return chunks


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase,
    text_encoder: CLIPTextModel,
    prompt: str,
    *,
    clip_skip: int = 1,
    emphasis: Emphasis = "Original",
    device: str | torch.device = "cpu",
    comma_padding_backtrack: int = DEFAULT_COMMA_PADDING_BACKTRACK,
    field: str = "prompt",
) -> torch.Tensor:
    """The prompt's conditioning, (1, 77·chunks, hidden size) in the text encoder's dtype.

    clip_skip 1 takes the encoder's last layer; N > 1 the output N layers from the end, through the final layer norm
    (diffusers calls that clip_skip N - 1). A prompt of more than MAX_CHUNKS chunks is refused naming `field`."""
    import torch

    # 1. check inputs
    _check_emphasis(emphasis)
    _check_clip_skip(text_encoder, clip_skip)

    # 2. encode chunk by chunk, each as diffusers encodes a prompt of its own
    chunks = tokenize_chunks(tokenizer, prompt, comma_padding_backtrack=comma_padding_backtrack, emphasis=emphasis)
    if len(chunks) > MAX_CHUNKS:
        raise InputError(
            field,
            f"{field} takes {len(chunks)} chunks of {CHUNK_TOKENS} tokens; at most {MAX_CHUNKS} "
            f"({MAX_CHUNKS * CHUNK_TOKENS} tokens) are encoded: shorten it",
        )
    embeddings = [_encode_chunk(text_encoder, chunk, clip_skip, emphasis, device) for chunk in chunks]
    return embeddings[0] if len(embeddings) == 1 else torch.cat(embeddings, dim=1)


def encode_batch(
    tokenizer: PreTrainedTokenizerBase,
    text_encoder: CLIPTextModel,
    prompts: list[str],
    negative_prompts: list[str],
    *,
    clip_skip: int = 1,
    emphasis: Emphasis = "Original",
    device: str | torch.device = "cpu",
    comma_padding_backtrack: int = DEFAULT_COMMA_PADDING_BACKTRACK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The conditioning of each image and of its negative prompt, (batch, L, hidden size) each with the same L.

    Classifier-free guidance runs both through the UNet as one batch, so every conditioning is padded to the longest
    with the empty prompt's embedding, as the web UI's "pad prompt/negative prompt to the same length" does."""
    import torch

    # 1. check inputs
    if not prompts:
        raise InputError("prompts", "at least one prompt is needed")
    if len(negative_prompts) != len(prompts):
        raise InputError("negative_prompts", f"got {len(negative_prompts)} negative prompts for {len(prompts)} prompts")
    _check_emphasis(emphasis)
    _check_clip_skip(text_encoder, clip_skip)

    # 2. encode each distinct prompt once: a batch usually repeats one prompt
    def encode(prompt: str, field: str = "prompt") -> torch.Tensor:
        return encode_prompt(
            tokenizer,
            text_encoder,
            prompt,
            clip_skip=clip_skip,
            emphasis=emphasis,
            device=device,
            comma_padding_backtrack=comma_padding_backtrack,
            field=field,
        )

    encoded: dict[str, torch.Tensor] = {}
    for field, texts in (("prompt", prompts), ("negative_prompt", negative_prompts)):
        for prompt in texts:
            if prompt not in encoded:
                encoded[prompt] = encode(prompt, field)

    # 3. pad to the longest with empty-prompt chunks, then stack
    longest = max(embedding.shape[1] for embedding in encoded.values())
    if any(embedding.shape[1] < longest for embedding in encoded.values()) and "" not in encoded:
        encoded[""] = encode("")

    def padded(embedding: torch.Tensor) -> torch.Tensor:
        missing_chunks = (longest - embedding.shape[1]) // CHUNK_LENGTH
        return torch.cat([embedding, *[encoded[""]] * missing_chunks], dim=1) if missing_chunks else embedding

    conditioning = torch.cat([padded(encoded[prompt]) for prompt in prompts])
    negative_conditioning = torch.cat([padded(encoded[prompt]) for prompt in negative_prompts])
    return conditioning, negative_conditioning


def _wrap_chunk(tokenizer: PreTrainedTokenizerBase, tokens: list[int], weights: list[float]) -> PromptChunk:
    """[BOS] tokens [EOS] padding, as the tokenizer pads to 77: diffusers feeds the encoder exactly these ids."""
    # SD 1.x pads with EOS itself; a tokenizer with its own pad token (SD 2.x) pads after the first EOS, as the web UI
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    padding = CHUNK_TOKENS - len(tokens)
    ids = (tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id, *[pad_id] * padding)
    multipliers = (1.0, *weights, 1.0, *[1.0] * padding)
    return PromptChunk(ids=tuple(int(token) for token in ids), multipliers=multipliers)


def _encode_chunk(
    text_encoder: CLIPTextModel, chunk: PromptChunk, clip_skip: int, emphasis: Emphasis, device: str | torch.device
) -> torch.Tensor:
    """One chunk's embedding, (1, 77, hidden size), with the emphasis applied."""
    import torch

    ids = torch.tensor([chunk.ids], dtype=torch.long, device=device)
    # the same calls as diffusers' StableDiffusionPipeline.encode_prompt, so an unweighted chunk matches it bit for bit
    with torch.no_grad():
        if clip_skip == 1:
            embedding = text_encoder(ids)[0]
        else:
            hidden = text_encoder(ids, output_hidden_states=True).hidden_states[-clip_skip]
            embedding = text_encoder.text_model.final_layer_norm(hidden)
        embedding = embedding.to(dtype=text_encoder.dtype, device=device)
        return _apply_emphasis(embedding, chunk.multipliers, emphasis)


def _apply_emphasis(embedding: torch.Tensor, multipliers: tuple[float, ...], emphasis: Emphasis) -> torch.Tensor:
    """The chunk's embedding with each position scaled by its weight, as the emphasis mode says."""
    import torch

    # all weights 1: every mode would multiply by exactly 1.0, so skip the arithmetic (and a zero mean's 0/0)
    if all(multiplier == 1.0 for multiplier in multipliers):
        return embedding
    if emphasis in ("Ignore", "None"):
        return embedding
    weights = torch.tensor(multipliers, dtype=embedding.dtype, device=embedding.device).reshape(1, -1, 1)
    if emphasis == "No norm":
        return embedding * weights
    if emphasis == "Original":
        # the web UI's normalisation: weighting moves the embedding's overall mean, and the UNet was trained on
        # unweighted means, so scale the whole chunk back to its original mean
        original_mean = embedding.mean()
        weighted = embedding * weights
        weighted_mean = weighted.mean()
        # ...unless a mean is rounding noise around zero, as with a final layer norm without bias (the shipped tiny
        # model's): the ratio would then scale by noise that changes with the CPU, flip the sign or divide by zero
        noise_floor = MEAN_NOISE_FLOOR * embedding.abs().mean().item()
        if min(abs(original_mean.item()), abs(weighted_mean.item())) <= noise_floor:
            return weighted
        return weighted * (original_mean / weighted_mean)
    assert_never(emphasis)


def _check_emphasis(emphasis: str) -> None:
    if emphasis not in EMPHASIS_MODES:
        raise InputError("emphasis", f"emphasis must be one of {', '.join(EMPHASIS_MODES)}; got {emphasis!r}")


def _check_clip_skip(text_encoder: CLIPTextModel, clip_skip: int) -> None:
    layers = int(text_encoder.config.num_hidden_layers)
    if isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or not 1 <= clip_skip <= layers:
        raise InputError("clip_skip", f"clip_skip must be an integer from 1 to {layers}; got {clip_skip!r}")
