"""Request bodies: read within a size and a time limit, decoded to JSON that holds only real text.

The body is read before a request takes one of the `max_concurrent_requests`
slots, so a client that is slow to send costs a connection, never a slot, and
only until `server.body_read_timeout_seconds`.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request

from gateway.errors import InvalidRequest, PayloadTooLarge, RequestTimeout

# A JSON escape of a UTF-16 surrogate: the only way a lone one gets into a decoded str (UTF-8
# bytes that encode one are already a decode error). Paired surrogates decode to one character.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


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


def decode_json(raw: bytes) -> Any:
    """The decoded body; every failure, a lone surrogate included, is a 400 `invalid_json`."""
    if not raw.strip():
        raise InvalidRequest("request body is empty; expected a JSON object", code="invalid_json")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    reject_lone_surrogates(raw, data)
    return data


def reject_lone_surrogates(raw: bytes, data: Any) -> None:
    """Raise a 400 if any string of `data` (keys included) holds a lone UTF-16 surrogate.

    Such a string is valid JSON but not text: it cannot be encoded, hashed into a cache key or
    written into a response. `raw` is the body `data` was decoded from: only a body with a
    surrogate escape in it is walked, so the usual cost is one regex scan.
    """
    if not _SURROGATE_ESCAPE.search(raw):
        return
    field = lone_surrogate_field(data)
    if field is not None:
        raise InvalidRequest(f"{field} holds a lone UTF-16 surrogate escape (\\ud800-\\udfff); "
                             "strings must be valid Unicode text", code="invalid_json", param=field)


def lone_surrogate_field(data: Any) -> str | None:
    """The top-level field (or "body") whose value holds a string with a lone surrogate, or None."""
    roots = data.items() if isinstance(data, dict) else [("body", data)]
    for name, value in roots:
        if isinstance(name, str) and _SURROGATE.search(name):
            return "body"
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if _SURROGATE.search(item):
                    return str(name)
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None
