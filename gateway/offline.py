"""Keep imports and token counting off the network.

LiteLLM fetches its price map from GitHub on import unless told otherwise, and
tiktoken downloads BPE files on first use with no timeout (a black-holed network
hangs it forever). Both are switched to local data here, before either library
is imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

_FLAGS = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOG": "ERROR",
}


class MissingEncoding(RuntimeError):
    """A tiktoken encoding is not available offline."""


def bundled_encodings_dir() -> Path | None:
    """LiteLLM's wheel ships cl100k_base and o200k_base under tiktoken's cache names."""
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"


def configure() -> None:
    for key, value in _FLAGS.items():
        os.environ.setdefault(key, value)
    cache_dir = os.environ.get("RERANK_GATEWAY_TIKTOKEN_DIR") or str(bundled_encodings_dir() or "")
    if cache_dir:
        # LiteLLM overwrites TIKTOKEN_CACHE_DIR on its first token count unless
        # CUSTOM_TIKTOKEN_CACHE_DIR is set too, so both point at the same place.
        os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
        os.environ["CUSTOM_TIKTOKEN_CACHE_DIR"] = cache_dir


def encoding_file(name: str) -> Path:
    """The file tiktoken would read for `name`, named by the sha1 of its URL."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", "")
    key = hashlib.sha1(ENCODING_URL.format(name=name).encode()).hexdigest()
    return Path(cache_dir) / key


def require_encoding(name: str) -> None:
    """Fail fast when an encoding is missing; tiktoken would try to download it."""
    path = encoding_file(name)
    if not path.is_file():
        raise MissingEncoding(
            f"tiktoken encoding {name!r} is not available offline (looked for {path}); "
            "set RERANK_GATEWAY_TIKTOKEN_DIR to a directory holding it"
        )
