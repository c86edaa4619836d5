"""The embedded model end to end: a real gateway process, a real LLM, no fake upstream."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bench.trec import DATA_DIR, load_queries
from gateway.http.protocol import RerankResponse
from gateway.upstream import local as local_llm
from tests.conftest import GatewayProcess

MISSING = local_llm.unavailable_reason()
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
    pytest.mark.skipif(not (DATA_DIR / "dl19-qrels.txt").is_file(), reason=f"TREC DL data not found in {DATA_DIR}"),
]
DOCS_PER_QUERY = 8


def test_local_model_reranks_dl19_queries_over_http(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    # Only the shipped local alias: no key, no network, the embedded defaults otherwise.
    config.write_text('default_model = "local"\n[models.local]\nlitellm_model = "local/smollm2-135m"\n'
                      'mode = "pointwise"\nlogprobs = true\ncontext_window = 2048\ntimeout_seconds = 120\n')
    gateway = GatewayProcess(config, tmp_path / "gateway.log", env={"OPENAI_API_KEY": ""})
    try:
        for q in load_queries("dl19")[:3]:
            documents = [c.text for c in q.candidates[:DOCS_PER_QUERY]]
            started = time.monotonic()
            response = httpx.post(f"{gateway.url}/v1/rerank", timeout=120,
                                  json={"query": q.query, "documents": documents, "top_n": 5, "timeout": 110})
            assert response.status_code == 200, response.text
            body = RerankResponse.model_validate(response.json())
            scores = [r.relevance_score for r in body.results]
            assert len(body.results) == 5 and scores == sorted(scores, reverse=True)
            assert all(0 <= s <= 1 for s in scores) and len({r.index for r in body.results}) == 5
            assert body.model == "local" and body.meta.llm_model == "local/smollm2-135m"
            assert body.meta.mode == "pointwise" and body.meta.llm_calls == DOCS_PER_QUERY
            assert body.meta.failed_calls == 0 and body.usage.prompt_tokens > DOCS_PER_QUERY * 50
            assert len(set(scores)) > 1  # real, graded scores from logprobs, not a constant fallback
            assert time.monotonic() - started < 115
    finally:
        gateway.stop()
