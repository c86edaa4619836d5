"""Cache keys: what decides a ranking, hashed.

The key covers everything that can change a ranking (model, mode, strategy
settings and prompt version, query, document texts) and nothing that cannot
(`top_n`, `return_documents`, fusion), so those are applied after the lookup.

It is built in two parts, because one of them is the same for every request
to a model and mode: `config_digest` hashes the settings once per service,
`request_key` adds one request's texts to it. The texts are hashed as orjson
writes them (one canonical encoding of the strings, whatever JSON spelling the
client sent), so a key costs one serialization and one SHA-256 of about the
body's size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import orjson


def config_digest(**parts: Any) -> bytes:
    """SHA-256 of a canonical JSON encoding of `parts` (settings: computed once, not per request)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).digest()


def request_key(config: bytes, *, query: str, texts: Sequence[str], instruction: str | None = None,
                token_budget: int | None = None, tenant: str | None = None) -> str:
    """The key of one request: `config` (a `config_digest`) and what the request asks; `tenant`
    (with `cache.scope = "key"`) keeps one API key's rankings from answering another's."""
    digest = hashlib.sha256(config)
    texts = texts if isinstance(texts, list | tuple) else list(texts)
    digest.update(orjson.dumps([query, instruction, token_budget, tenant, texts]))
    return digest.hexdigest()
