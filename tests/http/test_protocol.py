from __future__ import annotations

from typing import Any

import pytest

from gateway.config import LimitsSettings
from gateway.errors import InvalidRequest
from gateway.http.protocol import parse_rerank_request


def parse(body: Any, max_documents: int = 100):  # noqa: ANN201
    return parse_rerank_request(body, LimitsSettings(max_documents=max_documents, max_document_chars=50,
                                                     max_query_chars=20))


def test_strings_and_objects_become_documents_and_extra_fields_are_kept() -> None:
    request = parse({"query": "q", "documents": ["a", {"text": "b", "id": 7}], "unknown": 1})
    assert request.documents == [{"text": "a"}, {"text": "b", "id": 7}]
    assert request.texts == ["a", "b"]
    assert (request.top_n, request.return_documents, request.mode, request.model) == (None, None, None, None)


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
        ({"query": "q", "documents": [{"a": "x"}], "rank_fields": []}, "invalid_rank_fields", "rank_fields"),
        ({"query": "q", "documents": [{"a": "x"}], "rank_fields": ["b"]}, "invalid_documents", "documents"),
        ({"query": "q", "documents": ["a"], "max_tokens_per_doc": 0}, "invalid_request", "max_tokens_per_doc"),
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


def test_every_optional_field_accepts_null() -> None:
    nulls = dict.fromkeys(["model", "top_n", "top_k", "return_documents", "mode", "rank_fields", "instruction",
                           "max_tokens_per_doc", "truncate_prompt_tokens", "return_text", "texts"])
    request = parse({"query": "q", "documents": ["a"], **nulls})
    assert request.texts == ["a"] and request.top_n is None


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        pytest.param({"top_k": 2}, "top_n", 2, id="voyage-top_k"),
        pytest.param({"top_n": 1, "top_k": 2}, "top_n", 1, id="top_n-wins"),
        pytest.param({"return_text": True}, "return_documents", True, id="tei-return_text"),
    ],
)
def test_aliases_fill_the_canonical_field(body: dict, field: str, value: Any) -> None:
    assert getattr(parse({"query": "q", "documents": ["a", "b"], **body}), field) == value


def test_tei_texts_become_documents() -> None:
    assert parse({"query": "q", "texts": ["a", "b"]}).texts == ["a", "b"]


def test_rank_fields_build_the_ranking_text_and_keep_the_document() -> None:
    docs = [{"title": "Paris", "body": "capital", "id": 1}, {"title": "Rome", "text": "t"}]
    request = parse({"query": "q", "documents": docs, "rank_fields": ["title", "body"]})
    assert request.texts == ["title: Paris\nbody: capital", "title: Rome"]
    assert request.documents[0] == {**docs[0], "text": "title: Paris\nbody: capital"}  # text synthesized
    assert request.documents[1] == docs[1]  # its own text kept


def test_token_budget_takes_the_smallest_positive_limit() -> None:
    assert parse({"query": "q", "documents": ["a"]}).token_budget() is None
    assert parse({"query": "q", "documents": ["a"], "max_tokens_per_doc": 50}).token_budget() == 50
    body = {"query": "q", "documents": ["a"], "max_tokens_per_doc": 50, "truncate_prompt_tokens": 20}
    assert parse(body).token_budget() == 20
    assert parse({"query": "q", "documents": ["a"], "truncate_prompt_tokens": -1}).token_budget() is None


def test_length_limits() -> None:
    with pytest.raises(InvalidRequest) as error:
        parse({"query": "q" * 21, "documents": ["a"]})
    assert error.value.code == "query_too_long"
    with pytest.raises(InvalidRequest, match=r"documents\[1\] is longer than 50") as error:
        parse({"query": "q", "documents": ["a", "b" * 51]})
    assert error.value.code == "document_too_long"


def test_the_wire_meta_describes_every_field_the_service_reports() -> None:
    """`RerankMeta` (the documented JSON) and the service's `AnswerMeta` list the same fields."""
    from dataclasses import fields

    from gateway.http.protocol import RerankMeta
    from gateway.service import AnswerMeta

    cohere = {"api_version", "billed_units", "tokens"}
    assert list(RerankMeta.model_fields)[len(cohere):] == [f.name for f in fields(AnswerMeta)]
