"""The bounded wire: what LiteLLM's OpenAI-compatible path reads of an upstream's answer."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import zlib

import httpx
import pytest

from gateway.upstream.wire import (
    MAX_USAGE_COUNT,
    AnswerTooLarge,
    BoundedTransport,
    clean_usage,
    decompress,
    usage_count,
)


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


@pytest.mark.parametrize(("encoding", "sent"), [(None, b'{"usage": {"prompt_tokens": 3}}'),
                                               ("gzip", gzip.compress(b'{"usage": {"prompt_tokens": 3}}'))])
def test_an_answer_reaches_litellm_as_plain_bytes_with_true_headers(encoding: str | None, sent: bytes) -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("accept-encoding"))
        headers = {"content-type": "application/json", **({"content-encoding": encoding} if encoding else {})}
        return httpx.Response(200, headers=headers, content=sent)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=BoundedTransport(httpx.MockTransport(answer))) as client:
            return await client.post("http://upstream/v1/chat/completions", json={})

    response = asyncio.run(call())
    assert seen == ["identity"]
    assert response.json() == {"usage": {"prompt_tokens": 3}}
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))
