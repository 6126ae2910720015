"""The web UI's prompt emphasis syntax: `(word)`, `[word]`, `(word:1.5)`, escapes and BREAK, as (text, weight) pieces.

The rules, as the AUTOMATIC1111 web UI reads a prompt:

- `(abc)` multiplies the weight of abc by 1.1, `[abc]` divides it by 1.1; nested brackets multiply: `((abc))` is 1.21.
- `(abc:1.5)` multiplies it by 1.5 instead (a signed decimal number, spaces allowed around it); enclosing brackets
  still multiply: `((abc:1.5))` is 1.65.
- `\\(`, `\\)`, `\\[`, `\\]` and `\\\\` are the literal characters; a backslash before anything else stays a backslash.
- A bracket never closed applies to the rest of the prompt; a closing bracket with no opener of its kind, and a `:`
  that does not end a round bracket with a number, are literal text.
- `BREAK` (uppercase, a whole word, with the whitespace around it) yields the piece `("BREAK", -1.0)`, which tells
  the text encoder to start a new 75-token chunk.
- Neighbouring pieces of equal weight are merged; an empty prompt is `[("", 1.0)]`.

Where we differ from the web UI, on purpose:

- A lone backslash (`\\` before a character that is not escapable) is kept; the web UI silently drops it.
- A weight that is not a finite number (`(a:1.2.3)`, `(a:.)`, a 400-digit number) is not a weight: its text stays
  literal and the `)` closes the bracket with 1.1. The web UI raises on the first two and returns inf on the last.
- BREAK inside brackets still breaks: the brackets' multipliers never apply to it. The web UI multiplies its -1 and
  then sends the word "BREAK" to the tokenizer with a negative weight.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

ROUND_BRACKET_MULTIPLIER = 1.1
SQUARE_BRACKET_MULTIPLIER = 1 / 1.1
# what a BREAK looks like in the result; a text piece "BREAK" at exactly -1.0 (only reachable by merging such as
# `(BRE:-1)(AK:-1)`) reads the same, in the web UI too
BREAK_PIECE: tuple[str, float] = ("BREAK", -1.0)

# One token of the prompt per match; every character of any text belongs to exactly one token, so finditer covers it.
_TOKEN = re.compile(
    r"""
      (?P<escaped>\\[()\[\]\\])                 # \( \) \[ \] \\ : the character itself
    | (?P<weight>:\s*(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))\s*\))   # ':1.5)' closes a round bracket with 1.5
    | (?P<open>[(\[])
    | (?P<close>[)\]])
    | (?P<text>[^\\()\[\]:]+|[\\:])             # plain text; a lone backslash or colon is text as well
    """,
    re.VERBOSE,
)
# BREAK swallows the whitespace around it, so `a BREAK b` leaves the pieces "a" and "b"
_BREAK = re.compile(r"\s*\bBREAK\b\s*")


@dataclass
class _Piece:
    """A run of text and its weight while brackets are still being closed; a BREAK marker carries no text."""

    text: str
    weight: float = 1.0
    is_break: bool = False


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """The prompt as (text, weight) pieces, BREAKs as `("BREAK", -1.0)`; see the module docstring for the rules.

    >>> parse_prompt_attention("an (important) word")
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]
    """
    pieces: list[_Piece] = []
    # where each open bracket's range starts: an index into pieces
    round_starts: list[int] = []
    square_starts: list[int] = []

    def multiply_from(start: int, multiplier: float) -> None:
        for piece in pieces[start:]:
            if not piece.is_break:
                piece.weight *= multiplier

    def close_round(multiplier: float) -> None:
        if round_starts:
            multiply_from(round_starts.pop(), multiplier)
        else:
            pieces.append(_Piece(")"))

    def add_text(run: str) -> None:
        for index, part in enumerate(_BREAK.split(run)):
            if index > 0:
                pieces.append(_Piece("", is_break=True))
            pieces.append(_Piece(part))

    # 1. read the tokens left to right, closing brackets as they come
    for match in _TOKEN.finditer(text):
        token = match.group()
        if match.group("escaped"):
            pieces.append(_Piece(token[1]))
        elif match.group("weight"):
            weight = float(match.group("number"))
            if round_starts and math.isfinite(weight):
                multiply_from(round_starts.pop(), weight)
            else:
                # not a weight after all: the ':number' is text and the ')' what it would be on its own
                add_text(token[:-1])
                close_round(ROUND_BRACKET_MULTIPLIER)
        elif token == "(":
            round_starts.append(len(pieces))
        elif token == "[":
            square_starts.append(len(pieces))
        elif token == ")":
            close_round(ROUND_BRACKET_MULTIPLIER)
        elif token == "]":
            if square_starts:
                multiply_from(square_starts.pop(), SQUARE_BRACKET_MULTIPLIER)
            else:
                pieces.append(_Piece("]"))
        else:
            add_text(token)

    # 2. a bracket never closed reaches to the end of the prompt
    for start in round_starts:
        multiply_from(start, ROUND_BRACKET_MULTIPLIER)
    for start in square_starts:
        multiply_from(start, SQUARE_BRACKET_MULTIPLIER)

    # 3. drop empty text (it has no tokens) and merge neighbours of equal weight; BREAKs never merge
    merged: list[_Piece] = []
    for piece in pieces:
        if not piece.is_break and not piece.text:
            continue
        previous = merged[-1] if merged else None
        if previous and not previous.is_break and not piece.is_break and previous.weight == piece.weight:
            previous.text += piece.text
        else:
            merged.append(_Piece(piece.text, piece.weight, piece.is_break))
    if not merged:
        return [("", 1.0)]
    return [BREAK_PIECE if piece.is_break else (piece.text, piece.weight) for piece in merged]
