"""Infotext: the familiar three-part text of generation parameters — writing it, and parsing it back."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from serena import masking
from serena.errors import InputError

NEGATIVE_PREFIX = "Negative prompt:"
# key: value, where value is a JSON-quoted string or runs to the next comma
_PARAM = re.compile(r'\s*([A-Za-z][\w \-/+.()]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_SIZE_KEYS = ("Size", "Seed resize from", "Hires resize")


def quote(value: Any) -> str:
    """A value as infotext writes it: bare when safe, JSON-quoted when it holds a comma, colon, quote or newline."""
    text = str(value)
    if not any(char in text for char in ',:"\n\r') and text == text.strip():
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text
    return text


def create_infotext(prompt: str, negative_prompt: str, params: Mapping[str, Any]) -> str:
    """Prompt line(s); `Negative prompt:` line(s) when there is one; then `Key: value, …` (None values left out)."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"{NEGATIVE_PREFIX} {negative_prompt}")
    lines.append(", ".join(f"{key}: {quote(value)}" for key, value in params.items() if value is not None))
    return "\n".join(lines)


def _looks_like_params(line: str) -> bool:
    return len(_PARAM.findall(line)) >= 3


def parse_infotext(text: str) -> dict[str, str]:
    """Infotext back to a dict of strings: "Prompt", "Negative prompt", each parameter, and for each WIDTHxHEIGHT
    value (Size, Seed resize from) its two numbers as "<key>-1" and "<key>-2"."""
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    params_line = ""
    if lines and _looks_like_params(lines[-1]):
        params_line = lines.pop()
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        if not in_negative and line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX) :].removeprefix(" ")
        (negative_lines if in_negative else prompt_lines).append(line)
    result = {"Prompt": "\n".join(prompt_lines), "Negative prompt": "\n".join(negative_lines)}
    for key, value in _PARAM.findall(params_line):
        result[key.strip()] = unquote(value)
    for key in _SIZE_KEYS:
        size = _SIZE.match(result.get(key, ""))
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
    return result


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(text)
    return value == "true"


_boolean.__name__ = "true or false"


def inpainting_fill(text: str) -> int:
    """Masked content's name (or number) as inpainting_fill."""
    return masking.find_inpainting_fill(text.strip())


def inpainting_mask_invert(text: str) -> int:
    """Mask mode's name as inpainting_mask_invert (0 or 1)."""
    return masking.find_mask_mode(text.strip())


def inpaint_full_res(text: str) -> bool:
    """Inpaint area (Only masked or Whole picture) as inpaint_full_res."""
    return masking.inpaint_area(text)


def resize_mode(text: str) -> int:
    """A resize mode's name (or number) as img2img's resize_mode number."""
    from serena.image_resize import find_resize_mode

    return find_resize_mode(text.strip())


# infotext key -> (processing argument or option override, its name, conversion)
_CONVERSIONS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "Steps": ("param", "steps", int),
    "Sampler": ("param", "sampler_name", str),
    "Schedule type": ("param", "scheduler", str),
    "CFG scale": ("param", "cfg_scale", float),
    "Seed": ("param", "seed", int),
    "Size-1": ("param", "width", int),
    "Size-2": ("param", "height", int),
    "Batch size": ("param", "batch_size", int),
    "Variation seed": ("param", "subseed", int),
    "Variation seed strength": ("param", "subseed_strength", float),
    "Seed resize from-1": ("param", "seed_resize_from_w", int),
    "Seed resize from-2": ("param", "seed_resize_from_h", int),
    "Denoising strength": ("param", "denoising_strength", float),
    "Resize mode": ("param", "resize_mode", resize_mode),
    "Mask blur": ("param", "mask_blur", int),
    "Mask blur X": ("param", "mask_blur_x", int),
    "Mask blur Y": ("param", "mask_blur_y", int),
    "Mask mode": ("param", "inpainting_mask_invert", inpainting_mask_invert),
    "Masked content": ("param", "inpainting_fill", inpainting_fill),
    "Inpaint area": ("param", "inpaint_full_res", inpaint_full_res),
    "Masked area padding": ("param", "inpaint_full_res_padding", int),
    "Mask round": ("param", "mask_round", _boolean),
    "Hires upscale": ("param", "hr_scale", float),
    "Hires resize-1": ("param", "hr_resize_x", int),
    "Hires resize-2": ("param", "hr_resize_y", int),
    "Hires steps": ("param", "hr_second_pass_steps", int),
    "Hires upscaler": ("param", "hr_upscaler", str),
    "Hires sampler": ("param", "hr_sampler_name", str),
    "Hires schedule type": ("param", "hr_scheduler", str),
    "Hires prompt": ("param", "hr_prompt", str),
    "Hires negative prompt": ("param", "hr_negative_prompt", str),
    "Clip skip": ("override", "CLIP_stop_at_last_layers", int),
    "Eta DDIM": ("override", "eta_ddim", float),
    "Emphasis": ("override", "emphasis", str),
    "RNG": ("override", "randn_source", str),
}


def infotext_to_params(text: str) -> dict[str, Any]:
    """Infotext as processing arguments (prompt, seed, steps, …) plus override_settings for option-backed fields."""
    fields = parse_infotext(text)
    params: dict[str, Any] = {"prompt": fields["Prompt"], "negative_prompt": fields["Negative prompt"]}
    for key in _SIZE_KEYS:
        if key in fields and f"{key}-1" not in fields:
            raise InputError("infotext", f"infotext field {key!r}: cannot read {fields[key]!r} as WIDTHxHEIGHT")
    overrides: dict[str, Any] = {}
    for key, (target, name, convert) in _CONVERSIONS.items():
        if key in fields:
            try:
                value = convert(fields[key])
            except ValueError:
                raise InputError(
                    "infotext", f"infotext field {key!r}: cannot read {fields[key]!r} as {convert.__name__}"
                ) from None
            (params if target == "param" else overrides)[name] = value
    if any(key.startswith("Hires ") for key in fields):
        params["enable_hr"] = True
    if overrides:
        params["override_settings"] = overrides
    return params
