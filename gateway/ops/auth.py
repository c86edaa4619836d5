"""API keys: stored as SHA-256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Protocol


class HashedKey(Protocol):
    name: str
    sha256: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "rg-" + secrets.token_urlsafe(32)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def identify(token: str | None, keys: Sequence[HashedKey]) -> HashedKey | None:
    """The key `token` is, or None. Every stored hash is compared, so timing says nothing."""
    if token is None:
        return None
    digest = hash_key(token)
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.sha256.lower()):
            found = key
    return found
