"""Access control, load shedding, metrics, request ids, logs and graceful shutdown on a real process."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from gateway.ops.auth import hash_key
from tests.conftest import ALIASES, NO_RETRIES, SLIDING
from tests.support.faults import Fault

KEY, LIMITED, TOKENS = "key-team-a-123", "key-limited-456", "key-tokens-789"
AUTH = f"""[auth]
enabled = true
keys = [
  {{name = "team-a", sha256 = "{hash_key(KEY)}"}},
  {{name = "limited", sha256 = "{hash_key(LIMITED)}", requests_per_minute = 2}},
  {{name = "tokens", sha256 = "{hash_key(TOKENS)}", tokens_per_minute = 100}},
]"""
DOCS = ["Paris is the capital of France.", "Bananas are yellow."]
SLOW = [*ALIASES, ("slowpoke", "slowpoke", "sliding", SLIDING)]


def rerank(gateway, key: str | None = None, model: str = "judge", **body: object) -> httpx.Response:  # noqa: ANN001
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    payload = {"query": "capital France", "documents": DOCS, "model": model, **body}
    return httpx.post(f"{gateway.url}/v1/rerank", json=payload, headers=headers, timeout=30)


def test_keys_are_required_when_auth_is_on(start_gateway) -> None:
    gateway = start_gateway(f"{NO_RETRIES}\n{AUTH}")
    for key in (None, "wrong-key"):
        response = rerank(gateway, key)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert rerank(gateway, KEY).status_code == 200
    assert httpx.get(f"{gateway.url}/v1/models").status_code == 401
    assert httpx.get(f"{gateway.url}/health").status_code == 200  # probes stay open


def test_request_rate_limit_answers_429_with_headers(start_gateway) -> None:
    gateway = start_gateway(f"{NO_RETRIES}\n{AUTH}")
    first = rerank(gateway, LIMITED)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    rerank(gateway, LIMITED)
    refused = rerank(gateway, LIMITED)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1 and "x-ratelimit-reset-requests" in refused.headers
    assert rerank(gateway, KEY).status_code == 200  # other keys are unaffected


def test_a_request_the_token_limit_cannot_cover_is_refused_before_any_call(start_gateway, upstream_calls) -> None:
    gateway = start_gateway(f"{NO_RETRIES}\n{AUTH}")
    refused = rerank(gateway, TOKENS)  # needs more than the key's 100 tokens per minute
    assert refused.status_code == 429 and "more than the key's limit of 100" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-remaining-tokens"] == "100" and upstream_calls() == 0


def test_over_the_concurrency_limit_requests_are_shed(start_gateway, upstream) -> None:
    gateway = start_gateway(NO_RETRIES, SLOW, server="max_concurrent_requests = 1")
    upstream.faults.always("slowpoke", Fault.delay(1.0))
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(rerank, gateway, None, "slowpoke")
            time.sleep(0.4)
            shed = rerank(gateway, model="judge")
            assert slow.result().status_code == 200
    finally:
        upstream.faults.clear("slowpoke")
    assert shed.status_code == 503 and shed.json()["error"]["code"] == "overloaded"
    assert shed.headers["retry-after"] == "1"


def test_metrics_cover_requests_cache_tokens_and_llm_calls(start_gateway) -> None:
    gateway = start_gateway()
    rerank(gateway)
    rerank(gateway)
    rerank(gateway, model="nope")
    text = httpx.get(f"{gateway.url}/metrics").text
    for expected in [
        'rerank_gateway_requests_total{model="judge",route="/v1/rerank",status="200"} 2.0',
        'rerank_gateway_requests_total{model="-",route="/v1/rerank",status="404"} 1.0',
        'rerank_gateway_cache_lookups_total{result="hit"} 1.0',
        'rerank_gateway_cache_lookups_total{result="miss"} 1.0',
        'rerank_gateway_tokens_total{direction="input",model="judge"}',
        'rerank_gateway_cost_usd_total{model="judge"}',
        'rerank_gateway_llm_call_duration_seconds_count{model="judge"} 1.0',
        'rerank_gateway_request_duration_seconds_bucket{le="0.5",route="/v1/rerank"}',
        "rerank_gateway_config_last_reload_successful 1.0",
    ]:
        assert expected in text, expected


def test_request_ids_are_returned_and_honoured(start_gateway) -> None:
    gateway = start_gateway()
    assert len(rerank(gateway).headers["x-request-id"]) == 32
    echoed = httpx.get(f"{gateway.url}/health", headers={"x-request-id": "trace-abc.123"})
    assert echoed.headers["x-request-id"] == "trace-abc.123"
    hostile = httpx.get(f"{gateway.url}/health", headers={"x-request-id": "a b\tc" + "x" * 300})
    assert hostile.headers["x-request-id"] != "a b\tc" + "x" * 300


def test_one_json_log_line_per_request_without_text_or_keys(start_gateway) -> None:
    gateway = start_gateway(f"{NO_RETRIES}\n{AUTH}")
    canary_key, canary_query, canary_doc = "canary-KEY-7f3a", "canary-QUERY-9b1c", "canary-DOC-4e2d"
    for key in (KEY, canary_key):
        rerank(gateway, key, query=canary_query, documents=[canary_doc, "other canary-DOC-4e2d text"])
    metrics = httpx.get(f"{gateway.url}/metrics").text
    time.sleep(0.2)
    log = gateway.log.read_text()
    for canary in (canary_key, canary_query, canary_doc, KEY):
        assert canary not in log and canary not in metrics, canary
    lines = [json.loads(line.split("gateway.access: ", 1)[1]) for line in log.splitlines()
             if "gateway.access: " in line]
    served = next(line for line in lines if line["status"] == 200)
    assert {"request_id", "key", "model", "mode", "documents", "prompt_tokens", "completion_tokens", "cost_usd",
            "cache", "latency_ms", "status"} <= set(served)
    assert served["key"] == "team-a" and served["documents"] == 2
    assert any(line["status"] == 401 for line in lines)
    # One line per request: ours. uvicorn's own access line is off.
    assert sum(line["request_id"] == served["request_id"] for line in lines) == 1
    assert '"POST /v1/rerank HTTP/1.1"' not in log


def sigterm_during_a_slow_request(gateway, upstream, seconds: float, probe=None):  # noqa: ANN001, ANN201
    """SIGTERM while a request that takes `seconds` upstream is in flight: (its response, what `probe()`
    returned just after the signal)."""
    upstream.faults.always("slowpoke", Fault.delay(seconds))
    results: dict[str, httpx.Response] = {}
    worker = threading.Thread(target=lambda: results.update(slow=rerank(gateway, model="slowpoke")))
    probed = None
    try:
        worker.start()
        time.sleep(0.4)
        gateway.process.send_signal(signal.SIGTERM)
        if probe is not None:
            time.sleep(0.2)
            probed = probe()
        worker.join(timeout=30)
    finally:
        upstream.faults.clear("slowpoke")
    return results["slow"], probed


def test_sigterm_drains_then_finishes_in_flight_requests(start_gateway, upstream) -> None:
    gateway = start_gateway(NO_RETRIES, SLOW, server="drain_seconds = 1\ngraceful_shutdown_seconds = 10")
    assert httpx.get(f"{gateway.url}/ready").status_code == 200
    slow, draining = sigterm_during_a_slow_request(gateway, upstream, 1.5,
                                                   lambda: httpx.get(f"{gateway.url}/ready"))
    assert draining.status_code == 503 and draining.json()["status"] == "draining"
    assert slow.status_code == 200
    assert gateway.process.wait(timeout=20) == 0


def test_a_request_cut_by_the_shutdown_grace_gets_a_json_503(start_gateway, upstream) -> None:
    gateway = start_gateway(NO_RETRIES, SLOW, server="graceful_shutdown_seconds = 0.5")
    cut, _ = sigterm_during_a_slow_request(gateway, upstream, 10)
    assert cut.status_code == 503 and cut.headers["content-type"] == "application/json", cut.text
    assert cut.json()["error"]["code"] == "shutting_down" and cut.headers["retry-after"] == "1"
    assert gateway.process.wait(timeout=20) == 0
