"""Per-key rate buckets, with a fake clock."""

from __future__ import annotations

import pytest

from gateway.ops.ratelimit import KeyLimits


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
