"""langchain-cohere's `CohereRerank` with only `base_url` changed (it wraps cohere.ClientV2 -> /v2/rerank)."""

from __future__ import annotations

import pytest

from tests.compat.conftest import API_KEY, DOCS, check_ranking, install_hint, query

langchain_cohere = pytest.importorskip("langchain_cohere", reason=install_hint("langchain-cohere"))
cohere = pytest.importorskip("cohere", reason=install_hint("cohere"))
from langchain_core.documents import Document  # noqa: E402  (installed with langchain-cohere)


def documents() -> list[Document]:
    return [Document(page_content=text, metadata={"source": f"s{i}"}) for i, text in enumerate(DOCS)]


def test_compress_documents_keeps_the_top_three_in_order(base_url: str, paths_hit) -> None:
    reranker = langchain_cohere.CohereRerank(model="rerank-v3.5", cohere_api_key=API_KEY, base_url=base_url)
    out = reranker.compress_documents(documents(), query())
    indices = check_ranking([(int(d.metadata["source"][1:]), d.metadata["relevance_score"]) for d in out],
                            top_n=3)  # CohereRerank's default top_n
    assert [d.page_content for d in out] == [DOCS[i] for i in indices]
    assert paths_hit() == ["/v2/rerank"]


def test_rerank_dicts_with_rank_fields_and_all_results(base_url: str) -> None:
    reranker = langchain_cohere.CohereRerank(model="rerank-v3.5", cohere_api_key=API_KEY, base_url=base_url,
                                             top_n=None)
    docs = [{"title": f"t{i}", "text": text, "ignored": "x"} for i, text in enumerate(DOCS)]
    results = reranker.rerank(docs, query(), rank_fields=["text"], max_tokens_per_doc=256)
    check_ranking([(r["index"], r["relevance_score"]) for r in results])


@pytest.mark.anyio
async def test_async_compress_documents(base_url: str) -> None:
    reranker = langchain_cohere.CohereRerank(model="rerank-v3.5", cohere_api_key=API_KEY, base_url=base_url,
                                             top_n=2)
    out = await reranker.acompress_documents(documents(), query())
    check_ranking([(int(d.metadata["source"][1:]), d.metadata["relevance_score"]) for d in out], top_n=2)


def test_gateway_error_surfaces_as_cohere_bad_request(base_url: str) -> None:
    reranker = langchain_cohere.CohereRerank(model="rerank-v3.5", cohere_api_key=API_KEY, base_url=base_url)
    with pytest.raises(cohere.BadRequestError) as caught:
        reranker.compress_documents([Document(page_content="x")] * 101, query())
    assert caught.value.body["message"] == "too many documents: 101 > 100"
