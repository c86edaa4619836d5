"""What a client's `Cache-Control` request header lets the result cache do.

`no-cache` (or `max-age=0`): do not answer from the cache; compute, then store.
`no-store`: neither read nor write. Other directives are ignored.
"""

from __future__ import annotations

from gateway.cache.base import DEFAULT_POLICY, CachePolicy

_BYPASS = CachePolicy(read=False, write=False)
_REFRESH = CachePolicy(read=False, write=True)


def cache_policy(header: str | None) -> CachePolicy:
    if not header:
        return DEFAULT_POLICY
    directives = {part.strip().lower().replace(" ", "") for part in header[:1024].split(",")}
    if "no-store" in directives:
        return _BYPASS
    if "no-cache" in directives or "max-age=0" in directives:
        return _REFRESH
    return DEFAULT_POLICY
