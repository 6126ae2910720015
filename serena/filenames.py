"""File-name patterns for saved images: the [token]s they may use and their values, validation, and expansion."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serena.models import SdModel
    from serena.processing import StableDiffusionProcessing

_TOKEN = re.compile(r"\[([a-z_]+)\]")
_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INVALID = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
MAX_PART = 128
# what one folder name, and a whole output folder option, may take in UTF-8 (file systems allow 255 per name)
MAX_NAME_BYTES = 255
MAX_FOLDER_BYTES = 1024


def text_problem(text: str) -> str | None:
    """Why `text` cannot be an option value, a prompt or a file name, or None: a NUL character, or a lone UTF-16
    surrogate (JSON's "\\ud800", or undecodable command-line bytes) that no file, PNG chunk or JSON reply can hold."""
    found = _UNWRITABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"holds a NUL character at position {found.start()}"
    return _surrogate_text(found)


def surrogate_problem(text: str) -> str | None:
    """Why `text` cannot be encoded as UTF-8 (a lone UTF-16 surrogate), or None."""
    found = _SURROGATE.search(text)
    return None if found is None else _surrogate_text(found)


def _surrogate_text(found: re.Match[str]) -> str:
    return (
        f"holds a lone UTF-16 surrogate (U+{ord(found.group()):04X}) at position {found.start()}; "
        "text must be valid Unicode"
    )


def check_folder(folder: str) -> str | None:
    """Why `folder` cannot be an output folder on any file system, or None: a name or the whole path too long."""
    if len(folder.encode("utf-8")) > MAX_FOLDER_BYTES:
        return f"the folder is {len(folder.encode('utf-8'))} bytes long; at most {MAX_FOLDER_BYTES} are allowed"
    for name in re.split(r"[\\/]", folder):
        size = len(name.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            return f"the folder name {name[:16]!r}… is {size} bytes; a file system allows {MAX_NAME_BYTES}"
    return None


@dataclass(frozen=True)
class FilenameToken:
    """One [token] of a file-name pattern: what it stands for, and its value for image `index` of run `p`."""

    description: str
    value: Callable[[StableDiffusionProcessing, int], Any]


def timestamp(moment: datetime, token: str) -> str:
    return moment.strftime("%Y-%m-%d" if token == "date" else "%Y%m%d%H%M%S")


def _model(p: StableDiffusionProcessing) -> SdModel | None:
    return p.runtime_context.model if p.runtime_context is not None else None


def _model_name(p: StableDiffusionProcessing, index: int) -> str:
    model = _model(p)
    return model.name if model else ""


def _model_hash(p: StableDiffusionProcessing, index: int) -> str:
    model = _model(p)
    return model.short_hash if model else ""


TOKENS: dict[str, FilenameToken] = {
    "seed": FilenameToken("the image's seed", lambda p, index: p.all_seeds[index]),
    "steps": FilenameToken("sampling steps", lambda p, index: p.steps),
    "cfg": FilenameToken("CFG scale", lambda p, index: f"{p.cfg_scale:g}"),
    "sampler": FilenameToken("sampler name", lambda p, index: p.sampler_name),
    "width": FilenameToken("width in pixels", lambda p, index: p.width),
    "height": FilenameToken("height in pixels", lambda p, index: p.height),
    "prompt": FilenameToken(
        "the prompt, spaces replaced by underscores", lambda p, index: p.all_prompts[index].replace(" ", "_")
    ),
    "prompt_spaces": FilenameToken("the prompt as written", lambda p, index: p.all_prompts[index]),
    "prompt_words": FilenameToken(
        "the prompt's words, separated by spaces",
        lambda p, index: " ".join(re.findall(r"[\w']+", p.all_prompts[index])) or "empty",
    ),
    "negative_prompt": FilenameToken("the negative prompt", lambda p, index: p.all_negative_prompts[index]),
    "model_name": FilenameToken("the model's name", _model_name),
    "model_hash": FilenameToken("the short model hash", _model_hash),
    "denoising": FilenameToken(
        "denoising strength (img2img)",
        lambda p, index: f"{p.denoising_strength:g}" if p.denoising_strength is not None else "",
    ),
    "clip_skip": FilenameToken(
        "clip skip", lambda p, index: p.opts_snapshot["CLIP_stop_at_last_layers"] if p.opts_snapshot else ""
    ),
    "batch_number": FilenameToken("position of the image within its batch", lambda p, index: index % p.batch_size),
    "generation_number": FilenameToken("position of the image within the whole run", lambda p, index: index),
    "date": FilenameToken("date the run started, YYYY-MM-DD", lambda p, index: timestamp(p.job_timestamp, "date")),
    "datetime": FilenameToken(
        "time the run started, YYYYMMDDhhmmss", lambda p, index: timestamp(p.job_timestamp, "datetime")
    ),
    "job_timestamp": FilenameToken(
        "time the run started, YYYYMMDDhhmmss", lambda p, index: timestamp(p.job_timestamp, "job_timestamp")
    ),
}
# the descriptions alone, as the option check and the documentation list them
FILENAME_TOKENS: dict[str, str] = {name: token.description for name, token in TOKENS.items()}


def pattern_tokens(pattern: str) -> list[str]:
    return _TOKEN.findall(pattern)


def check_pattern(pattern: str) -> str | None:
    """None when every [token] in the pattern is known; otherwise a message naming the unknown ones."""
    unknown = [token for token in pattern_tokens(pattern) if token not in FILENAME_TOKENS]
    if unknown:
        return f"unknown file name token(s) {', '.join('[' + t + ']' for t in unknown)}; known: " + ", ".join(
            f"[{t}]" for t in FILENAME_TOKENS
        )
    if _INVALID.sub("", _TOKEN.sub("", pattern)) != _TOKEN.sub("", pattern):
        return "file name pattern holds characters not allowed in file names"
    return None


def sanitize(text: str, *, spaces: bool = True) -> str:
    """A file-name-safe fragment: forbidden characters dropped, at most 128 characters, no leading/trailing dots."""
    cleaned = _INVALID.sub("", text)
    if not spaces:
        cleaned = cleaned.replace(" ", "_")
    return cleaned[:MAX_PART].strip(" .")


def filename_values(p: StableDiffusionProcessing, index: int) -> dict[str, Callable[[], Any]]:
    """The getters behind each [token] for image `index` of the run (each read only if the pattern uses it)."""
    return {name: partial(token.value, p, index) for name, token in TOKENS.items()}


def expand_pattern(pattern: str, values: Mapping[str, Callable[[], Any]]) -> str:
    """Replace each [token] by its sanitized value."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        getter = values.get(token)
        return sanitize(str(getter())) if getter is not None else match.group(0)

    return _TOKEN.sub(replace, pattern).strip(" .")
