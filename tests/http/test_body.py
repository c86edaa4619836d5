"""Request bodies decode to real text: a lone UTF-16 surrogate is a 400, wherever it hides."""

from __future__ import annotations

import json

import pytest

from gateway.errors import InvalidRequest
from gateway.http.body import decode_json, lone_surrogate_field


@pytest.mark.parametrize(("raw", "field"), [
    (b'{"query": "\\udfff"}', "query"),
    (b'{"query": "ok", "documents": [{"text": "a", "meta": {"x": ["\\ud800"]}}]}', "documents"),
    (b'{"query": "ok", "documents": [{"\\udc00": 1}]}', "documents"),
    (b'{"\\ud800": 1}', "body"),
    (b'["\\udbff"]', "body"),
    (b'{"model": "rerank-\\uDFFF"}', "model"),
])
def test_a_lone_surrogate_is_refused_naming_its_field(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        decode_json(raw)
    assert error.value.code == "invalid_json" and error.value.param == field and "surrogate" in error.value.message


@pytest.mark.parametrize("raw", [
    b'{"query": "\\ud83d\\ude00 a pair is one character"}',
    b'{"query": "\\\\udfff is only text that looks like an escape"}',
    '{"query": "caf\u00e9 \U0001f600"}'.encode(),
])
def test_valid_text_passes(raw: bytes) -> None:
    assert isinstance(decode_json(raw), dict)


def test_the_walk_finds_nothing_in_clean_data() -> None:
    assert lone_surrogate_field(json.loads('{"a": [{"b": "c"}], "d": 1}')) is None
