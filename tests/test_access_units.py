"""Keys and rate buckets, with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway.auth import bearer_token, hash_key, identify, new_key
from gateway.ratelimit import KeyLimits


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


def test_request_bucket_refills_over_a_minute() -> None:
    now = [0.0]
    limits = KeyLimits(requests_per_minute=2, tokens_per_minute=0, clock=lambda: now[0])
    assert limits.admit().allowed and limits.admit().allowed
    refused = limits.admit()
    assert not refused.allowed and refused.limit == "requests" and refused.retry_after == pytest.approx(30)
    now[0] = 30
    assert limits.admit().allowed


def test_tokens_are_charged_after_the_fact_and_block_until_refilled() -> None:
    now = [0.0]
    limits = KeyLimits(requests_per_minute=0, tokens_per_minute=600, clock=lambda: now[0])
    assert limits.admit().allowed
    limits.charge_tokens(900)  # a request may overdraw the bucket
    refused = limits.admit()
    assert not refused.allowed and refused.limit == "tokens"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    now[0] = 31  # 300 tokens back: the bucket is positive again
    assert limits.admit().allowed
