"""Metrics: the children the hot paths keep are prometheus_client's own, so /metrics counts what they add."""

from __future__ import annotations

from gateway.ops.metrics import Metrics


def test_a_kept_child_is_the_labelled_child_and_counts_on_the_page() -> None:
    metrics = Metrics()
    first = metrics.labelled(metrics.tokens, "judge", "input")
    assert metrics.labelled(metrics.tokens, "judge", "input") is first
    assert first is metrics.tokens.labels("judge", "input")
    first.inc(3)
    metrics.labelled(metrics.tokens, "judge", "output").inc(2)
    metrics.labelled(metrics.llm_latency, "judge").observe(0.2)
    page = metrics.render().decode()
    assert 'rerank_gateway_tokens_total{direction="input",model="judge"} 3.0' in page
    assert 'rerank_gateway_tokens_total{direction="output",model="judge"} 2.0' in page
    assert 'rerank_gateway_llm_call_duration_seconds_count{model="judge"} 1.0' in page
