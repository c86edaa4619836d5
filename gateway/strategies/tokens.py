"""Token counting and truncation with tiktoken, offline.

Counts follow OpenAI's chat accounting (3 tokens per message plus role and
content, plus 3 to prime the reply), which reproduces LiteLLM's own counts for
the GPT-4 family. They are used when an upstream does not report `usage`, and
to truncate passages so a prompt always fits the model's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import tiktoken

from gateway.offline import require_encoding

Message = dict[str, str]

# A token is rarely longer than this many characters, so a prefix this many times a budget
# holds more than the budget: long texts are sliced before anything runs over them.
MAX_CHARS_PER_TOKEN = 16

# Models whose name starts with one of these use o200k_base; everything else
# (the GPT-4/3.5 family and unknown models) is counted with cl100k_base.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


def encoding_name_for(model: str) -> str:
    """Pick the encoding for a LiteLLM model string such as ``openai/gpt-4o``.

    The provider prefix is dropped first: LiteLLM's own counter misses it and
    counts ``openai/gpt-4o`` with cl100k_base.
    """
    name = model.rsplit("/", 1)[-1].lower()
    return "o200k_base" if name.startswith(_O200K_PREFIXES) else "cl100k_base"


@lru_cache(maxsize=8)
def get_encoding(name: str) -> tiktoken.Encoding:
    require_encoding(name)
    return tiktoken.get_encoding(name)


def count_text(enc: tiktoken.Encoding, text: str) -> int:
    return len(enc.encode(text, disallowed_special=()))


def count_messages(enc: tiktoken.Encoding, messages: Sequence[Message]) -> int:
    return 3 + sum(3 + count_text(enc, m["role"]) + count_text(enc, m["content"]) for m in messages)


def truncate(enc: tiktoken.Encoding, text: str, max_tokens: int) -> str:
    """Cut `text` to at most `max_tokens` tokens, on a token boundary."""
    # Encoding is linear in the text: a long document is sliced first instead of encoded whole.
    text = text[: max(max_tokens, 0) * MAX_CHARS_PER_TOKEN]
    if len(text) <= max_tokens and len(text.encode("utf-8", "surrogatepass")) <= max_tokens:
        return text  # every token is at least one byte: this one fits without encoding it
    tokens = enc.encode(text, disallowed_special=())
    if len(tokens) <= max_tokens:
        return text
    # A cut can split a multi-byte character; decoding drops the broken tail.
    return enc.decode(tokens[: max(max_tokens, 0)], errors="ignore")
