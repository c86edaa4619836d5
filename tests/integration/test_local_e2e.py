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
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
needs_trec = pytest.mark.skipif(not (DATA_DIR / "dl19-qrels.txt").is_file(),
                                reason=f"TREC DL data not found in {DATA_DIR}")
DOCS_PER_QUERY = 8


@needs_trec
def test_local_model_reranks_dl19_queries_over_http(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    # Only the shipped local alias: no key, no network, the embedded defaults otherwise.
    config.write_text('default_model = "local"\n[models.local]\nlitellm_model = "local/smollm2-135m"\n'
                      'mode = "pointwise"\nlogprobs = true\ncontext_window = 2048\ntimeout_seconds = 120\n'
                      'n_threads = 1\n')
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


def closed_port() -> int:
    from tests.conftest import free_port

    return free_port()  # bound and released: nothing listens there


def test_a_key_and_no_network_fall_back_to_the_embedded_model_and_say_so(tmp_path: Path) -> None:
    # The shipped defaults, with a key set and the OpenAI endpoint unreachable (refused, as offline).
    gateway = GatewayProcess(None, tmp_path / "gateway.log", cwd=tmp_path, env={
        "OPENAI_API_KEY": "sk-test-offline", "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1"})
    try:
        documents = ["Fleas are wingless insects.", "The flea life cycle can last from two weeks to eight months.",
                     "A flea can live up to a year."]
        answers = [httpx.post(f"{gateway.url}/v1/rerank", timeout=120,
                              json={"query": f"how long do fleas live {n}", "documents": documents})
                   for n in range(2)]
        ready = httpx.get(f"{gateway.url}/ready").json()
        metrics = httpx.get(f"{gateway.url}/metrics").text
    finally:
        gateway.stop()
    for response in answers:
        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["x-rerank-fallback"] == "local" and body["meta"]["fallbacks"] == ["local"]
        assert body["meta"]["model_alias"] == "local" and body["meta"]["mode"] == "pointwise"
        warning = body["meta"]["warnings"][0]
        assert warning.startswith("model 'gpt-4-turbo-preview' could not answer (") and "could not connect" in warning
        assert "HTTP 500" not in warning and "embedded demo model" in body["meta"]["warnings"][-1]
    assert ready["local_model"]["finished"] >= 6 and ready["local_model"]["queued"] == 0
    assert "rerank_gateway_local_model_queued 0.0" in metrics
    log = (tmp_path / "gateway.log").read_text()
    assert "could not connect to upstream model openai/gpt-4-turbo-preview" in log
    assert 'kind="upstream_unreachable"' in metrics
