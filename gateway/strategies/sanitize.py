"""Make untrusted document text safe to place inside a prompt slot.

A document must not be able to forge a passage identifier (`[7]`), close the
delimiter it sits in (`</passage>`), or hide text from a reader with invisible
characters. The rewrite keeps the text readable for the model.
"""

from __future__ import annotations

import re

import regex
import tiktoken

from gateway.strategies.tokens import truncate

# "[7]", "[ 7 ]", "［7］" and the like become "(7)", as rank_llm does.
_IDENTIFIER = re.compile(r"[\[［【〔]\s*(\d+)\s*[\]］】〕]")
# Any tag that opens or closes our delimiters, in any case and spacing.
_DELIMITER = re.compile(r"<\s*/?\s*passage\s*>", re.IGNORECASE)
# Format characters (Unicode category Cf): zero-width spaces and joiners, bidi overrides. The
# `regex` module (tiktoken's own dependency) knows the category, and a newer Unicode than unicodedata.
_INVISIBLE = regex.compile(r"\p{Cf}+")


def neutralize(text: str) -> str:
    """Return `text` with identifiers, delimiters and invisible characters defused."""
    # Each step skips what cannot match (this runs on every passage of every miss).
    ascii = text.isascii()
    if not ascii:  # ASCII has no format characters, nor full-width brackets
        text = _INVISIBLE.sub("", text)
    if not ascii or "[" in text:
        text = _IDENTIFIER.sub(r"(\1)", text)
    if "<" in text:
        text = _DELIMITER.sub("(passage)", text)
    return " ".join(text.split())  # whitespace runs to one space, trimmed (str.split's whitespace is re's \s)


def instruction_line(enc: tiktoken.Encoding, instruction: str | None, context_window: int) -> str:
    """A client's task instruction as the prompt's `$instruction` value ("" when there is none)."""
    text = neutralize(instruction or "")
    return f"\nInstruction: {truncate(enc, text, context_window // 8)}" if text else ""
