"""API keys: generated, hashed, matched in constant time."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway.ops.auth import bearer_token, hash_key, identify, new_key


@dataclass
class Key:
    name: str
    sha256: str


def test_keys_are_matched_by_hash() -> None:
    keys = [Key("a", hash_key("secret-a")), Key("b", hash_key("secret-b").upper())]
    assert identify("secret-b", keys).name == "b"  # type: ignore[union-attr]
    assert identify("secret-c", keys) is None and identify(None, keys) is None


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Bearer ", None), ("Basic abc", None), (None, None)],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_new_keys_are_long_and_random() -> None:
    assert new_key() != new_key() and len(new_key()) > 40
