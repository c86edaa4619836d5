"""The bounded wire: what LiteLLM's OpenAI-compatible path reads of an upstream's answer."""

from __future__ import annotations

import gzip
import json
import math
import zlib

import pytest

from gateway.upstream.wire import MAX_USAGE_COUNT, AnswerTooLarge, clean_usage, decompress, usage_count


@pytest.mark.parametrize(("value", "count"), [
    (12, 12), (0, 0), (12.9, 12), (-1, None), (-0.5, None), (math.inf, None), (math.nan, None), (True, None),
    ("12", None), (None, None), ([1], None), ({"n": 1}, None), (10**30, MAX_USAGE_COUNT),
])
def test_usage_counts_are_non_negative_integers_or_unknown(value: object, count: int | None) -> None:
    assert usage_count(value) == count


def test_a_clean_usage_is_left_byte_for_byte() -> None:
    body = b'{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}'
    assert clean_usage(body) is body


@pytest.mark.parametrize(("usage", "expected"), [
    ('{"prompt_tokens": 1.5, "completion_tokens": -2, "total_tokens": "x"}', {"prompt_tokens": 1}),
    ('{"prompt_tokens": Infinity, "completion_tokens": NaN}', None),
    ("[1, 2]", None),
    ('{"prompt_tokens": 7, "prompt_tokens_details": {"cached_tokens": -1}}', {"prompt_tokens": 7}),
])
def test_a_hostile_usage_is_rewritten(usage: str, expected: dict[str, int] | None) -> None:
    body = f'{{"id": "x", "choices": [{{"index": 0}}], "usage": {usage}}}'.encode()
    data = json.loads(clean_usage(body))
    assert data["usage"] == expected and data["choices"] == [{"index": 0}]


def test_compressed_bodies_are_inflated_within_the_limit() -> None:
    assert decompress(gzip.compress(b"hello"), "gzip", 100) == b"hello"
    assert decompress(zlib.compress(b"hello"), "deflate", 100) == b"hello"
    with pytest.raises(AnswerTooLarge):
        decompress(gzip.compress(b"0" * 10_000_000), "gzip", 1_000_000)  # a bomb: 10 kB that inflates to 10 MB
