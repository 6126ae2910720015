"""The prompt emphasis parser: the web UI's documented results, BREAK, escapes, weights, and a fuzz for failures."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serena.prompt_parser import BREAK_PIECE, parse_prompt_attention


def assert_pieces(text: str, expected: list[tuple[str, float]]) -> None:
    result = parse_prompt_attention(text)
    assert [piece_text for piece_text, _ in result] == [piece_text for piece_text, _ in expected]
    assert [weight for _, weight in result] == pytest.approx([weight for _, weight in expected])


# -- the web UI's documented examples -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        (r"\(literal\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            # the first "(" is never closed, so everything after it is x1.1
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ],
        ),
    ],
)
def test_documented_examples(text: str, expected: list[tuple[str, float]]) -> None:
    assert_pieces(text, expected)


def test_empty_prompt_is_one_empty_piece() -> None:
    assert parse_prompt_attention("") == [("", 1.0)]


# -- brackets and weights -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("((abc))", [("abc", 1.21)]),
        ("[abc]", [("abc", 1 / 1.1)]),
        ("[[abc]]", [("abc", 1 / 1.21)]),
        ("([abc])", [("abc", 1.0)]),
        ("[abc", [("abc", 1 / 1.1)]),
        ("(abc:1.5)", [("abc", 1.5)]),
        ("(abc: 1.5 )", [("abc", 1.5)]),
        ("(abc:-0.5)", [("abc", -0.5)]),
        ("(abc:+2)", [("abc", 2.0)]),
        ("(abc:.5)", [("abc", 0.5)]),
        ("(abc:2.)", [("abc", 2.0)]),
        ("((a:1.5))", [("a", 1.65)]),
        ("[(a:1.5)]", [("a", 1.5 / 1.1)]),
        ("(a (b:2) c)", [("a ", 1.1), ("b", 2.2), (" c", 1.1)]),
        ("x (a) y [b] z", [("x ", 1.0), ("a", 1.1), (" y ", 1.0), ("b", 1 / 1.1), (" z", 1.0)]),
    ],
)
def test_brackets_and_weights_multiply(text: str, expected: list[tuple[str, float]]) -> None:
    assert_pieces(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a closing bracket with no opener of its kind is text
        ("a) b] c", [("a) b] c", 1.0)]),
        ("(a]", [("a]", 1.1)]),
        ("[a)", [("a)", 1 / 1.1)]),
        # a ':' that does not end a round bracket with a number is text
        ("a:b", [("a:b", 1.0)]),
        ("time: 12:30", [("time: 12:30", 1.0)]),
        ("(a:b)", [("a:b", 1.1)]),
        ("a:1.5) b", [("a:1.5) b", 1.0)]),
        ("[a:1.5)", [("a:1.5)", 1 / 1.1)]),
        # not numbers: the text stays and the ')' closes with 1.1 (the web UI raises on these)
        ("(a:1.2.3)", [("a:1.2.3", 1.1)]),
        ("(a:.)", [("a:.", 1.1)]),
        ("(a:" + "9" * 400 + ")", [("a:" + "9" * 400, 1.1)]),
    ],
)
def test_stray_brackets_colons_and_bad_numbers_are_literal(text: str, expected: list[tuple[str, float]]) -> None:
    assert_pieces(text, expected)


# -- escapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\(a\)", [("(a)", 1.0)]),
        (r"\[a\]", [("[a]", 1.0)]),
        (r"a\\b", [("a\\b", 1.0)]),
        (r"(\(a\))", [("(a)", 1.1)]),
        (r"(a\):2)", [("a)", 2.0)]),
        # a backslash before anything else stays a backslash (the web UI drops it)
        (r"a\b", [("a\\b", 1.0)]),
        ("a\\", [("a\\", 1.0)]),
        (r"\:", [("\\:", 1.0)]),
    ],
)
def test_escapes(text: str, expected: list[tuple[str, float]]) -> None:
    assert_pieces(text, expected)


# -- BREAK ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a BREAK b", [("a", 1.0), BREAK_PIECE, ("b", 1.0)]),
        ("a\n  BREAK\tb", [("a", 1.0), BREAK_PIECE, ("b", 1.0)]),
        ("a BREAK, b", [("a", 1.0), BREAK_PIECE, (", b", 1.0)]),
        ("BREAK", [BREAK_PIECE]),
        ("BREAK a", [BREAK_PIECE, ("a", 1.0)]),
        ("a BREAK", [("a", 1.0), BREAK_PIECE]),
        ("a BREAK BREAK b", [("a", 1.0), BREAK_PIECE, BREAK_PIECE, ("b", 1.0)]),
        ("(a)BREAK(b)", [("a", 1.1), BREAK_PIECE, ("b", 1.1)]),
        # brackets never weight a BREAK: it still breaks (the web UI would send the word "BREAK" at -1.1)
        ("(a BREAK b)", [("a", 1.1), BREAK_PIECE, ("b", 1.1)]),
        ("(a BREAK b:2)", [("a", 2.0), BREAK_PIECE, ("b", 2.0)]),
    ],
)
def test_break_splits_the_prompt(text: str, expected: list[tuple[str, float]]) -> None:
    assert_pieces(text, expected)


@pytest.mark.parametrize("text", ["break", "Break", "BREAKS", "aBREAK", "BREAK_", "BREAK2", "a-BREAKx"])
def test_break_only_as_an_uppercase_whole_word(text: str) -> None:
    assert parse_prompt_attention(text) == [(text, 1.0)]


# -- any text -------------------------------------------------------------------------------------

_SYNTAX = re.compile(r"[()\[\]\\:]|\bBREAK\b")


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=200) | st.text(alphabet="()[]\\:ab .,1-+BREAK", max_size=200))
def test_any_text_parses_to_finite_weights(text: str) -> None:
    result = parse_prompt_attention(text)

    assert result
    assert all(isinstance(piece, str) and math.isfinite(weight) for piece, weight in result)
    # the text survives: only syntax characters and the whitespace around BREAK go away
    joined = "".join(piece_text for piece_text, weight in result if (piece_text, weight) != BREAK_PIECE)
    assert len(joined) <= len(text)
    if not _SYNTAX.search(text):
        assert result == [(text, 1.0)]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_characters="()[]\\:"), max_size=200))
def test_text_without_syntax_is_one_unweighted_piece(text: str) -> None:
    if re.search(r"\bBREAK\b", text):
        assert BREAK_PIECE in parse_prompt_attention(text)
    else:
        assert parse_prompt_attention(text) == [(text, 1.0)]
