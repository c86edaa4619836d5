"""Ranking quality on real TREC DL19 data, with an upstream that answers from the judgments."""

from __future__ import annotations

import httpx
import pytest

from bench.trec import DATA_DIR, load_qrels, load_queries, mean_ndcg

pytestmark = pytest.mark.skipif(
    not (DATA_DIR / "dl19-qrels.txt").is_file(), reason=f"TREC DL data not found in {DATA_DIR}"
)

QUERIES = 6


@pytest.mark.parametrize("model", ["judge", "judge-pointwise"])
def test_reranking_dl19_beats_bm25(client: httpx.Client, model: str) -> None:
    qrels = load_qrels("dl19")
    queries = load_queries("dl19")[:QUERIES]
    bm25, reranked = {}, {}
    for q in queries:
        docids = [c.docid for c in q.candidates]
        response = client.post("/v1/rerank", json={
            "query": q.query, "documents": [c.text for c in q.candidates], "model": model,
            "return_documents": False,
        })
        assert response.status_code == 200, response.text
        bm25[q.qid] = docids
        reranked[q.qid] = [docids[r["index"]] for r in response.json()["results"]]
    baseline, ours = mean_ndcg(bm25, qrels), mean_ndcg(reranked, qrels)
    assert ours > baseline + 20, (baseline, ours)
    assert ours > 85  # a judgment-driven upstream leaves little between us and the ceiling
