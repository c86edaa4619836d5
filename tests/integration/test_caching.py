"""What the result cache shares and with whom, on a real process: tenants, Cache-Control, joined deadlines."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from gateway.ops.auth import hash_key
from tests.conftest import ALIASES, NO_RETRIES
from tests.support.faults import Fault

KEY_A, KEY_B = "key-tenant-a-123", "key-tenant-b-456"
AUTH = f"""[auth]
enabled = true
keys = [{{name = "a", sha256 = "{hash_key(KEY_A)}"}}, {{name = "b", sha256 = "{hash_key(KEY_B)}"}}]"""
DOCS = ["Paris is the capital of France.", "Bananas are yellow."]
SLOW = [*ALIASES, ("slowpoke", "slowpoke", "listwise", "")]


def rerank(gateway, query: str, key: str | None = None, model: str = "judge", headers: dict | None = None,  # noqa: ANN001
           **body: object) -> httpx.Response:
    sent = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{gateway.url}/v1/rerank", json={"query": query, "documents": DOCS, "model": model, **body},
                      headers={**sent, **(headers or {})}, timeout=30)


def test_with_auth_on_one_key_cannot_learn_what_another_asked(start_gateway, upstream_calls) -> None:
    gateway = start_gateway(f"{NO_RETRIES}\n{AUTH}")
    assert rerank(gateway, "tenant secret query", KEY_A).headers["x-cache"] == "MISS"
    assert rerank(gateway, "tenant secret query", KEY_A).headers["x-cache"] == "HIT"
    other = rerank(gateway, "tenant secret query", KEY_B)
    assert other.status_code == 200 and other.headers["x-cache"] == "MISS"  # scope "key" by default
    assert upstream_calls() == 2


def test_a_global_scope_shares_rankings_between_keys(start_gateway, upstream_calls) -> None:
    gateway = start_gateway(f"{NO_RETRIES}\n{AUTH}", cache='scope = "global"')
    assert rerank(gateway, "shared query", KEY_A).headers["x-cache"] == "MISS"
    assert rerank(gateway, "shared query", KEY_B).headers["x-cache"] == "HIT"
    assert upstream_calls() == 1


def test_cache_control_no_cache_recomputes_and_no_store_leaves_no_trace(start_gateway, upstream_calls) -> None:
    gateway = start_gateway()
    assert rerank(gateway, "controlled").headers["x-cache"] == "MISS"
    refreshed = rerank(gateway, "controlled", headers={"Cache-Control": "no-cache"})
    assert refreshed.status_code == 200 and refreshed.headers["x-cache"] == "MISS" and upstream_calls() == 2
    assert rerank(gateway, "controlled").headers["x-cache"] == "HIT"
    for _ in range(2):
        assert rerank(gateway, "never kept", headers={"Cache-Control": "no-store"}).headers["x-cache"] == "MISS"
    assert rerank(gateway, "never kept").headers["x-cache"] == "MISS" and upstream_calls() == 5


def test_a_request_joining_a_shorter_one_keeps_its_own_deadline(start_gateway, upstream) -> None:
    """Issue 11, item 9: `timeout: 30` joining an identical in-flight request with `timeout: 1` is not cut
    at 1 s; the shared computation runs to the later deadline, and the short request still ends at its own."""
    gateway = start_gateway(NO_RETRIES, SLOW)
    upstream.faults.always("slowpoke", Fault.delay(2.0))
    before = upstream.calls["slowpoke"]
    try:
        with ThreadPoolExecutor(2) as pool:
            short = pool.submit(rerank, gateway, "joined deadlines", model="slowpoke", timeout=1)
            time.sleep(0.3)
            long = pool.submit(rerank, gateway, "joined deadlines", model="slowpoke", timeout=30)
            short_answer, long_answer = short.result(), long.result()
    finally:
        upstream.faults.clear("slowpoke")
    assert short_answer.status_code == 504
    assert long_answer.status_code == 200, long_answer.text
    assert long_answer.headers["x-cache"] == "HIT"  # it made no call of its own
    assert upstream.calls["slowpoke"] == before + 1
