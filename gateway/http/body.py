"""Request bodies, read within a size and a time limit.

The body is read before a request takes one of the `max_concurrent_requests`
slots, so a client that is slow to send costs a connection, never a slot, and
only until `server.body_read_timeout_seconds`. Decoding it is `jsonio`'s.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from gateway.errors import PayloadTooLarge, RequestTimeout


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body, refusing more than `limit` bytes before reading them all, and more than `timeout` seconds."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout:g}s") from None
    return b"".join(chunks)
