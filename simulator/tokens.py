"""Token counts with tiktoken's cl100k_base, offline.

tiktoken downloads its BPE files on first use, with no timeout. LiteLLM's wheel
ships them under tiktoken's cache names, so that directory serves as its cache
(the same five lines as `gateway.offline`, repeated so the simulator needs
nothing of the gateway).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import tiktoken

ENCODING = "cl100k_base"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def _cache_file(directory: str, name: str) -> Path:
    return Path(directory) / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()


def _bundled_dir() -> str:
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it (slow)
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    directory = os.environ.get("TIKTOKEN_CACHE_DIR", "")
    if not directory or not _cache_file(directory, ENCODING).is_file():
        directory = _bundled_dir()
        # LiteLLM overwrites TIKTOKEN_CACHE_DIR on its first count unless CUSTOM_ is set too.
        os.environ["TIKTOKEN_CACHE_DIR"] = os.environ["CUSTOM_TIKTOKEN_CACHE_DIR"] = directory
    if not _cache_file(directory, ENCODING).is_file():
        raise RuntimeError(f"tiktoken encoding {ENCODING} not found offline (looked in {directory!r}); "
                           "set TIKTOKEN_CACHE_DIR to a directory holding it")
    return tiktoken.get_encoding(ENCODING)


@lru_cache(maxsize=16384)  # windows and fan-outs repeat passages and instructions
def count(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def count_messages(messages: Iterable[Mapping[str, str]]) -> int:
    """OpenAI's chat accounting: 3 per message plus role and content, plus 3 to prime the reply."""
    return 3 + sum(3 + count(m["role"]) + count(m["content"]) for m in messages)


def split(text: str) -> list[str]:
    """`text` as the strings of its tokens (a token that splits a character decodes with U+FFFD)."""
    enc = encoding()
    return [enc.decode_single_token_bytes(t).decode("utf-8", errors="replace")
            for t in enc.encode(text, disallowed_special=())]
