"""File-name patterns for saved images: the [token]s they may use, validation, and expansion."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

_TOKEN = re.compile(r"\[([a-z_]+)\]")
_INVALID = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
MAX_PART = 128

FILENAME_TOKENS: dict[str, str] = {
    "seed": "the image's seed",
    "steps": "sampling steps",
    "cfg": "CFG scale",
    "sampler": "sampler name",
    "width": "width in pixels",
    "height": "height in pixels",
    "prompt": "the prompt, spaces replaced by underscores",
    "prompt_spaces": "the prompt as written",
    "prompt_words": "the prompt's words, separated by spaces",
    "negative_prompt": "the negative prompt",
    "model_name": "the model's name",
    "model_hash": "the short model hash",
    "denoising": "denoising strength (img2img)",
    "clip_skip": "clip skip",
    "batch_number": "position of the image within its batch",
    "generation_number": "position of the image within the whole run",
    "date": "date the run started, YYYY-MM-DD",
    "datetime": "time the run started, YYYYMMDDhhmmss",
    "job_timestamp": "time the run started, YYYYMMDDhhmmss",
}


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


def expand_pattern(pattern: str, values: Mapping[str, Callable[[], Any]]) -> str:
    """Replace each [token] by its sanitized value."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        getter = values.get(token)
        return sanitize(str(getter())) if getter is not None else match.group(0)

    return _TOKEN.sub(replace, pattern).strip(" .")


def timestamp(moment: datetime, token: str) -> str:
    return moment.strftime("%Y-%m-%d" if token == "date" else "%Y%m%d%H%M%S")
