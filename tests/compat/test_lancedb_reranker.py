"""gateway.lancedb.GatewayReranker on a real LanceDB table: vector, full-text and hybrid search."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.compat.conftest import TABLE_TEXTS, TABLE_TIERS, install_hint, query

lancedb = pytest.importorskip("lancedb", reason=install_hint("lancedb"))
pa = pytest.importorskip("pyarrow", reason=install_hint("pyarrow (with lancedb)"))
from gateway.lancedb import GatewayReranker, RerankGatewayError  # noqa: E402

Q = "capital of France"
MODEL = "judge"  # the test gateway's default alias, named explicitly here


def rows(table: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "vector"} for row in table.to_pylist()]


def check_reranked(result: list[dict[str, Any]], ids: set[int]) -> list[int]:
    """Every expected row once, better judge tiers first, scores non-increasing in [0, 1]."""
    got = [r["id"] for r in result]
    assert sorted(got) == sorted(ids), got
    scores = [r["_relevance_score"] for r in result]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True), scores
    tier_of = {i: t for t, tier in enumerate(TABLE_TIERS) for i in tier}
    tiers = [tier_of[i] for i in got]
    assert tiers == sorted(tiers), f"rows are not in the judge's order: {got}"
    return got


def reranker(**kwargs: Any) -> GatewayReranker:
    return GatewayReranker(**{"model_name": MODEL, **kwargs})


# -- vector search ----------------------------------------------------------------------------------


def test_vector_search_relevance_keeps_only_the_relevance_score(lancedb_table, base_url: str,
                                                                paths_hit) -> None:
    table = lancedb_table.search(Q).rerank(reranker=reranker(base_url=base_url)).limit(8).to_arrow()
    assert table.schema.field("_relevance_score").type == pa.float32()
    result = rows(table)
    assert set(result[0]) == {"id", "text", "_relevance_score"}
    check_reranked(result, set(range(len(TABLE_TEXTS))))
    assert paths_hit() == ["/v1/rerank"]


def test_vector_search_all_keeps_each_rows_own_distance(lancedb_table, base_url: str) -> None:
    plain = {r["id"]: r["_distance"] for r in rows(lancedb_table.search(Q).limit(8).to_arrow())}
    table = lancedb_table.search(Q).rerank(reranker=reranker(base_url=base_url, return_score="all")) \
        .limit(8).to_arrow()
    result = rows(table)
    assert {"_distance", "_relevance_score"} <= set(result[0])
    check_reranked(result, set(plain))
    assert {r["id"]: r["_distance"] for r in result} == plain


def test_vector_search_reranks_only_the_rows_the_search_returned(lancedb_table, base_url: str) -> None:
    searched = {r["id"] for r in rows(lancedb_table.search(Q).limit(4).to_arrow())}
    result = rows(lancedb_table.search(Q).rerank(reranker=reranker(base_url=base_url)).limit(4).to_arrow())
    assert {r["id"] for r in result} == searched and len(result) == 4


# -- full-text search ---------------------------------------------------------------------------------


def test_fts_relevance_keeps_only_the_relevance_score(lancedb_table, base_url: str) -> None:
    table = lancedb_table.search(Q, query_type="fts").rerank(reranker=reranker(base_url=base_url)) \
        .limit(8).to_arrow()
    result = rows(table)
    assert set(result[0]) == {"id", "text", "_relevance_score"}
    check_reranked(result, {1, 2, 3, 4, 5})  # the rows containing "capital" or "France"


def test_fts_all_keeps_each_rows_own_score(lancedb_table, base_url: str) -> None:
    fts = lancedb_table.search(Q, query_type="fts").limit(8).to_arrow()
    plain = {r["id"]: r["_score"] for r in rows(fts)}
    table = lancedb_table.search(Q, query_type="fts") \
        .rerank(reranker=reranker(base_url=base_url, return_score="all")).limit(8).to_arrow()
    result = rows(table)
    assert {"_score", "_relevance_score"} <= set(result[0])
    check_reranked(result, set(plain))
    assert {r["id"]: r["_score"] for r in result} == plain


# -- hybrid search ---------------------------------------------------------------------------------


def test_hybrid_merges_without_duplicates_and_reranks_once(lancedb_table, base_url: str, paths_hit) -> None:
    table = lancedb_table.search(Q, query_type="hybrid").rerank(reranker=reranker(base_url=base_url)) \
        .limit(10).to_arrow()
    result = rows(table)
    assert set(result[0]) == {"id", "text", "_relevance_score"}
    check_reranked(result, set(range(len(TABLE_TEXTS))))  # 8 vector hits + 5 FTS hits, merged by row id
    assert paths_hit() == ["/v1/rerank"]


def test_hybrid_with_all_scores_keeps_both_searches_scores_like_lancedbs_jina_reranker(
        lancedb_table, base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import lancedb.rerankers.jinaai as jinaai

    vector = {r["id"]: r["_distance"] for r in rows(lancedb_table.search(Q).limit(10).to_arrow())}
    fts = {r["id"]: r["_score"] for r in rows(lancedb_table.search(Q, query_type="fts").limit(10).to_arrow())}
    result = rows(lancedb_table.search(Q, query_type="hybrid")
                  .rerank(reranker=reranker(base_url=base_url, return_score="all")).limit(10).to_arrow())
    assert {"id", "text", "_distance", "_score", "_relevance_score"} <= set(result[0])
    check_reranked(result, set(vector) | set(fts))
    assert {r["id"]: r["_distance"] for r in result} == {i: vector.get(i) for i in vector.keys() | fts.keys()}
    assert {r["id"]: r["_score"] for r in result} == {i: fts.get(i) for i in vector.keys() | fts.keys()}
    # LanceDB's own API reranker, through the same gateway, returns the same columns and values.
    monkeypatch.setattr(jinaai, "API_URL", base_url + "/v1/rerank")
    theirs = rows(lancedb_table.search(Q, query_type="hybrid")
                  .rerank(reranker=jinaai.JinaReranker(api_key="k", return_score="all")).limit(10).to_arrow())
    assert set(theirs[0]) == set(result[0])
    by_id = {r["id"]: r for r in theirs}
    assert all(by_id[r["id"]]["_distance"] == r["_distance"] and by_id[r["id"]]["_score"] == r["_score"]
               for r in result)


def test_no_arguments_but_base_url_rank_with_the_gateways_default_model(lancedb_table, base_url: str) -> None:
    plain = GatewayReranker(base_url=base_url)  # sends no model: the test gateway's default is "judge"
    result = rows(lancedb_table.search(Q, query_type="hybrid").rerank(reranker=plain).limit(10).to_arrow())
    check_reranked(result, set(range(len(TABLE_TEXTS))))
    assert str(plain) == f"GatewayReranker(model_name=the gateway's default, base_url={base_url})"


def test_hybrid_with_top_n_and_pointwise_mode(lancedb_table, base_url: str) -> None:
    table = lancedb_table.search(Q, query_type="hybrid") \
        .rerank(reranker=reranker(base_url=base_url, top_n=3, mode="pointwise")).limit(10).to_arrow()
    result = rows(table)
    assert len(result) == 3 and {r["id"] for r in result} == TABLE_TIERS[0]


def test_seed_style_create_fts_index_still_works(tmp_path, base_url: str) -> None:
    from lancedb.pydantic import LanceModel, Vector

    from tests.compat.conftest import embedding_function

    embedder = embedding_function()

    class Doc(LanceModel):
        text: str = embedder.SourceField()
        vector: Vector(embedder.ndims()) = embedder.VectorField()  # type: ignore[valid-type]

    table = lancedb.connect(tmp_path / "seed").create_table("docs", schema=Doc)
    table.add([{"text": text} for text in TABLE_TEXTS])
    with pytest.deprecated_call():  # lancedb 0.25+ prefers create_index("text", config=FTS())
        table.create_fts_index("text")
    result = table.search(Q, query_type="hybrid").rerank(reranker=reranker(base_url=base_url)).to_list()
    assert result[0]["text"] in {TABLE_TEXTS[i] for i in TABLE_TIERS[0]}


# -- rows and scores are matched by index --------------------------------------------------------------


def test_duplicate_texts_are_matched_by_index_not_by_text(base_url: str, client: httpx.Client) -> None:
    texts = ["France borders Spain.", "Paris is the capital of France.", "Bananas are yellow fruit.",
             "Paris is the capital of France.", "France borders Spain.", "Paris is the capital of France."]
    q = query(Q)
    vector_results = pa.table({"row": list(range(len(texts))), "text": texts,
                               "_distance": pa.array([0.1 * i for i in range(len(texts))], pa.float32())})
    out = reranker(base_url=base_url).rerank_vector(q, vector_results).to_pylist()
    expected = client.post("/v1/rerank", json={"model": MODEL, "query": q, "documents": texts}).json()
    assert [(r["row"], pytest.approx(r["_relevance_score"])) for r in out] == \
        [(e["index"], pytest.approx(e["relevance_score"])) for e in expected["results"]]
    assert len({r["row"] for r in out}) == len(texts)


def test_blank_and_null_texts_are_not_sent_and_come_last(base_url: str) -> None:
    results = pa.table({"row": [0, 1, 2, 3], "text": ["   ", "Paris is the capital of France.", None,
                                                      "Bananas are yellow fruit."],
                        "_distance": pa.array([0.0, 0.1, 0.2, 0.3], pa.float32())})
    out = reranker(base_url=base_url).rerank_vector(query(Q), results).to_pylist()
    assert [r["row"] for r in out] == [1, 3, 0, 2]
    assert [r["_relevance_score"] for r in out][2:] == [0.0, 0.0]


def test_empty_results_make_no_call(base_url: str, paths_hit) -> None:
    empty = pa.table({"text": pa.array([], pa.string()), "_distance": pa.array([], pa.float32())})
    out = reranker(base_url=base_url).rerank_vector(Q, empty)
    assert out.num_rows == 0 and out.column_names == ["text", "_relevance_score"]
    assert paths_hit() == []


# -- errors ------------------------------------------------------------------------------------------


def test_gateway_errors_carry_the_gateways_message(lancedb_table, base_url: str) -> None:
    message = "answered 404 model_not_found: model 'gpt-4o' not found"
    with pytest.raises(RerankGatewayError, match=message) as caught:
        lancedb_table.search(Q).rerank(reranker=GatewayReranker(model_name="gpt-4o", base_url=base_url)) \
            .to_arrow()
    assert caught.value.status_code == 404 and caught.value.code == "model_not_found"

    many = pa.table({"text": [f"document {i}" for i in range(101)], "_distance": [0.0] * 101})
    with pytest.raises(RerankGatewayError, match="too many documents: 101 > 100") as caught:
        reranker(base_url=base_url).rerank_vector(Q, many)
    assert caught.value.status_code == 400


def test_an_unreachable_gateway_is_a_clear_error() -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RerankGatewayError, match=f"cannot reach the rerank gateway at {url}/v1/rerank"):
        reranker(base_url=url).rerank_vector(Q, pa.table({"text": ["a"], "_distance": [0.0]}))


def test_a_missing_column_is_a_clear_error(base_url: str) -> None:
    with pytest.raises(ValueError, match="column 'body' is not in the results"):
        reranker(base_url=base_url, column="body").rerank_vector(Q, pa.table({"text": ["a"]}))


@pytest.mark.parametrize("kwargs", [{"mode": "pairwise"}, {"top_n": 0}, {"return_score": "scores"}])
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GatewayReranker(**kwargs)


# -- what goes over the wire ----------------------------------------------------------------------------


def capture(gateway_reranker: GatewayReranker, answer: dict[str, Any] | None = None) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer or {"results": [{"index": 0, "relevance_score": 0.5}]})

    gateway_reranker.__dict__["_client"] = httpx.Client(transport=httpx.MockTransport(handle))
    return seen


def test_request_body_headers_and_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_GATEWAY_URL", "http://gateway.test:9000/")
    monkeypatch.setenv("RERANK_GATEWAY_API_KEY", "env-key")
    r = GatewayReranker(mode="listwise", top_n=1)
    seen = capture(r)
    r.rerank_fts("q", pa.table({"text": ["a"], "_score": [1.0]}))
    request = seen[0]
    assert str(request.url) == "http://gateway.test:9000/v1/rerank"
    assert request.headers["authorization"] == "Bearer env-key"
    assert json.loads(request.content) == {"query": "q", "documents": ["a"], "return_documents": False,
                                           "top_n": 1, "mode": "listwise"}


def test_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANK_GATEWAY_URL", raising=False)
    monkeypatch.delenv("RERANK_GATEWAY_API_KEY", raising=False)
    r = GatewayReranker(api_key=None)
    seen = capture(r)
    r.rerank_vector("q", pa.table({"text": ["a"], "_distance": [0.0]}))
    assert "authorization" not in seen[0].headers
    assert str(seen[0].url) == "http://127.0.0.1:8080/v1/rerank"
    # No model_name: no model is sent, and the gateway's default model answers.
    assert json.loads(seen[0].content) == {"query": "q", "documents": ["a"], "return_documents": False}
    r.close()


@pytest.mark.parametrize("answer", [{"data": []}, {"results": [{"index": 3, "relevance_score": 1.0}]},
                                    {"results": [{"index": 0, "relevance_score": 1.0},
                                                 {"index": 0, "relevance_score": 0.5}]}])
def test_an_unusable_answer_is_a_clear_error(answer: dict[str, Any]) -> None:
    r = GatewayReranker(base_url="http://gateway.test", api_key="k")
    capture(r, answer)
    with pytest.raises(RerankGatewayError, match="rerank gateway at http://gateway.test/v1/rerank answered"):
        r.rerank_vector("q", pa.table({"text": ["a", "b"], "_distance": [0.0, 0.1]}))
