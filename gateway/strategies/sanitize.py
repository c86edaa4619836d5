"""Make untrusted text (documents, the query, the instruction) safe to place inside a prompt.

Untrusted text must not be able to forge a passage identifier (`[7]`), close
or open the delimiter it sits in (`</passage>`), open a chat turn in a model
that renders a chat template (`<|im_end|><|im_start|>system`, `[INST]`,
`<start_of_turn>`), or hide text from a reader with invisible characters.

Both sides agree on what an identifier is: `fold` is applied to untrusted text
before it is defused and to model answers before they are parsed, so a look-alike
(`[③]`, `［3］`, `⟦3⟧`, `〚3〛`) that the parser would read as an identifier is
defused in a document too. Every rewrite keeps the text readable for the model:
`[7]` becomes `(7)`, `<|im_end|>` becomes `(im_end)`.

`safe_text` is what a strategy calls: it cuts first (a bounded prefix of a
100k-character document), then folds and defuses, then fits the token budget,
so the work per document is bounded by its budget, not by its length.
"""

from __future__ import annotations

import re
import unicodedata

import regex
import tiktoken

from gateway.strategies.tokens import MAX_CHARS_PER_TOKEN, OTHER_SPACE, truncate

# Every invisible character: format characters (Cf: zero-width spaces and joiners, bidi controls,
# tag characters) and the rest of Unicode's default-ignorables (variation selectors, the combining
# grapheme joiner, the Hangul fillers). The `regex` module (tiktoken's own dependency) knows both
# properties, on a newer Unicode than unicodedata, and tests one with a table lookup where a class
# of ranges was a comparison per range.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Default_Ignorable_Code_Point}]+")

# Brackets a model (or the parser) may read as an identifier's: after NFKC has folded the
# full-width ones, these are the look-alikes that stay distinct characters.
OPEN_BRACKETS = "[⟦〚【〔〖〘⦃⦅⦗⁅❲⟬⟮⦋⦍⦏⟨〈⟪"
CLOSE_BRACKETS = "]⟧〛】〕〗〙⦄⦆⦘⁆❳⟭⟯⦌⦎⦐⟩〉⟫"
# An identifier, in folded text: "[7]", "[ 12 ]", "⟦3⟧", "〚٣〛" (\d is any decimal digit).
IDENTIFIER = re.compile(f"[{re.escape(OPEN_BRACKETS)}]\\s*(\\d+)\\s*[{re.escape(CLOSE_BRACKETS)}]")

_ANGLE_OPEN, _ANGLE_CLOSE = "<‹〈⟨«", ">›〉⟩»"
# Any tag that opens or closes our delimiters, in any case and spacing, with attributes, or HTML-escaped.
_DELIMITER = re.compile(
    f"(?:[{_ANGLE_OPEN}]|&lt;)\\s*/?\\s*passage\\b[^<>]{{0,64}}?(?:[{_ANGLE_CLOSE}]|&gt;)", re.IGNORECASE
)

# Special tokens of the common chat templates, which a template-rendering backend (llama.cpp,
# vLLM, TGI, Ollama) may tokenize as control tokens wherever they appear in the text:
#   <|...|>            ChatML (Qwen, SmolLM, Phi-4), Llama 3, Phi-3, Command-R, gpt-oss, tiktoken's
#                      <|endoftext|>, DeepSeek's <｜...｜> (NFKC folds its full-width bars)
#   [INST] <<SYS>>     Llama 2 and Mistral, with Mistral's newer [SYSTEM_PROMPT], [TOOL_CALLS] ...
#   <start_of_turn>    Gemma; <s> </s> <unk> <pad> <bos> <eos> of SentencePiece vocabularies
#   <file_sep> ...     StarCoder-style tokens of SmolLM2's vocabulary; <think> <tool_call> of Qwen 3
_PIPE_TOKEN = re.compile(r"<\|([^|<>\n]{1,64})\|>")
_BRACKET_TOKEN = re.compile(
    r"\[\s*(/?\s*(?:INST|SYS|SYSTEM_PROMPT|TOOL_CALLS|AVAILABLE_TOOLS|TOOL_RESULTS|TOOL_CONTENT|THINK|IMG"
    r"|IMG_BREAK|IMG_END|PREFIX|MIDDLE|SUFFIX|ARGS|CALL_ID))\s*\]",
    re.IGNORECASE,
)
_SYS_TOKEN = re.compile(r"<<\s*(/?\s*SYS)\s*>>", re.IGNORECASE)
_ANGLE_TOKEN = re.compile(
    r"<\s*(/?\s*(?:s|unk|pad|bos|eos|mask|sep|cls|start_of_turn|end_of_turn|start_of_image|end_of_image"
    r"|think|tool_call|tool_response|file_sep|filename|repo_name|reponame|gh_stars|issue_start|issue_comment"
    r"|issue_closed|jupyter_start|jupyter_text|jupyter_code|jupyter_output|jupyter_script|empty_output"
    r"|commit_before|commit_msg|commit_after|fim_prefix|fim_middle|fim_suffix|fim_pad|BOS_TOKEN|EOS_TOKEN))\s*>",
    re.IGNORECASE,
)
# Every special token, delimiter and identifier starts with one of these once the text is folded:
# a text with none of them (most passages) is past the patterns after one scan.
_MAY_MATCH = re.compile(f"[{re.escape(OPEN_BRACKETS + _ANGLE_OPEN)}&]")
_LATIN1_MAY_MATCH = "".join(c for c in OPEN_BRACKETS + _ANGLE_OPEN + "&" if ord(c) < 0x100)  # [ < « &
_DELIMITER_STARTS = _ANGLE_OPEN + "&"


def fold(text: str) -> str:
    """What a character means, for the sanitizer and the answer parsers alike: NFKC (full-width and
    circled digits and brackets, ligatures) with invisible characters removed."""
    return _fold(text)[0]


def _fold(text: str) -> tuple[str, bool]:
    """`fold(text)`, and whether every character of it is below U+0100 (Latin-1)."""
    if text.isascii():  # NFKC keeps ASCII as it is, and every invisible character is beyond it
        return text, True
    text = unicodedata.normalize("NFKC", text)
    try:
        text.encode("latin-1")  # a copy, for the one-byte strings most non-ASCII passages are
    except UnicodeEncodeError:
        return _INVISIBLE.sub("", text), False
    return text.replace(SOFT_HYPHEN, ""), True  # the only invisible character below U+0100


SOFT_HYPHEN = "\u00ad"


def neutralize(text: str) -> str:
    """Return `text` folded, with special tokens, delimiters and identifiers defused.

    The cost is linear in `text`: cut it to what the prompt can hold first (`safe_text`). This runs
    on every passage of every miss, so each step is skipped where it cannot match.
    """
    text, latin1 = _fold(text)
    if latin1:
        # Latin-1 text (every ASCII one, and most others: accents, and the C1 controls of mojibake such as
        # "â\x80\x99") is checked with a few scans in C for the characters that matter below U+0100, where
        # one regex search or isprintable cost more than the rest of this function.
        if _holds_any(text, _LATIN1_MAY_MATCH):
            text = _defuse(text)
        spaced = not _holds_any(text, _LATIN1_OTHER_SPACE)
    else:
        if _MAY_MATCH.search(text):
            text = _defuse(text)
        spaced = text.isprintable() or not OTHER_SPACE.search(text)
    # Whitespace runs to one space, trimmed (str.split's whitespace is re's \s).
    if spaced and "  " not in text and not text.startswith(" ") and not text.endswith(" "):
        return text
    return " ".join(text.split())


# Latin-1's whitespace but the space, for str.split (and re's \s) alike: ASCII's, NEL and the no-break space.
_LATIN1_OTHER_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\xa0"


def _defuse(text: str) -> str:
    # Each pattern runs only where the character its matches start with is in the text: a passage with
    # an "&" (most texts that come here) is scanned once, for an escaped delimiter, not six times.
    for _ in range(8):  # defusing "<|<|im_end|>|>" leaves "<|(im_end)|>": repeat until nothing matches
        before = text
        if "<" in text:  # (the patterns keep their order: <|...|>, then [INST], then <<SYS>> and <s>)
            text = _PIPE_TOKEN.sub(r"(\1)", text)
        if "[" in text:
            text = _BRACKET_TOKEN.sub(r"(\1)", text)
        if "<" in text:
            text = _ANGLE_TOKEN.sub(r"(\1)", _SYS_TOKEN.sub(r"(\1)", text))
        if _holds_any(text, _DELIMITER_STARTS):
            text = _DELIMITER.sub("(passage)", text)
        if text == before:
            break
    return IDENTIFIER.sub(r"(\1)", text) if _holds_any(text, OPEN_BRACKETS) else text


def _holds_any(text: str, chars: str) -> bool:
    # A loop of `in` (a memchr each) costs less than any(map(text.__contains__, chars)) or a regex class.
    for char in chars:
        if char in text:
            return True
    return False


def safe_text(enc: tiktoken.Encoding, text: str, max_tokens: int) -> str:
    """Untrusted `text` ready for a prompt slot of `max_tokens`: cut, neutralized, then truncated to fit.

    The cut keeps a prefix that holds more than `max_tokens` tokens of any text (the same bound
    `truncate` slices by), so defusing never runs over the rest of a long document.
    """
    return truncate(enc, neutralize(text[: max(max_tokens, 0) * MAX_CHARS_PER_TOKEN]), max_tokens, spaced=True)


def instruction_line(enc: tiktoken.Encoding, instruction: str | None, context_window: int) -> str:
    """A client's task instruction as the prompt's `$instruction` value ("" when there is none)."""
    text = safe_text(enc, instruction or "", context_window // 8)
    return f"\nInstruction: {text}" if text else ""
