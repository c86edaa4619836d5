"""Every strategy by name, calibrated scores and partial answers at the deadline, through a real gateway process."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from bench.counters import metric_samples
from tests.conftest import ALIASES, NO_RETRIES
from tests.integration.test_http_api import DOCS, check_contract
from tests.support.faults import Fault

RELEVANT = {1, 2}  # DOCS about the capital of France


def unique(query: str) -> str:
    return f"{query} {uuid.uuid4().hex[:8]}"


def rerank(client: httpx.Client, **body: Any) -> httpx.Response:
    body.setdefault("documents", DOCS)
    body.setdefault("query", unique("capital of France Paris"))
    return client.post("/v1/rerank", json=body)


@pytest.mark.parametrize(("mode", "strategy"), [
    ("listwise", "tdpart-first"), ("first", "tdpart-first"), ("tdpart", "tdpart"),
    ("tdpart-first", "tdpart-first"), ("sliding", "sliding"), ("sliding-first", "sliding-first"),
    ("pointwise", "pointwise"), ("batched", "batched"),
])
def test_every_strategy_is_reachable_by_name_and_says_what_its_scores_mean(
        client: httpx.Client, mode: str, strategy: str) -> None:
    body = check_contract(rerank(client, model="judge-listwise", mode=mode), len(DOCS))
    assert {r.index for r in body.results[:2]} == RELEVANT
    assert (body.meta.mode, body.meta.strategy, body.meta.score_type) == (mode, strategy, "calibrated")
    assert body.meta.partial is False and body.meta.skipped is None
    # Calibrated: the relevant documents above 0.5, the banana below it.
    scores = {r.index: r.relevance_score for r in body.results}
    assert min(scores[i] for i in RELEVANT) >= 0.5 > scores[0]


def test_listwise_on_a_model_without_logprobs_is_tdpart_with_rank_scores(client: httpx.Client) -> None:
    body = check_contract(rerank(client, model="judge", mode="listwise"), len(DOCS))
    assert (body.meta.strategy, body.meta.score_type) == ("tdpart", "rank")
    assert [r.relevance_score for r in body.results] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])


def test_calibrated_listwise_grades_the_top_pointwise(client: httpx.Client, upstream_calls) -> None:
    body = check_contract(rerank(client, model="judge-listwise"), len(DOCS))
    # One window (4 documents fit in one) and a grade for each of the top 4.
    assert body.meta.llm_calls == upstream_calls() == 1 + len(DOCS)


def test_batched_pointwise_is_one_call_per_batch(client: httpx.Client, upstream_calls) -> None:
    body = check_contract(rerank(client, model="judge-batched"), len(DOCS))
    assert body.meta.llm_calls == upstream_calls() == 1  # batch_size 5 holds all 4


def test_fusion_makes_scores_rank_scores(client: httpx.Client) -> None:
    body = check_contract(rerank(client, model="judge-pointwise", fusion_weight=0.5), len(DOCS))
    assert body.meta.score_type == "rank"


SLOW_DOC = "SLOW: the capital of France is Paris, says this passage that takes long to judge"


def test_a_deadline_answers_with_what_finished(client: httpx.Client, upstream_calls) -> None:
    docs = [*DOCS, SLOW_DOC]
    query = unique("capital of France Paris")
    response = rerank(client, model="sluggish", documents=docs, query=query, timeout=1.5)
    body = check_contract(response, len(docs))
    assert response.headers["x-rerank-partial"] == "true"
    assert body.meta.partial is True and body.meta.skipped == {"llm_calls": 1, "documents": 1}
    assert {r.index for r in body.results[:2]} == RELEVANT
    assert body.results[-1].index == 4 and body.results[-1].relevance_score == 0.0  # skipped: last, unscored
    assert body.meta.llm_calls == len(DOCS)
    # Never cached: the same request computes again.
    again = rerank(client, model="sluggish", documents=docs, query=query, timeout=1.5)
    assert again.headers["x-cache"] == "MISS" and again.json()["meta"]["partial"] is True
    page = client.get("/metrics").text
    assert sum(v for labels, v in metric_samples(page, "rerank_gateway_partial_answers_total")
               if labels["mode"] == "pointwise") >= 2


def test_nothing_finished_by_the_deadline_is_a_clear_504(client: httpx.Client) -> None:
    response = rerank(client, model="sluggish", documents=[SLOW_DOC, SLOW_DOC + " again"], timeout=1)
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "deadline_exceeded" and "no LLM call finished" in error["message"]
    assert "x-rerank-partial" not in response.headers


def test_on_deadline_error_answers_504_instead_of_a_partial_answer(start_gateway) -> None:
    gateway = start_gateway(NO_RETRIES + '\non_deadline = "error"')
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        response = rerank(client, model="sluggish", documents=[*DOCS, SLOW_DOC], timeout=1.5)
    assert response.status_code == 504 and response.json()["error"]["code"] == "deadline_exceeded"
    assert "the deadline cut 1 LLM call(s)" in response.json()["error"]["message"]


def test_a_slow_call_is_hedged_and_its_duplicate_billed(start_gateway, upstream) -> None:
    hedging = ("hedged", "hedged", "sliding", "logprobs = false\nhedge_after_seconds = 0.2\nmax_hedges = 1")
    gateway = start_gateway(aliases=[*ALIASES, hedging])
    upstream.faults.queue("hedged", Fault.hang(20))  # the first attempt hangs; its duplicate answers
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        started = time.monotonic()
        body = check_contract(rerank(client, model="hedged"), len(DOCS))
        took = time.monotonic() - started
        alone = check_contract(rerank(client, model="hedged"), len(DOCS))
    assert took < 10 and body.meta.hedges == 1 and body.meta.llm_calls == 1
    assert body.meta.upstream_attempts == 2 and alone.meta.hedges == 0
    assert body.usage.prompt_tokens == 2 * alone.usage.prompt_tokens  # the cancelled duplicate, as estimated
