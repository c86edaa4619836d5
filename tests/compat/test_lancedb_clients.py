"""LanceDB's own API rerankers (Cohere, Jina, VoyageAI) pointed at the gateway, on a real LanceDB table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.compat.conftest import API_KEY, TABLE_TEXTS, TABLE_TIERS, install_hint, query, run_python

lancedb = pytest.importorskip("lancedb", reason=install_hint("lancedb"))
pa = pytest.importorskip("pyarrow", reason=install_hint("pyarrow (with lancedb)"))
from lancedb.rerankers import JinaReranker, VoyageAIReranker  # noqa: E402

from gateway.lancedb import GatewayReranker  # noqa: E402

Q = "capital of France"


def ranked(table: Any) -> list[tuple[int, float]]:
    return [(row["id"], row["_relevance_score"]) for row in table.to_pylist()]


def check(pairs: list[tuple[int, float]], ids: set[int]) -> None:
    assert sorted(i for i, _ in pairs) == sorted(ids)
    scores = [s for _, s in pairs]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert pairs[0][0] in TABLE_TIERS[0]


@pytest.fixture
def jina(base_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import lancedb.rerankers.jinaai as jinaai

    monkeypatch.setattr(jinaai, "API_URL", base_url + "/v1/rerank")  # a module constant, no parameter
    return lambda **kw: JinaReranker(**{"api_key": API_KEY, **kw})


@pytest.fixture
def voyage(base_url: str) -> Any:
    voyageai = pytest.importorskip("voyageai", reason=install_hint("voyageai"))

    def make(**kw: Any) -> VoyageAIReranker:
        reranker = VoyageAIReranker(**{"model_name": "rerank-2", "api_key": API_KEY, **kw})
        # voyageai.Client(api_key=...) is built without a base_url: replace the cached client.
        reranker.__dict__["_client"] = voyageai.Client(api_key=API_KEY, base_url=base_url + "/v1")
        return reranker

    return make


@pytest.mark.parametrize("query_type", ["vector", "fts", "hybrid"])
def test_jina_reranker(lancedb_table, jina, paths_hit, query_type: str) -> None:
    table = lancedb_table.search(Q, query_type=query_type).rerank(reranker=jina()).limit(8).to_arrow()
    check(ranked(table), {1, 2, 3, 4, 5} if query_type == "fts" else set(range(len(TABLE_TEXTS))))
    assert paths_hit() == ["/v1/rerank"]


def test_jina_reranker_top_n_and_all_scores(lancedb_table, jina) -> None:
    result = lancedb_table.search(Q).rerank(reranker=jina(top_n=3, return_score="all")).limit(8).to_list()
    assert len(result) == 3 and {r["id"] for r in result} == TABLE_TIERS[0] and "_distance" in result[0]


def test_jina_reranker_error_is_the_gateways_detail(jina) -> None:
    with pytest.raises(RuntimeError, match="query must be a non-empty string"):
        jina().rerank_vector(" ", pa.table({"text": ["a"], "_distance": [0.0]}))


@pytest.mark.parametrize("query_type", ["vector", "fts", "hybrid"])
def test_voyageai_reranker(lancedb_table, voyage, paths_hit, query_type: str) -> None:
    table = lancedb_table.search(Q, query_type=query_type).rerank(reranker=voyage()).limit(8).to_arrow()
    check(ranked(table), {1, 2, 3, 4, 5} if query_type == "fts" else set(range(len(TABLE_TEXTS))))
    assert paths_hit() == ["/v1/rerank"]


def test_voyageai_reranker_top_n(lancedb_table, voyage) -> None:
    result = lancedb_table.search(Q, query_type="hybrid").rerank(reranker=voyage(top_n=2)).to_list()
    assert len(result) == 2 and {r["id"] for r in result} <= TABLE_TIERS[0]


def test_voyageai_reranker_error_is_typed(voyage) -> None:
    import voyageai

    with pytest.raises(voyageai.error.InvalidRequestError, match="too many documents: 101 > 100"):
        voyage().rerank_vector(Q, pa.table({"text": [f"d{i}" for i in range(101)], "_distance": [0.0] * 101}))


def test_cohere_reranker_via_co_api_url(lancedb_table, tmp_path, base_url: str, subprocess_env,
                                        paths_hit) -> None:
    # CohereReranker builds cohere.Client(key) with no base_url: CO_API_URL, set before cohere loads,
    # is the only way in. The subprocess opens the same table (registering the same embedder).
    pytest.importorskip("cohere", reason=install_hint("cohere"))
    db_path = str(tmp_path / "db")  # where the lancedb_table fixture made it
    out = run_python(
        f"""
        import json
        import cohere, lancedb
        from lancedb.rerankers import CohereReranker
        from tests.compat.conftest import embedding_function

        embedding_function()  # registers the table's embedder in this interpreter
        table = lancedb.connect({db_path!r}).open_table("docs")
        out = {{}}
        for query_type in ("vector", "fts", "hybrid"):
            reranker = CohereReranker(model_name="rerank-v3.5", api_key="{API_KEY}")
            rows = table.search({Q!r}, query_type=query_type).rerank(reranker=reranker).limit(8).to_list()
            out[query_type] = [(r["id"], r["_relevance_score"]) for r in rows]
        top = table.search({Q!r}).rerank(reranker=CohereReranker(api_key="{API_KEY}", top_n=2)).to_list()
        out["top_n"] = [r["id"] for r in top]
        try:
            CohereReranker(api_key="{API_KEY}").rerank_vector("", table.search({Q!r}).to_arrow())
        except cohere.BadRequestError as exc:
            out["error"] = [type(exc).__name__, exc.body["message"]]
        print(json.dumps(out))
        """,
        {**subprocess_env, "CO_API_URL": base_url},
    )
    check([tuple(p) for p in out["vector"]], set(range(len(TABLE_TEXTS))))
    check([tuple(p) for p in out["fts"]], {1, 2, 3, 4, 5})
    check([tuple(p) for p in out["hybrid"]], set(range(len(TABLE_TEXTS))))
    assert len(out["top_n"]) == 2 and set(out["top_n"]) <= TABLE_TIERS[0]
    assert out["error"] == ["BadRequestError", "query must be a non-empty string"]
    assert paths_hit() == ["/v1/rerank"] * 5


@pytest.mark.parametrize("query_type", ["vector", "fts", "hybrid"])
def test_gateway_reranker_agrees_with_lancedbs_own_rerankers(lancedb_table, base_url: str, jina, voyage,
                                                             query_type: str) -> None:
    q = query(Q)  # fresh: all three hit the same gateway with the same documents, so must agree exactly

    def run(reranker: Any) -> Any:
        table = lancedb_table.search(q, query_type=query_type).rerank(reranker=reranker).limit(8).to_arrow()
        return table.drop_columns(["vector"])

    ours = run(GatewayReranker(model_name="rerank-v3.5", base_url=base_url))
    assert ours.equals(run(jina(model_name="rerank-v3.5")))
    assert ours.equals(run(voyage(model_name="rerank-v3.5")))
