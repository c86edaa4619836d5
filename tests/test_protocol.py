from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.protocol import parse_rerank_request


def parse(body: Any, max_documents: int = 100):  # noqa: ANN201
    return parse_rerank_request(body, max_documents=max_documents)


def test_strings_and_objects_become_documents_and_extra_fields_are_kept() -> None:
    request = parse({"query": "q", "documents": ["a", {"text": "b", "id": 7}], "unknown": 1})
    assert request.documents == [{"text": "a"}, {"text": "b", "id": 7}]
    assert request.texts == ["a", "b"]
    assert (request.top_n, request.return_documents, request.mode, request.model) == (None, True, None, None)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"documents": ["a"]}, "empty_query", "query"),
        ({"query": "  ", "documents": ["a"]}, "empty_query", "query"),
        ({"query": 5, "documents": ["a"]}, "invalid_query", "query"),
        ({"query": "q"}, "invalid_documents", "documents"),
        ({"query": "q", "documents": []}, "invalid_documents", "documents"),
        ({"query": "q", "documents": "a"}, "invalid_documents", "documents"),
        ({"query": "q", "documents": [1]}, "invalid_documents", "documents"),
        ({"query": "q", "documents": [{"title": "no text"}]}, "invalid_documents", "documents"),
        ({"query": "q", "documents": [{"text": 3}]}, "invalid_documents", "documents"),
        ({"query": "q", "documents": ["a", ""]}, "invalid_documents", "documents"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, "invalid_top_n", "top_n"),
        ({"query": "q", "documents": ["a"], "top_n": -1}, "invalid_top_n", "top_n"),
        ({"query": "q", "documents": ["a"], "top_n": "3"}, "invalid_top_n", "top_n"),
        ({"query": "q", "documents": ["a"], "top_n": 2.5}, "invalid_top_n", "top_n"),
        ({"query": "q", "documents": ["a"], "top_n": True}, "invalid_top_n", "top_n"),
        ({"query": "q", "documents": ["a"], "mode": "pairwise"}, "invalid_mode", "mode"),
        ({"query": "q", "documents": ["a"], "return_documents": "yes"}, "invalid_return_documents",
         "return_documents"),
        ({"query": "q", "documents": ["a"], "model": 3}, "invalid_model", "model"),
        ([1, 2], "invalid_request", None),
    ],
)
def test_bad_requests_name_their_code_and_field(body: Any, code: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as error:
        parse(body)
    assert (error.value.code, error.value.param) == (code, param)
    assert error.value.status_code == 400


def test_document_errors_say_which_document() -> None:
    with pytest.raises(InvalidRequest, match=r"documents\[1\].text is empty"):
        parse({"query": "q", "documents": ["a", " "]})


def test_document_limit() -> None:
    parse({"query": "q", "documents": ["a"] * 3}, max_documents=3)
    with pytest.raises(InvalidRequest, match="too many documents: 4 > 3") as error:
        parse({"query": "q", "documents": ["a"] * 4}, max_documents=3)
    assert error.value.code == "too_many_documents"


def test_top_n_larger_than_the_documents_is_accepted() -> None:
    assert parse({"query": "q", "documents": ["a"], "top_n": 50}).top_n == 50
