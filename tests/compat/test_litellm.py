"""`litellm.rerank` / `litellm.arerank` through each rerank provider, with only `api_base` changed."""

from __future__ import annotations

import pytest

from tests.compat.conftest import API_KEY, DOCS, check_ranking, install_hint, query

litellm = pytest.importorskip("litellm", reason=install_hint("litellm"))

# (model, api_base suffix, the path the gateway serves it on)
PROVIDERS = [
    pytest.param("cohere/rerank-v3.5", "", "/v2/rerank", id="cohere-v2"),
    pytest.param("cohere/rerank-v3.5", "/v1/rerank", "/v1/rerank", id="cohere-full-url"),
    pytest.param("cohere/rerank-v3.5", "/v1", "/v1/v2/rerank", id="cohere-base-with-v1"),
    pytest.param("jina_ai/jina-reranker-v2-base-multilingual", "", "/v1/rerank", id="jina_ai"),
    pytest.param("voyage/rerank-2", "/v1", "/v1/rerank", id="voyage"),
    pytest.param("voyage/rerank-2", "", "/v1/rerank", id="voyage-bare"),
    pytest.param("hosted_vllm/BAAI/bge-reranker-v2-m3", "", "/rerank", id="hosted_vllm"),
    pytest.param("hosted_vllm/BAAI/bge-reranker-v2-m3", "/v1", "/v1/rerank", id="hosted_vllm-v1"),
    pytest.param("infinity/BAAI/bge-reranker-v2-m3", "/infinity", "/infinity/rerank", id="infinity"),
    pytest.param("huggingface/BAAI/bge-reranker-v2-m3", "", "/rerank", id="huggingface-tei"),
    pytest.param("litellm_proxy/rerank-v3.5", "", "/v1/rerank", id="litellm_proxy"),
]


def pairs(response) -> list[tuple[int, float]]:  # noqa: ANN001
    return [(r["index"], r["relevance_score"]) for r in response.results]


@pytest.mark.parametrize(("model", "suffix", "path"), PROVIDERS)
def test_rerank(base_url: str, paths_hit, model: str, suffix: str, path: str) -> None:
    response = litellm.rerank(model=model, query=query(), documents=DOCS, top_n=3,
                              api_base=base_url + suffix, api_key=API_KEY)
    check_ranking(pairs(response), top_n=3)
    assert paths_hit() == [path]


@pytest.mark.parametrize(("model", "suffix", "path"), PROVIDERS)
@pytest.mark.anyio
async def test_arerank(base_url: str, paths_hit, model: str, suffix: str, path: str) -> None:
    response = await litellm.arerank(model=model, query=query(), documents=DOCS, top_n=2,
                                     api_base=base_url + suffix, api_key=API_KEY)
    check_ranking(pairs(response), top_n=2)
    assert paths_hit() == [path]


def test_cohere_v1_client_with_max_chunks_per_doc(base_url: str, paths_hit) -> None:
    response = litellm.rerank(model="cohere/rerank-english-v3.0", query=query(), documents=DOCS, top_n=2,
                              max_chunks_per_doc=5, api_base=base_url, api_key=API_KEY)
    check_ranking(pairs(response), top_n=2)
    assert paths_hit() == ["/v1/rerank"]


@pytest.mark.parametrize("model", ["cohere/rerank-v3.5", "hosted_vllm/BAAI/bge-reranker-v2-m3",
                                   "jina_ai/jina-reranker-m0"])
def test_documents_come_back_as_objects_with_text(base_url: str, model: str) -> None:
    response = litellm.rerank(model=model, query=query(), documents=DOCS, return_documents=True,
                              api_base=base_url, api_key=API_KEY)
    check_ranking(pairs(response))
    for result in response.results:
        assert result["document"]["text"] == DOCS[result["index"]]


def test_without_top_n_every_document_comes_back(base_url: str) -> None:
    response = litellm.rerank(model="cohere/rerank-v3.5", query=query(), documents=DOCS,
                              api_base=base_url, api_key=API_KEY)
    check_ranking(pairs(response))
    assert response.meta["billed_units"]["search_units"] == 1


@pytest.mark.parametrize(("model", "suffix", "path"), PROVIDERS)
def test_empty_query_is_a_bad_request_with_our_message(base_url: str, model: str, suffix: str,
                                                      path: str) -> None:
    with pytest.raises(litellm.BadRequestError) as caught:
        litellm.rerank(model=model, query=" ", documents=DOCS, api_base=base_url + suffix, api_key=API_KEY)
    assert "query must be a non-empty string" in str(caught.value)
    assert caught.value.status_code == 400


@pytest.mark.anyio
async def test_too_many_documents_is_a_bad_request(base_url: str) -> None:
    with pytest.raises(litellm.BadRequestError) as caught:
        await litellm.arerank(model="cohere/rerank-v3.5", query=query(), documents=["x"] * 101,
                              api_base=base_url, api_key=API_KEY)
    assert "too many documents: 101 > 100" in str(caught.value)


def call(base_url: str, model: str) -> None:
    litellm.rerank(model=model, query=query(), documents=DOCS, api_base=base_url, api_key=API_KEY)


def test_unknown_model_is_not_found(base_url: str) -> None:
    with pytest.raises(litellm.NotFoundError, match="model 'gpt-4o' not found"):
        call(base_url, "cohere/gpt-4o")


def test_upstream_failure_and_timeout_are_typed(base_url: str) -> None:
    with pytest.raises(litellm.BadGatewayError, match="upstream_error"):
        call(base_url, "cohere/fail500")
    with pytest.raises(litellm.Timeout, match="upstream_timeout"):
        call(base_url, "cohere/slow")
