"""Saved prompt styles: the styles file read in order or refused naming file and line, styles applied the web UI's
way, and extract_styles undoing apply_styles."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serena.cmd_args import CmdOpts
from serena.errors import InputError, InputFileError
from serena.styles import (
    PromptStyle,
    apply_style_text,
    apply_styles,
    extract_styles,
    load_styles,
    unapply_style_text,
)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "styles.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# -- the file ----------------------------------------------------------------------------------
def test_the_styles_file_is_in_the_data_dir_unless_given(tmp_path: Path) -> None:
    assert CmdOpts(data_dir=tmp_path).resolved_styles_file == tmp_path / "styles.csv"
    chosen = tmp_path / "elsewhere" / "mine.csv"
    assert CmdOpts(data_dir=tmp_path, styles_file=chosen).resolved_styles_file == chosen


def test_styles_are_read_in_file_order_with_their_description(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\ufeffname,prompt,negative_prompt,description\r\n"
        'zebra,"{prompt}, striped",blurry,black and white\r\n'
        'alpha,"two\nlines",,\r\n'
        "\r\n"
        "short,just prompt\r\n",
    )
    styles = load_styles(path)
    assert list(styles) == ["zebra", "alpha", "short"]  # file order, not sorted
    assert styles["zebra"] == PromptStyle("zebra", "{prompt}, striped", "blurry", "black and white")
    assert styles["alpha"].prompt == "two\nlines"
    # fields missing at the end of a row are empty
    assert styles["short"] == PromptStyle("short", "just prompt", "", "")


def test_the_web_uis_old_text_column_is_the_prompt(tmp_path: Path) -> None:
    styles = load_styles(write(tmp_path, "name,text,negative_prompt\nold,kept,bad\n"))
    assert styles["old"] == PromptStyle("old", "kept", "bad")


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_a_missing_or_empty_file_means_no_styles(tmp_path: Path, text: str) -> None:
    assert load_styles(tmp_path / "absent.csv") == {}
    assert load_styles(write(tmp_path, text)) == {}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("title,prompt\nx,y\n", 1, "missing name, negative_prompt"),
        ("name,prompt,prompt,negative_prompt\na,b,c,d\n", 1, "names prompt more than once"),
        ("name,prompt,negative_prompt\n,red,\n", 2, "a style needs a name"),
        ("name,prompt,negative_prompt\n   ,red,\n", 2, "a style needs a name"),
        ("name,prompt,negative_prompt\na,x,\nb,y,\na,z,\n", 4, "style 'a' is defined twice"),
        ("name,prompt,negative_prompt\na,x,y,z\n", 2, "more fields (4) than the header has (3)"),
        ('name,prompt,negative_prompt\na,"x"y,z\n', 2, "not valid CSV"),
        ('name,prompt,negative_prompt\na,"never closed\nb,c,d\n', 2, "not valid CSV"),
        # a quoted field over two lines: the bad record after it is still named by its own first line
        ('name,prompt,negative_prompt\na,"one\ntwo",\n,x,\n', 4, "a style needs a name"),
        (b"name,prompt,negative_prompt\na,b,c\nd,\xff\xfe,\n", 3, "not UTF-8"),
    ],
)
def test_a_malformed_styles_file_is_refused_naming_file_and_line(
    tmp_path: Path, text: str | bytes, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputFileError) as caught:
        load_styles(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ") and words in message and "\n" not in message


def test_a_styles_path_that_is_a_folder_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "styles.csv"
    folder.mkdir()
    with pytest.raises(InputFileError) as caught:
        load_styles(folder)
    assert str(caught.value).startswith(f"{folder}: cannot read")


def test_a_prompt_style_is_a_frozen_record() -> None:
    style = PromptStyle("a", "b", "c")
    assert style.description == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        style.name = "changed"  # type: ignore[misc]


# -- applying ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("style", "prompt", "expected"),
    [
        ("{prompt}, oil painting", "a fox", "a fox, oil painting"),
        ("masterpiece, {prompt}, {prompt}", "fox", "masterpiece, fox, fox"),
        ("{prompt}", "a fox", "a fox"),
        ("framed {prompt}", "", "framed "),
        ("oil painting", "a fox", "a fox, oil painting"),
        ("oil painting", "", "oil painting"),
        ("", "a fox", "a fox"),
        ("", "", ""),
    ],
)
def test_style_text_takes_the_prompt_in_place_of_the_placeholder_or_is_appended(
    style: str, prompt: str, expected: str
) -> None:
    assert apply_style_text(style, prompt) == expected


STYLES = {
    "frame": PromptStyle("frame", "a photo of {prompt}", "cartoon"),
    "dusk": PromptStyle("dusk", "at dusk", ""),
    "grain": PromptStyle("grain", "film grain", "{prompt}, smooth"),
}


def test_styles_apply_in_the_order_named_to_both_prompts() -> None:
    assert apply_styles("a fox", "blurry", ["frame", "dusk"], STYLES) == (
        "a photo of a fox, at dusk",
        "blurry, cartoon",
    )
    assert apply_styles("a fox", "blurry", ["dusk", "frame"], STYLES) == (
        "a photo of a fox, at dusk",
        "blurry, cartoon",
    )
    assert apply_styles("a fox", "", ["dusk", "grain"], STYLES) == ("a fox, at dusk, film grain", ", smooth")
    assert apply_styles("a fox", "", ["grain", "dusk"], STYLES)[0] == "a fox, film grain, at dusk"
    assert apply_styles("a fox", "n", [], STYLES) == ("a fox", "n")


def test_an_unknown_style_is_refused_naming_it_and_the_known_ones() -> None:
    with pytest.raises(InputError) as caught:
        apply_styles("a fox", "", ["dusk", "neon"], STYLES)
    assert caught.value.field == "styles"
    assert "unknown style 'neon'" in str(caught.value) and "available: 'frame', 'dusk', 'grain'" in str(caught.value)
    with pytest.raises(InputError, match="available: none"):
        apply_styles("a fox", "", ["dusk"], {})


# -- extracting --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("style", "prompt"),
    [
        ("{prompt}, oil painting", "a fox"),
        ("masterpiece, {prompt}, {prompt}", "fox"),
        ("{prompt}{prompt}", "ab"),
        ("framed {prompt}", ""),
        ("oil painting", "a fox"),
        ("oil painting", ""),
        ("", "a fox"),
    ],
)
def test_unapplying_a_style_text_gives_the_prompt_back(style: str, prompt: str) -> None:
    assert unapply_style_text(style, apply_style_text(style, prompt)) == prompt


@pytest.mark.parametrize(
    ("style", "text"),
    [
        ("oil painting", "a fox"),
        ("oil painting", "a fox oil painting"),  # no ", " before it
        ("oil painting", ", oil painting"),  # an empty prompt gets no separator
        ("{prompt}, oil painting", "a fox, watercolour"),
        ("masterpiece, {prompt}, {prompt}", "masterpiece, fox, cat"),
        ("masterpiece, {prompt}, {prompt}", "masterpiece, fox, fo"),  # the lengths do not add up
        ("long {prompt} text", "short"),
    ],
)
def test_a_text_the_style_did_not_make_is_not_unapplied(style: str, text: str) -> None:
    assert unapply_style_text(style, text) is None


def test_extract_styles_gives_back_the_names_in_order_and_the_original_prompts() -> None:
    prompt, negative = apply_styles("a fox", "blurry", ["dusk", "frame", "grain"], STYLES)
    assert extract_styles(prompt, negative, STYLES) == (["dusk", "frame", "grain"], "a fox", "blurry")
    prompt, negative = apply_styles("a fox", "blurry", ["grain", "dusk", "frame"], STYLES)
    assert extract_styles(prompt, negative, STYLES) == (["grain", "dusk", "frame"], "a fox", "blurry")


def test_only_styles_matching_both_prompts_are_extracted() -> None:
    # the prompt ends as "dusk" leaves it, but "frame" also needs "cartoon" on the negative prompt
    assert extract_styles("a photo of a fox, at dusk", "blurry", STYLES) == (["dusk"], "a photo of a fox", "blurry")
    assert extract_styles("a fox", "blurry, cartoon", STYLES) == ([], "a fox", "blurry, cartoon")
    assert extract_styles("nothing styled", "", STYLES) == ([], "nothing styled", "")


def test_a_style_that_changes_nothing_is_never_extracted() -> None:
    styles = {
        "empty": PromptStyle("empty", "", ""),
        "bare": PromptStyle("bare", "{prompt}", "{prompt}"),
        "dusk": STYLES["dusk"],
    }
    assert extract_styles("a fox, at dusk", "n", styles) == (["dusk"], "a fox", "n")


def test_where_the_texts_read_two_ways_the_reading_with_more_styles_wins() -> None:
    styles = {"tail": PromptStyle("tail", "a", ""), "twice": PromptStyle("twice", "c {prompt} {prompt}", "")}
    prompt, negative = apply_styles("0", "", ["tail", "twice"], styles)
    assert prompt == "c 0, a 0, a"  # also "tail" alone over the prompt "c 0, a 0"
    assert extract_styles(prompt, negative, styles) == (["tail", "twice"], "0", "")


def test_extracting_from_many_styles_finds_the_applied_ones() -> None:
    styles = {f"s{index}": PromptStyle(f"s{index}", f"word{index}", f"{{prompt}} neg{index}") for index in range(300)}
    applied = ["s7", "s250", "s3", "s99"]
    prompt, negative = apply_styles("a fox", "blurry", applied, styles)
    assert extract_styles(prompt, negative, styles) == (applied, "a fox", "blurry")


def test_a_styles_file_read_many_ways_is_searched_within_a_budget() -> None:
    # every style fits the empty negative prompt at every step: 40! orders to try without the budget
    styles = {f"s{index}": PromptStyle(f"s{index}", "{prompt}", "{prompt}{prompt}") for index in range(40)}
    styles["never"] = PromptStyle("never", "not there", "")
    started = time.monotonic()
    found, prompt, negative = extract_styles("a fox", "", styles)
    assert time.monotonic() - started < 5
    assert (len(found), prompt, negative) == (40, "a fox", "") and "never" not in found


WORDS = st.text(alphabet="abcdefghij", min_size=1, max_size=4)


@st.composite
def styles_and_choice(draw: st.DrawFn) -> tuple[dict[str, PromptStyle], list[str]]:
    """Styles whose texts are distinct letter words, bare or around {prompt}, and some of them in some order."""
    count = draw(st.integers(min_value=1, max_value=5))
    words = draw(st.lists(WORDS, min_size=2 * count, max_size=2 * count, unique=True))
    shapes = ["", "{word}", "{word} {{prompt}}", "{{prompt}} {word}", "{word} {{prompt}} {{prompt}}"]
    styles = {}
    for index in range(count):
        prompt_shape, negative_shape = draw(st.sampled_from(shapes)), draw(st.sampled_from(shapes))
        if not prompt_shape and not negative_shape:
            prompt_shape = "{word}"
        styles[f"style{index}"] = PromptStyle(
            f"style{index}",
            prompt_shape.format(word=words[2 * index]),
            negative_shape.format(word=words[2 * index + 1]),
        )
    order = draw(st.permutations(list(styles)))
    return styles, order[: draw(st.integers(min_value=0, max_value=count))]


@settings(max_examples=300, deadline=None)
@given(
    styles_and_choice(),
    st.text(alphabet="0123456789 ", min_size=1, max_size=8).filter(lambda text: text.strip() == text),
    st.text(alphabet="0123456789", max_size=6),
)
def test_extract_styles_undoes_apply_styles(
    chosen_styles: tuple[dict[str, PromptStyle], list[str]], prompt: str, negative: str
) -> None:
    styles, names = chosen_styles
    styled_prompt, styled_negative = apply_styles(prompt, negative, names, styles)
    found, original_prompt, original_negative = extract_styles(styled_prompt, styled_negative, styles)
    assert (original_prompt, original_negative) == (prompt, negative)
    # styles touching different prompts commute, so their order may come back either way; the texts may not
    assert sorted(found) == sorted(names)
    assert apply_styles(original_prompt, original_negative, found, styles) == (styled_prompt, styled_negative)
