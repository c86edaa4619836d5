"""Request bodies in and responses out through orjson: what counts as JSON, and what comes back."""

from __future__ import annotations

import json

import pytest

from gateway.errors import InvalidRequest
from gateway.http.jsonio import Fragment, JSONResponse, decode_body, encode


def test_a_body_decodes_to_python_values_and_a_utf8_bom_is_accepted() -> None:
    body = {"query": "café", "documents": ["😀", {"text": "x", "n": 1.5}]}
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert decode_body(raw) == body
    assert decode_body(b"\xef\xbb\xbf" + raw) == body
    assert decode_body(json.dumps(body).encode()) == body  # \\u escapes


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"  \n", id="blank"),
        pytest.param(b'{"query": "q"', id="truncated"),
        pytest.param(b'{"query": NaN}', id="nan-literal"),
        pytest.param(b'{"query": 1e400}', id="infinite-number"),
        pytest.param(b'{"query": "\\ud800"}', id="lone-surrogate"),
        pytest.param(b'{"query": "\xff"}', id="invalid-utf8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="too-deep"),
        pytest.param('{"query": "q"}'.encode("utf-16"), id="utf-16"),
    ],
)
def test_anything_else_is_an_invalid_json_request(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_body(raw)
    assert caught.value.code == "invalid_json" and caught.value.status_code == 400


def test_a_fragment_is_written_as_is_under_every_key_that_holds_it() -> None:
    shared = Fragment(encode([{"index": 0, "relevance_score": 1.0}]))
    assert json.loads(encode({"results": shared, "data": shared})) == {
        "results": [{"index": 0, "relevance_score": 1.0}], "data": [{"index": 0, "relevance_score": 1.0}]}


def test_responses_are_compact_utf8_json() -> None:
    response = JSONResponse({"text": "café", "score": 0.5})
    assert response.body == '{"text":"café","score":0.5}'.encode()
    assert response.headers["content-type"] == "application/json"
