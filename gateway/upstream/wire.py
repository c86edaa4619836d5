"""What LiteLLM's OpenAI-compatible path may read from an upstream: a bounded, clean body.

LiteLLM reads a whole response and parses it (JSON, then pydantic) on the event
loop: a 10 MB answer stalls every request for a second and more, and a
gzip-bombed one exhausts memory. `BoundedTransport` wraps the HTTP transport
LiteLLM would use and, before LiteLLM sees a byte of it:

- refuses a body over `MAX_ANSWER_BYTES` (declared or streamed, decompressed
  with a bound too), raising `AnswerTooLarge`;
- asks for an uncompressed body, and decodes a compressed one itself;
- rewrites a malformed `usage` (negative, fractional, infinite, non-numeric
  counts), on which LiteLLM would fail the whole answer, into non-negative
  integers, or drops the counts it cannot read (they are counted locally).

It is installed as `litellm.aclient_session`, the session LiteLLM documents for
its OpenAI-compatible calls; other providers' answers are bounded only after
LiteLLM parsed them (`gateway.upstream.litellm_client`).
"""

from __future__ import annotations

import json
import math
import ssl
import zlib
from typing import Any

import httpx
import orjson

# A ranking or a one-token label with 20 logprobs is a few kilobytes; this is ample.
MAX_ANSWER_BYTES = 1024 * 1024
_USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
MAX_USAGE_COUNT = 2**31 - 1
_HOP_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


class AnswerTooLarge(httpx.ReadError):
    """An upstream answer over the byte limit; not worth retrying."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upstream answer is larger than {limit} bytes; refused unread")
        self.limit = limit


class BoundedTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int = MAX_ANSWER_BYTES) -> None:
        self.inner = inner
        self.limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["accept-encoding"] = "identity"
        response = await self.inner.handle_async_request(request)
        stream = response.stream
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.limit:
                raise AnswerTooLarge(self.limit)
            read = await self._read(response)
        finally:
            await stream.aclose()  # type: ignore[union-attr]
        body = decompress(read, response.headers.get("content-encoding", ""), self.limit)
        if response.status_code == 200:
            body = clean_usage(body)
        if body is read and "content-encoding" not in response.headers:
            # What came is what LiteLLM reads, headers and all: the response is kept, with the bytes read.
            response.stream = httpx.ByteStream(body)
            return response
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_HEADERS]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request,
                              extensions=response.extensions)

    async def _read(self, response: httpx.Response) -> bytes:
        chunks, size = [], 0
        async for chunk in response.stream:  # type: ignore[union-attr]
            size += len(chunk)
            if size > self.limit:
                raise AnswerTooLarge(self.limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self.inner.aclose()


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` decoded from gzip or deflate, never to more than `limit` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise httpx.DecodingError(f"unsupported content-encoding {encoding[:40]!r} (asked for identity)")
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, by header
    try:
        out = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise httpx.DecodingError(f"undecodable {encoding} body: {exc}") from None
    if len(out) > limit:
        raise AnswerTooLarge(limit)
    return out


def clean_usage(body: bytes) -> bytes:
    """`body` with its `usage` counts as non-negative integers (or absent); other fields untouched."""
    if b'"usage"' not in body:
        return body
    dumps = orjson.dumps
    try:
        data = orjson.loads(body)  # every answer passes here: orjson parses it in a fraction of json's time
    except (orjson.JSONDecodeError, RecursionError):
        # Strict JSON failed; the SDK's parser also takes NaN and Infinity, so this one must see them.
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return body  # not JSON: the SDK reports it
        dumps = _json_dumps
    usage = data.get("usage") if isinstance(data, dict) else None
    if usage is None:
        return body
    cleaned: dict[str, int] = {}
    if isinstance(usage, dict):
        for name in _USAGE_COUNTS:
            count = usage_count(usage.get(name))
            if count is not None:
                cleaned[name] = count
    if cleaned == usage:
        return body
    data["usage"] = cleaned or None
    return dumps(data)


def _json_dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


def usage_count(value: Any, ceiling: int = MAX_USAGE_COUNT) -> int | None:
    """A token count as an integer in [0, ceiling], or None when `value` is no count at all."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value < 0:
        return None
    return min(int(value), ceiling)


def bounded_session() -> httpx.AsyncClient:
    """The HTTP client LiteLLM builds for OpenAI-compatible calls, with its transports bounded."""
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler, get_ssl_configuration, http2_enabled

    # As litellm.llms.openai.common_utils builds it when no session is set.
    ssl_config = get_ssl_configuration()
    transport = AsyncHTTPHandler.create_async_transport(
        ssl_context=ssl_config if isinstance(ssl_config, ssl.SSLContext) else None,
        ssl_verify=ssl_config if isinstance(ssl_config, bool) else None,
    ) or httpx.AsyncHTTPTransport()
    mounts = AsyncHTTPHandler.create_httpx_proxy_mounts(transport, verify=ssl_config, cert=None) or {}
    return httpx.AsyncClient(
        verify=ssl_config, transport=BoundedTransport(transport),
        mounts={pattern: BoundedTransport(t) if t is not None else None for pattern, t in mounts.items()},
        follow_redirects=True, http2=http2_enabled(),
    )
