"""Request bodies in and responses out through orjson: what counts as JSON, and what comes back."""

from __future__ import annotations

import json

import pytest

from gateway.errors import InvalidRequest
from gateway.http.jsonio import Fragment, JSONResponse, decode_body, encode, lone_surrogate_field


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


@pytest.mark.parametrize(("raw", "field"), [
    (b'{"query": "\\udfff"}', "query"),
    (b'{"query": "ok", "documents": [{"text": "a", "meta": {"x": ["\\ud800"]}}]}', "documents"),
    (b'{"query": "ok", "documents": [{"\\udc00": 1}]}', "documents"),
    (b'{"\\ud800": 1}', "body"),
    (b'["\\udbff"]', "body"),
    (b'{"model": "rerank-\\uDFFF"}', "model"),
    (b'{"query": "\\ud800\\ud800"}', "query"),  # two high halves are no pair
    (b'{"query": "ok", "instruction": "\xed\xbf\xbf"}', "instruction"),  # a surrogate as UTF-8 bytes
    (b'\xef\xbb\xbf{"query": "\\udfff"}', "query"),
], ids=["query", "nested", "key", "top-key", "array", "upper-hex", "two-highs", "utf8-bytes", "bom"])
def test_a_lone_surrogate_is_refused_naming_its_field(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        decode_body(raw)
    assert error.value.code == "invalid_json" and error.value.param == field
    assert error.value.message.startswith(f"{field} holds a lone UTF-16 surrogate")


@pytest.mark.parametrize("raw", [
    b'{"query": "\\ud83d\\ude00 a pair is one character"}',
    b'{"query": "\\\\udfff is only text that looks like an escape"}',
    '{"query": "caf\u00e9 \U0001f600"}'.encode(),
])
def test_text_that_only_looks_like_a_surrogate_passes(raw: bytes) -> None:
    assert isinstance(decode_body(raw), dict)


@pytest.mark.parametrize("raw", [b'{"timeout": NaN}', b'{"timeout": -Infinity}', b'{"fusion_weight": 1e400}'])
def test_numbers_that_are_not_finite_are_refused_in_words(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as error:
        decode_body(raw)
    assert error.value.code == "invalid_json" and "is not a finite number" in error.value.message


def test_the_walk_finds_nothing_in_clean_data() -> None:
    assert lone_surrogate_field(json.loads('{"a": [{"b": "c"}], "d": 1}')) is None


def test_a_fragment_is_written_as_is_under_every_key_that_holds_it() -> None:
    shared = Fragment(encode([{"index": 0, "relevance_score": 1.0}]))
    assert json.loads(encode({"results": shared, "data": shared})) == {
        "results": [{"index": 0, "relevance_score": 1.0}], "data": [{"index": 0, "relevance_score": 1.0}]}


def test_responses_are_compact_utf8_json() -> None:
    response = JSONResponse({"text": "café", "score": 0.5})
    assert response.body == '{"text":"café","score":0.5}'.encode()
    assert response.headers["content-type"] == "application/json"


def test_a_lone_surrogate_in_a_response_is_written_as_a_replacement_character() -> None:
    """Client text never holds one, but an upstream's error message may: the answer is still JSON, never a 500."""
    quoted = "upstream said: \ud800 bad \udfff"
    body = encode({"error": {"message": quoted}, "results": Fragment(encode([1])), "emoji": ("\U0001f600",)})
    assert json.loads(body) == {"error": {"message": "upstream said: \ufffd bad \ufffd"}, "results": [1],
                                "emoji": ["\U0001f600"]}
    assert json.loads(JSONResponse({"message": quoted}).body) == {"message": "upstream said: \ufffd bad \ufffd"}
