"""The voyageai SDK (sync and async) with only `base_url` changed."""

from __future__ import annotations

import pytest

from tests.compat.conftest import API_KEY, DOCS, check_ranking, install_hint, query

voyageai = pytest.importorskip("voyageai", reason=install_hint("voyageai"))


def pairs(response) -> list[tuple[int, float]]:  # noqa: ANN001
    return [(r.index, r.relevance_score) for r in response.results]


def test_client_with_v1_base_url(base_url: str, paths_hit) -> None:
    vo = voyageai.Client(api_key=API_KEY, base_url=base_url + "/v1")
    response = vo.rerank(query=query(), documents=DOCS, model="rerank-2", top_k=3)
    check_ranking(pairs(response), top_n=3)
    # The SDK takes the text from its own list and the token count from `usage.total_tokens`.
    assert [r.document for r in response.results] == [DOCS[r.index] for r in response.results]
    assert response.total_tokens > 0
    assert paths_hit() == ["/v1/rerank"]


def test_client_with_bare_base_url_posts_to_rerank(base_url: str, paths_hit) -> None:
    vo = voyageai.Client(api_key=API_KEY, base_url=base_url)
    response = vo.rerank(query=query(), documents=DOCS, model="rerank-2.5", truncation=False)
    check_ranking(pairs(response))
    assert paths_hit() == ["/rerank"]


@pytest.mark.anyio
async def test_async_client(base_url: str, paths_hit) -> None:
    vo = voyageai.AsyncClient(api_key=API_KEY, base_url=base_url + "/v1")
    response = await vo.rerank(query=query(), documents=DOCS, model="rerank-2-lite", top_k=2)
    check_ranking(pairs(response), top_n=2)
    assert paths_hit() == ["/v1/rerank"]


def test_empty_query_is_an_invalid_request_error_with_our_message(base_url: str) -> None:
    vo = voyageai.Client(api_key=API_KEY, base_url=base_url + "/v1")
    with pytest.raises(voyageai.error.InvalidRequestError) as caught:
        vo.rerank(query="", documents=DOCS, model="rerank-2")
    assert caught.value.user_message == "query must be a non-empty string"
    assert caught.value.http_status == 400


@pytest.mark.anyio
async def test_too_many_documents_is_an_invalid_request_error(base_url: str) -> None:
    vo = voyageai.AsyncClient(api_key=API_KEY, base_url=base_url + "/v1")
    with pytest.raises(voyageai.error.InvalidRequestError) as caught:
        await vo.rerank(query=query(), documents=["x"] * 101, model="rerank-2")
    assert caught.value.user_message == "too many documents: 101 > 100"


def test_unknown_model_is_an_api_error_with_our_message(base_url: str) -> None:
    vo = voyageai.Client(api_key=API_KEY, base_url=base_url + "/v1")
    with pytest.raises(voyageai.error.APIError) as caught:
        vo.rerank(query=query(), documents=DOCS, model="gpt-4o")
    assert caught.value.user_message.startswith("model 'gpt-4o' not found")
    assert caught.value.http_status == 404


def test_upstream_failure_is_service_unavailable(base_url: str) -> None:
    vo = voyageai.Client(api_key=API_KEY, base_url=base_url + "/v1")
    with pytest.raises(voyageai.error.ServiceUnavailableError) as caught:
        vo.rerank(query=query(), documents=DOCS, model="fail500")
    assert caught.value.http_status == 502
