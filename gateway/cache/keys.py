"""Cache keys: what decides a ranking, hashed.

The key covers everything that can change a ranking (model, mode, strategy
settings and prompt version, query, document texts) and nothing that cannot
(`top_n`, `return_documents`, fusion), so those are applied after the lookup.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def cache_key(**parts: Any) -> str:
    """SHA-256 of a canonical JSON encoding of `parts`."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
