"""Saved prompt styles: the web UI's styles.csv (name, prompt, negative_prompt), applied to a run's prompts.

A style's text holding `{prompt}` has the prompt put in its place (every occurrence); any other style text is
appended to the prompt with ", " between (no separator when either is empty). Styles apply in the order named, to
the prompt and the negative prompt alike. `extract_styles` undoes that where it can, as the web UI does when
infotext is pasted.

A malformed styles file is refused with InputFileError naming the file and line: the file is the server's own
configuration, not part of a request (the API answers it with a one-line 500).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from serena.errors import InputError, InputFileError

PROMPT_PLACEHOLDER = "{prompt}"
STYLE_SEPARATOR = ", "
REQUIRED_COLUMNS = ("name", "prompt", "negative_prompt")
# how many (style, text) matches extract_styles tries before it settles for the best reading found
MAX_EXTRACT_TRIES = 20_000


@dataclass(frozen=True)
class PromptStyle:
    name: str
    prompt: str
    negative_prompt: str
    description: str = ""


def load_styles(path: Path) -> dict[str, PromptStyle]:
    """The styles in `path`, in file order; none when the file does not exist or is empty.

    InputFileError in one line naming the file and line for anything malformed: not UTF-8, no header naming
    name/prompt/negative_prompt, a row that is not valid CSV or has more fields than the header, an empty or
    repeated name."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the styles file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputFileError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None
    # strict: a stray quote is an error rather than a row silently swallowing the lines after it
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    styles: dict[str, PromptStyle] = {}
    while True:
        line = reader.line_num + 1  # where the next record starts (a quoted field may span lines)
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputFileError(f"{path}:{line}: not valid CSV ({exc})") from None
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if header is None:
            header = [cell.strip() for cell in row]
            if "prompt" not in header and "text" in header:
                header[header.index("text")] = "prompt"  # the web UI's first styles files called it "text"
            missing = [column for column in REQUIRED_COLUMNS if column not in header]
            if missing:
                raise InputFileError(
                    f"{path}:{line}: the header must name {', '.join(REQUIRED_COLUMNS)}; missing {', '.join(missing)}"
                )
            repeated = sorted({column for column in header if column and header.count(column) > 1})
            if repeated:
                raise InputFileError(f"{path}:{line}: the header names {', '.join(repeated)} more than once")
            continue
        if len(row) > len(header):
            raise InputFileError(f"{path}:{line}: more fields ({len(row)}) than the header has ({len(header)})")
        # fields missing at the end of a row are empty, as the web UI reads them
        values = dict(zip(header, row, strict=False))
        name = values.get("name", "").strip()
        if not name:
            raise InputFileError(f"{path}:{line}: a style needs a name")
        if name in styles:
            raise InputFileError(f"{path}:{line}: style {name!r} is defined twice")
        styles[name] = PromptStyle(
            name=name,
            prompt=values.get("prompt", ""),
            negative_prompt=values.get("negative_prompt", ""),
            description=values.get("description", ""),
        )
    return styles  # an empty file (no header either) holds no styles


def apply_style_text(style_text: str, prompt: str) -> str:
    """`style_text` with the prompt in place of every {prompt}, else the prompt with the style text appended."""
    if PROMPT_PLACEHOLDER in style_text:
        return style_text.replace(PROMPT_PLACEHOLDER, prompt)
    if not style_text:
        return prompt
    if not prompt:
        return style_text
    return f"{prompt}{STYLE_SEPARATOR}{style_text}"


def apply_styles(
    prompt: str, negative_prompt: str, names: list[str], styles: Mapping[str, PromptStyle]
) -> tuple[str, str]:
    """The prompt and negative prompt with each named style applied in order; InputError naming `styles` for an
    unknown name."""
    for name in names:
        style = styles.get(name)
        if style is None:
            available = ", ".join(repr(known) for known in styles) or "none (no styles file)"
            raise InputError("styles", f"styles: unknown style {name!r}; available: {available}")
        prompt = apply_style_text(style.prompt, prompt)
        negative_prompt = apply_style_text(style.negative_prompt, negative_prompt)
    return prompt, negative_prompt


def unapply_style_text(style_text: str, text: str) -> str | None:
    """The prompt that `apply_style_text(style_text, prompt)` turned into `text`, or None when no prompt did.

    Exact: applying a style is one-to-one, so the prompt found is the only one there is."""
    if PROMPT_PLACEHOLDER in style_text:
        parts = style_text.split(PROMPT_PLACEHOLDER)
        fixed = sum(len(part) for part in parts)
        slots = len(parts) - 1
        # every {prompt} holds the same prompt, so its length follows from the text's
        length, remainder = divmod(len(text) - fixed, slots)
        if length < 0 or remainder:
            return None
        prompt = text[len(parts[0]) : len(parts[0]) + length]
        return prompt if style_text.replace(PROMPT_PLACEHOLDER, prompt) == text else None
    if not style_text:
        return text
    if text == style_text:
        return ""
    suffix = f"{STYLE_SEPARATOR}{style_text}"
    return text[: -len(suffix)] if text.endswith(suffix) and len(text) > len(suffix) else None


def _changes_nothing(style: PromptStyle) -> bool:
    return all(text in ("", PROMPT_PLACEHOLDER) for text in (style.prompt, style.negative_prompt))


def extract_styles(prompt: str, negative_prompt: str, styles: Mapping[str, PromptStyle]) -> tuple[list[str], str, str]:
    """Undo `apply_styles` where the prompts show it: (the style names in the order they were applied, the prompt
    and negative prompt before them). The web UI does this when infotext is pasted.

    The style applied last is outermost, so styles are peeled off from the outside in; a style is peeled when its
    prompt and negative prompt both match, each style at most once. Where the texts can be read more than one way
    (an appended ", a" may also sit inside a {prompt} style's text), the reading that finds the most styles wins,
    ties going to the one that tries styles in file order (the web UI's greedy reading). The search stops after
    MAX_EXTRACT_TRIES matches tried, keeping the best reading so far. A style that changes neither prompt (empty or
    a bare {prompt}) leaves no trace and is never found."""
    candidates = [style for style in styles.values() if not _changes_nothing(style)]
    best: tuple[list[str], str, str] = ([], prompt, negative_prompt)
    tries_left = MAX_EXTRACT_TRIES

    def peel(prompt: str, negative_prompt: str, remaining: list[PromptStyle], peeled: list[str]) -> None:
        nonlocal best, tries_left
        if len(peeled) > len(best[0]):
            best = (list(reversed(peeled)), prompt, negative_prompt)
        for style in remaining:
            if tries_left <= 0 or len(best[0]) == len(candidates):
                return
            tries_left -= 1
            inner_prompt = unapply_style_text(style.prompt, prompt)
            inner_negative = unapply_style_text(style.negative_prompt, negative_prompt)
            if inner_prompt is not None and inner_negative is not None:
                rest = [other for other in remaining if other is not style]
                peel(inner_prompt, inner_negative, rest, [*peeled, style.name])

    peel(prompt, negative_prompt, candidates, [])
    return best
