"""Issue 11, item 2: a key's token limit holds under concurrency, and every request's LLM calls are charged,
whether it ends in a 200, a 504 or a client that went away (one real gateway process)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from gateway.ops.auth import hash_key
from tests.conftest import ALIASES, NO_RETRIES
from tests.support.faults import Fault

KEY = "key-token-limited-123"


def auth(tokens_per_minute: int) -> str:
    return (f'[auth]\nenabled = true\nkeys = [{{name = "metered", sha256 = "{hash_key(KEY)}", '
            f"tokens_per_minute = {tokens_per_minute}}}]")


def documents(n: int, salt: str) -> list[str]:
    return [f"{salt} passage {i} about the capital of France and its rivers, bridges and museums" for i in range(n)]


def rerank(gateway, query: str, docs: list[str], model: str = "judge", client_timeout: float = 60,  # noqa: ANN001
           **body: object) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/rerank", json={"query": query, "documents": docs, "model": model, **body},
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=client_timeout)


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining-tokens"])


def test_concurrent_requests_cannot_spend_more_than_the_limit(start_gateway, upstream_calls) -> None:
    """30 concurrent 20-document requests on a 2,000 tokens/minute key: before, all were admitted (70x the
    limit); now each reserves its estimate first, and what is served stays within the limit."""
    gateway = start_gateway(f"{NO_RETRIES}\n{auth(2000)}")
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda n: rerank(gateway, f"capital rivers {n}", documents(20, str(n))), range(30)))
    served = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(served) + len(refused) == 30 and served and refused
    assert sum(a.json()["usage"]["total_tokens"] for a in served) <= 2000
    assert all("tokens per minute" in a.json()["error"]["message"] for a in refused)
    assert upstream_calls() == len(served)  # a refused request made no call (one listwise window each)


def test_a_request_cut_by_its_deadline_is_charged_for_the_calls_it_made(start_gateway, upstream) -> None:
    gateway = start_gateway(f"{NO_RETRIES}\n{auth(1200)}", [*ALIASES, ("glacial", "glacial", "listwise", "")])
    upstream.faults.always("glacial", Fault.delay(5))
    docs = documents(3, "deadline")
    try:
        warm = rerank(gateway, "capital", docs)  # a hit afterwards costs nothing and reads the balance
        before = remaining(warm)
        cut = rerank(gateway, "capital", docs, model="glacial", timeout=1)
        assert cut.status_code == 504
        after = remaining(rerank(gateway, "capital", docs))
        assert after < before - 100  # the cut call's prompt was charged (the bucket refills 20 tokens/s)
    finally:
        upstream.faults.clear("glacial")


def test_a_client_that_goes_away_is_charged_for_the_calls_it_started(start_gateway, upstream) -> None:
    gateway = start_gateway(f"{NO_RETRIES}\n{auth(1200)}", [*ALIASES, ("glacial", "glacial", "listwise", "")])
    upstream.faults.always("glacial", Fault.hang(5))
    docs = documents(3, "gone")
    try:
        before = remaining(rerank(gateway, "capital", docs))
        try:
            rerank(gateway, "capital", docs, model="glacial", client_timeout=0.8)  # the client gives up: a 499
        except httpx.TimeoutException:
            pass
        deadline = time.monotonic() + 10
        while upstream.faults.disconnects["glacial"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the gateway cancelled the call it had made
        after = remaining(rerank(gateway, "capital", docs))
        assert after < before - 100
    finally:
        upstream.faults.clear("glacial")
