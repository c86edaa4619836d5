"""JSON in and out of the HTTP edge, through orjson.

For a 100-document rerank body orjson parses about 3x and writes about 20x
faster than the standard library (whose `json.dumps` was a quarter of a cache
hit's CPU). It is also stricter where strictness is right: invalid UTF-8, lone
surrogates and NaN/Infinity literals are invalid JSON, not strings or floats
that fail later. A UTF-8 byte order mark, which the standard library accepted,
is still accepted.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

from gateway.errors import InvalidRequest

_BOM = b"\xef\xbb\xbf"
Fragment = orjson.Fragment  # JSON already serialized, embedded as is (a list sent under two keys)


def decode_body(raw: bytes) -> Any:
    """A request body as Python values; anything that is not one JSON text is an `InvalidRequest`."""
    if not raw.strip():
        raise InvalidRequest("request body is empty; expected a JSON object", code="invalid_json")
    try:
        return orjson.loads(raw[3:] if raw.startswith(_BOM) else raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None


def encode(content: Any) -> bytes:
    return orjson.dumps(content)


class JSONResponse(_StarletteJSONResponse):
    """Starlette's `JSONResponse`, written by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
