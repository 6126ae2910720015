"""Infotext: writing the three-part parameter text and parsing it back to the same strings and typed values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serena.infotext import NEGATIVE_PREFIX, create_infotext, infotext_to_params, parse_infotext

PARAMS: dict[str, Any] = {
    "Steps": 20,
    "Sampler": "Euler a",
    "CFG scale": "7.5",
    "Seed": 1234,
    "Size": "512x768",
    "Model hash": "c25b4c3fca",
    "Model": "tiny-sd",
}


def round_trip(prompt: str, negative_prompt: str, params: dict[str, Any]) -> dict[str, str]:
    return parse_infotext(create_infotext(prompt, negative_prompt, params))


# -- the written text ----------------------------------------------------------------------------


def test_create_infotext_writes_prompt_negative_and_params_lines() -> None:
    text = create_infotext("a red fox", "blurry", {"Steps": 20, "Sampler": "DDIM", "Seed": 5})

    assert text == "a red fox\nNegative prompt: blurry\nSteps: 20, Sampler: DDIM, Seed: 5"


def test_create_infotext_leaves_out_empty_negative_prompt_and_none_values() -> None:
    text = create_infotext("a red fox", "", {"Steps": 20, "Clip skip": None, "Sampler": "DDIM", "Seed": 5})

    assert text == "a red fox\nSteps: 20, Sampler: DDIM, Seed: 5"
    assert NEGATIVE_PREFIX not in text


def test_create_infotext_quotes_values_holding_separators() -> None:
    text = create_infotext("p", "", {"Steps": 20, "Note": 'a, b: "c"', "Seed": 5})

    assert text.splitlines()[-1] == r'Steps: 20, Note: "a, b: \"c\"", Seed: 5'


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [
        "a red fox in the snow",
        "a red fox\nin the snow\n\nwith an empty line between",
        "",
        "  leading and trailing spaces  ",
        "weights (fox:1.2), [snow], <lora:x:0.5>",
        'quotes "inside" and a backslash \\ here',
        "unicode: 東京の夜, café, emoji 🦊",
        "Steps: 1, Sampler: DDIM, Seed: 2\nlooks like params but is a prompt line",
    ],
)
def test_prompt_round_trips(prompt: str) -> None:
    fields = round_trip(prompt, "", PARAMS)

    assert fields["Prompt"] == prompt
    assert fields["Negative prompt"] == ""
    assert fields["Seed"] == "1234"


@pytest.mark.parametrize(
    "negative_prompt",
    ["blurry", "blurry, low quality", "two\nlines", " leading space", "Negative prompt: nested", "ünïcödé 😀"],
)
def test_negative_prompt_round_trips(negative_prompt: str) -> None:
    fields = round_trip("a\nmulti-line prompt", negative_prompt, PARAMS)

    assert fields["Prompt"] == "a\nmulti-line prompt"
    assert fields["Negative prompt"] == negative_prompt
    assert fields["Steps"] == "20"


def test_empty_prompt_with_negative_prompt_round_trips() -> None:
    fields = round_trip("", "blurry", PARAMS)

    assert (fields["Prompt"], fields["Negative prompt"]) == ("", "blurry")


@pytest.mark.parametrize(
    "value",
    [
        "with, comma",
        "with: colon",
        'with "double quotes"',
        "back\\slash",
        'ends with backslash\\"',
        "new\nline",
        "carriage\r\nreturn",
        " padded ",
        "",
        "ünïcödé, 東京: 🦊",
        "{'json': [1, 2]}",
    ],
)
def test_param_values_round_trip(value: str) -> None:
    fields = round_trip("prompt", "negative", {**PARAMS, "Extra": value, "Version": "serena 0.1.0"})

    assert fields["Extra"] == value
    assert fields["Version"] == "serena 0.1.0"
    assert fields["Model"] == "tiny-sd"


def test_size_is_split_into_size_1_and_size_2() -> None:
    fields = round_trip("p", "", PARAMS)

    assert fields["Size"] == "512x768"
    assert (fields["Size-1"], fields["Size-2"]) == ("512", "768")


def test_malformed_size_gives_no_size_parts() -> None:
    fields = round_trip("p", "", {**PARAMS, "Size": "512 by 768"})

    assert fields["Size"] == "512 by 768"
    assert "Size-1" not in fields and "Size-2" not in fields
    with pytest.raises(ValueError, match="infotext field 'Size': cannot read '512 by 768'"):
        infotext_to_params(create_infotext("p", "", {**PARAMS, "Size": "512 by 768"}))


def test_text_without_params_line_is_all_prompt() -> None:
    fields = parse_infotext("a red fox\nin the snow\n\n")

    assert fields == {"Prompt": "a red fox\nin the snow", "Negative prompt": ""}


def test_text_without_params_line_keeps_negative_prompt() -> None:
    fields = parse_infotext("a red fox\nNegative prompt: blurry")

    assert fields == {"Prompt": "a red fox", "Negative prompt": "blurry"}


def test_windows_line_endings_parse_like_unix_ones() -> None:
    text = create_infotext("a\nb", "c", PARAMS)

    assert parse_infotext(text.replace("\n", "\r\n")) == parse_infotext(text)


# -- property: any prompt and values come back unchanged ------------------------------------------

_line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=40)
_prompt = _line_text.filter(lambda text: not any(line.startswith(NEGATIVE_PREFIX) for line in text.split("\n")))
_value = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(prompt=_prompt, negative_prompt=_line_text, values=st.lists(_value, min_size=5, max_size=5))
def test_round_trip_returns_the_same_strings(prompt: str, negative_prompt: str, values: list[Any]) -> None:
    params = dict(zip(["Steps", "Sampler", "Seed", "Model", "Free text"], values, strict=True))

    fields = round_trip(prompt, negative_prompt, params)

    assert fields["Prompt"] == prompt
    assert fields["Negative prompt"] == negative_prompt
    for key, value in params.items():
        assert fields[key] == str(value), key


# -- typed parameters ------------------------------------------------------------------------------


def test_infotext_to_params_gives_typed_processing_arguments() -> None:
    text = create_infotext(
        "a red fox",
        "blurry",
        {**PARAMS, "Batch size": 2, "Batch pos": 1, "Denoising strength": "0.6", "Version": "serena 0.1.0"},
    )

    params = infotext_to_params(text)

    assert params == {
        "prompt": "a red fox",
        "negative_prompt": "blurry",
        "steps": 20,
        "cfg_scale": 7.5,
        "seed": 1234,
        "width": 512,
        "height": 768,
        "batch_size": 2,
        "denoising_strength": 0.6,
        "sampler_name": "Euler a",
    }
    assert type(params["steps"]) is int and type(params["cfg_scale"]) is float


def test_infotext_to_params_maps_option_fields_to_override_settings() -> None:
    text = create_infotext("p", "", {**PARAMS, "Clip skip": 2, "Eta DDIM": "0.3", "RNG": "GPU"})

    params = infotext_to_params(text)

    assert params["override_settings"] == {"CLIP_stop_at_last_layers": 2, "eta_ddim": 0.3, "randn_source": "GPU"}


def test_infotext_to_params_without_option_fields_has_no_override_settings() -> None:
    assert "override_settings" not in infotext_to_params(create_infotext("p", "", PARAMS))


@pytest.mark.parametrize(
    ("field", "bad_value"),
    [
        ("Steps", "twenty"),
        ("Seed", "1.5"),
        ("CFG scale", "high"),
        ("Batch size", "two"),
        ("Denoising strength", "strong"),
        ("Clip skip", "two"),
        ("Eta DDIM", "some"),
    ],
)
def test_bad_numeric_field_raises_value_error_naming_it(field: str, bad_value: str) -> None:
    text = create_infotext("p", "", {**PARAMS, field: bad_value})

    with pytest.raises(ValueError, match=f"'{field}'") as raised:
        infotext_to_params(text)
    assert bad_value in str(raised.value)
