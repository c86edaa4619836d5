"""The cohere SDK (`Client`, `ClientV2`, async twins) with only `base_url` or `CO_API_URL` changed."""

from __future__ import annotations

import pytest

from tests.compat.conftest import API_KEY, DOCS, check_ranking, install_hint, query, run_python

cohere = pytest.importorskip("cohere", reason=install_hint("cohere"))


def test_client_v1_posts_to_v1_rerank(base_url: str, paths_hit) -> None:
    with cohere.Client(api_key=API_KEY, base_url=base_url, client_name="compat-test") as co:
        response = co.rerank(model="rerank-v3.5", query=query(), documents=DOCS, top_n=3)
    check_ranking([(r.index, r.relevance_score) for r in response.results], top_n=3)
    assert response.meta.billed_units.search_units == 1
    assert paths_hit() == ["/v1/rerank"]


def test_client_v1_object_documents_with_rank_fields_come_back_whole(base_url: str) -> None:
    docs = [{"title": f"doc {i}", "text": text, "id": f"d{i}"} for i, text in enumerate(DOCS)]
    with cohere.Client(api_key=API_KEY, base_url=base_url) as co:
        response = co.rerank(model="rerank-english-v3.0", query=query(), documents=docs,
                             rank_fields=["title", "text"], return_documents=True, top_n=2)
    check_ranking([(r.index, r.relevance_score) for r in response.results], top_n=2)
    for result in response.results:
        assert result.document.text == DOCS[result.index]
        assert result.document.id == f"d{result.index}"  # other fields come back untouched


def test_client_v2_posts_to_v2_rerank(base_url: str, paths_hit) -> None:
    with cohere.ClientV2(api_key=API_KEY, base_url=base_url) as co:
        response = co.rerank(model="rerank-v3.5", query=query(), documents=DOCS, top_n=3,
                             max_tokens_per_doc=512, priority=0)
    check_ranking([(r.index, r.relevance_score) for r in response.results], top_n=3)
    assert paths_hit() == ["/v2/rerank"]


def test_client_v2_without_top_n_returns_every_document(base_url: str) -> None:
    with cohere.ClientV2(api_key=API_KEY, base_url=base_url) as co:
        response = co.rerank(model="rerank-v3.5", query=query(), documents=DOCS)
    check_ranking([(r.index, r.relevance_score) for r in response.results])


def test_base_url_with_v1_still_works(base_url: str, paths_hit) -> None:
    # fix_base_url strips /v1 only for cohere.com hosts, so this posts to /v1/v1/rerank.
    with cohere.Client(api_key=API_KEY, base_url=base_url + "/v1") as co:
        response = co.rerank(model="rerank-v3.5", query=query(), documents=DOCS, top_n=2)
    check_ranking([(r.index, r.relevance_score) for r in response.results], top_n=2)
    assert paths_hit() == ["/v1/v1/rerank"]


@pytest.mark.anyio
async def test_async_client_v1(base_url: str, paths_hit) -> None:
    async with cohere.AsyncClient(api_key=API_KEY, base_url=base_url) as co:
        response = await co.rerank(model="rerank-v3.5", query=query(), documents=DOCS, top_n=2)
    check_ranking([(r.index, r.relevance_score) for r in response.results], top_n=2)
    assert paths_hit() == ["/v1/rerank"]


@pytest.mark.anyio
async def test_async_client_v2(base_url: str, paths_hit) -> None:
    async with cohere.AsyncClientV2(api_key=API_KEY, base_url=base_url) as co:
        response = await co.rerank(model="rerank-v3.5", query=query(), documents=DOCS, top_n=2)
    check_ranking([(r.index, r.relevance_score) for r in response.results], top_n=2)
    assert paths_hit() == ["/v2/rerank"]


def test_co_api_url_points_every_client_at_the_gateway(base_url: str, subprocess_env: dict[str, str],
                                                       paths_hit) -> None:
    # CO_API_URL is read as a default argument when cohere's client module loads, so it is
    # set in a fresh interpreter before `import cohere`; no base_url is passed anywhere.
    out = run_python(
        f"""
        import asyncio, json
        import cohere

        docs = {DOCS!r}
        v1 = cohere.Client(api_key="{API_KEY}").rerank(model="rerank-v3.5", query={query()!r},
                                                      documents=docs, top_n=3)
        v2 = cohere.ClientV2(api_key="{API_KEY}").rerank(model="rerank-v3.5", query={query()!r},
                                                         documents=docs, top_n=2)

        async def main():
            async with cohere.AsyncClientV2(api_key="{API_KEY}") as co:
                return await co.rerank(model="rerank-v3.5", query={query()!r}, documents=docs)

        a2 = asyncio.run(main())
        print(json.dumps([[(r.index, r.relevance_score) for r in x.results] for x in (v1, v2, a2)]))
        """,
        {**subprocess_env, "CO_API_URL": base_url},
    )
    v1, v2, a2 = out
    check_ranking(v1, top_n=3)
    check_ranking(v2, top_n=2)
    check_ranking(a2)
    assert paths_hit() == ["/v1/rerank", "/v2/rerank", "/v2/rerank"]


def test_empty_query_is_a_typed_bad_request_with_our_message(base_url: str) -> None:
    with cohere.ClientV2(api_key=API_KEY, base_url=base_url) as co, \
            pytest.raises(cohere.BadRequestError) as caught:
        co.rerank(model="rerank-v3.5", query="   ", documents=DOCS)
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == "query must be a non-empty string"
    assert caught.value.body["error"]["code"] == "empty_query"


def test_too_many_documents_is_a_typed_bad_request(base_url: str) -> None:
    with cohere.Client(api_key=API_KEY, base_url=base_url) as co, \
            pytest.raises(cohere.BadRequestError) as caught:
        co.rerank(model="rerank-v3.5", query=query(), documents=["x"] * 101)
    assert caught.value.body["message"] == "too many documents: 101 > 100"


def test_unknown_model_is_a_typed_not_found(base_url: str) -> None:
    with cohere.ClientV2(api_key=API_KEY, base_url=base_url) as co, \
            pytest.raises(cohere.NotFoundError) as caught:
        co.rerank(model="gpt-4o", query=query(), documents=DOCS)
    assert caught.value.body["error"]["code"] == "model_not_found"


@pytest.mark.anyio
async def test_async_error_is_typed_too(base_url: str) -> None:
    async with cohere.AsyncClientV2(api_key=API_KEY, base_url=base_url) as co:
        with pytest.raises(cohere.BadRequestError) as caught:
            await co.rerank(model="rerank-v3.5", query="", documents=DOCS)
    assert "query" in caught.value.body["message"]


def test_upstream_failure_is_an_api_error_with_status_502(base_url: str) -> None:
    from cohere.core.api_error import ApiError

    with cohere.ClientV2(api_key=API_KEY, base_url=base_url) as co, pytest.raises(ApiError) as caught:
        co.rerank(model="fail500", query=query(), documents=DOCS, request_options={"max_retries": 0})
    assert caught.value.status_code == 502 and caught.value.body["error"]["code"] == "upstream_error"


def test_upstream_timeout_is_a_typed_gateway_timeout(base_url: str) -> None:
    with cohere.ClientV2(api_key=API_KEY, base_url=base_url) as co, \
            pytest.raises(cohere.GatewayTimeoutError) as caught:
        co.rerank(model="slow", query=query(), documents=DOCS, request_options={"max_retries": 0})
    assert caught.value.body["error"]["code"] == "upstream_timeout"
