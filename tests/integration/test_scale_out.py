"""Three gateway processes sharing one real redis-server (selected by RERANK_GATEWAY_REDIS_URL) and the fake
upstream: shared rankings, single flight and limits across replicas, and Redis frozen, killed and back."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from gateway.ops.auth import hash_key
from tests.conftest import ALIASES, NO_RETRIES, SLIDING
from tests.support.faults import Fault

KEY = "key-shared-limit-123"
AUTH = f"""[auth]
enabled = true
keys = [{{name = "shared", sha256 = "{hash_key(KEY)}", requests_per_minute = 5}}]"""
DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "The Seine flows through Paris."]
SLOW = [*ALIASES, ("stampede", "stampede", "sliding", SLIDING)]


def rerank(gateway, query: str, model: str = "judge", key: str | None = None) -> httpx.Response:  # noqa: ANN001
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{gateway.url}/v1/rerank", json={"query": query, "documents": DOCS, "model": model},
                      headers=headers, timeout=30)


# Tests of what is shared give Redis a timeout a busy test machine cannot trip (a starved event loop
# fires timers late); the failure test runs with the shipped 50 ms.
PATIENT = "redis_timeout_ms = 1000"


@pytest.fixture
def replicas(start_gateway, redis_server):  # noqa: ANN001, ANN201
    def start(n: int = 3, extra: str = NO_RETRIES, aliases=ALIASES, cache: str = PATIENT) -> list:  # noqa: ANN001
        env = {"RERANK_GATEWAY_REDIS_URL": redis_server.url}
        return [start_gateway(extra, aliases, env=env, cache=cache) for _ in range(n)]

    return start


def test_a_ranking_computed_on_one_replica_is_a_hit_on_the_others(replicas, upstream_calls, redis_server) -> None:
    a, b, c = replicas()
    assert rerank(a, "shared across replicas").headers["x-cache"] == "MISS"
    for other in (b, c):
        answer = rerank(other, "shared across replicas")
        assert answer.status_code == 200 and answer.headers["x-cache"] == "HIT"
    assert upstream_calls() == 1
    keys = redis_server.command("KEYS", "rrgw:v1:*").split("\n")
    assert len(keys) == 1 and len(keys[0].rsplit(":", 1)[1]) == 64  # <prefix>:v1:<sha256>
    ready = httpx.get(f"{b.url}/ready").json()
    assert ready["cache"] == {"backend": "redis", "url": redis_server.url, "state": "ok", "breaker": "closed"}


def test_a_stampede_over_the_replicas_costs_one_computation(replicas, upstream) -> None:
    gateways = replicas(aliases=SLOW)
    upstream.faults.always("stampede", Fault.delay(1.0))
    before = upstream.calls["stampede"]
    try:
        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda n: rerank(gateways[n % 3], "cold stampede", "stampede"), range(30)))
    finally:
        upstream.faults.clear("stampede")
    assert all(a.status_code == 200 for a in answers)
    assert upstream.calls["stampede"] - before == 1
    assert sum(a.headers["x-cache"] == "MISS" for a in answers) == 1


def test_a_key_limit_holds_across_replicas(replicas) -> None:
    gateways = replicas(extra=f"{NO_RETRIES}\n{AUTH}")
    statuses = [rerank(gateways[n % 3], f"limited {n}", key=KEY).status_code for n in range(12)]
    assert statuses.count(200) == 5 and statuses.count(429) == 7


def test_token_limits_hold_across_replicas(replicas) -> None:
    tokens = f'[auth]\nenabled = true\nkeys = [{{name = "tokens", sha256 = "{hash_key(KEY)}", ' \
             'tokens_per_minute = 2000}]'
    gateways = replicas(2, f"{NO_RETRIES}\n{tokens}")
    docs = [f"passage {i} about the capital of France and its rivers, bridges and museums" for i in range(20)]

    def send(n: int) -> httpx.Response:
        return httpx.post(f"{gateways[n % 2].url}/v1/rerank", headers={"Authorization": f"Bearer {KEY}"},
                          json={"query": f"capital {n}", "documents": docs, "model": "judge"}, timeout=30)

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(send, range(30)))
    served = [a for a in answers if a.status_code == 200]
    assert served and sum(a.json()["usage"]["total_tokens"] for a in served) <= 2000


class Load:
    """Closed-loop clients over the replicas, each request new (a miss: it needs Redis) or a repeat."""

    def __init__(self, gateways: list, clients: int = 6) -> None:  # noqa: ANN001
        self.gateways = gateways
        self.samples: list[tuple[str, float, int, str]] = []  # (phase, latency, status, x-cache)
        self.phase = "healthy"
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(clients)]

    def _client(self, n: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = 0
            while not self._stop.is_set():
                i += 1
                gateway = self.gateways[(n + i) % len(self.gateways)]
                query = f"load {n} {i}" if i % 2 else f"repeat {n} {i % 6}"
                started = time.monotonic()
                answer = http.post(f"{gateway.url}/v1/rerank",
                                   json={"query": query, "documents": DOCS, "model": "judge"})
                self.samples.append((self.phase, time.monotonic() - started, answer.status_code,
                                     answer.headers.get("x-cache", "")))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def latencies(self, phase: str) -> list[float]:
        return sorted(latency for p, latency, _, _ in self.samples if p == phase)


def wait_for_shared_hits(gateways: list, label: str, seconds: float = 45) -> None:  # noqa: ANN001
    """Warm a new key on one replica until another answers it from Redis (the breakers have closed)."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        rerank(gateways[0], f"{label} {n}")
        if rerank(gateways[1], f"{label} {n}").headers["x-cache"] == "HIT":
            return
        time.sleep(0.5)
    raise AssertionError(f"no shared hits {seconds:g}s after Redis came back")


# Before a breaker opens: its 3 failures, and the commands already waiting beside them (2 clients' requests and
# their background renewals); then a probe per cooldown (1 s, then 2 s, ...), frozen and after the kill.
MAX_TIMEOUTS_PER_REPLICA = 20


def redis_errors(metrics: str, kind: str) -> float:
    return sum(float(v) for v in re.findall(rf'^rerank_gateway_redis_errors_total{{[^}}]*kind="{kind}"[^}}]*}} (\S+)$',
                                             metrics, re.M))


def test_redis_frozen_then_killed_under_load_never_fails_a_request(replicas, redis_server) -> None:
    gateways = replicas(cache="")
    with Load(gateways) as load:
        time.sleep(2)
        redis_server.freeze()
        load.phase = "frozen"
        time.sleep(3)
        degraded = [httpx.get(f"{g.url}/ready") for g in gateways]
        redis_server.thaw()
        load.phase = "thawed"
        wait_for_shared_hits(gateways, "after thaw")
        redis_server.kill()
        load.phase = "killed"
        time.sleep(3)
        redis_server.start()  # empty, on the same port
        load.phase = "restarted"
        wait_for_shared_hits(gateways, "after restart")
    statuses = {status for _, _, status, _ in load.samples}
    assert statuses == {200}, f"every request succeeds whatever Redis does: {statuses}"
    assert all(r.status_code == 200 and r.json()["cache"]["state"] == "degraded" for r in degraded)
    healthy, frozen = load.latencies("healthy"), load.latencies("frozen")
    assert len(frozen) > 20 and len(load.latencies("killed")) > 20
    # Each replica waits on a frozen Redis for a few 50 ms timeouts, until its breaker opens, and then only for
    # a probe now and then: counted, not timed (a shared machine's stalls show in any one request's latency).
    metrics = [httpx.get(f"{g.url}/metrics").text for g in gateways]
    timeouts = [redis_errors(m, "timeout") for m in metrics]
    print(f"redis timeouts per replica {timeouts}; {len(frozen)} requests while frozen")
    assert all(0 < n <= MAX_TIMEOUTS_PER_REPLICA for n in timeouts), timeouts
    assert all(redis_errors(m, "connection") > 0 for m in metrics)
    # So most requests while it is frozen wait on none: their median is the healthy one's, give or take a timeout.
    assert frozen[len(frozen) // 2] < healthy[len(healthy) // 2] + 0.25, (healthy[::10], frozen[::10])
    # The breaker's state is exported (on a busy machine late timers may have opened it again since).
    assert re.search(r"^rerank_gateway_redis_breaker_state [012]\.0$", metrics[0], re.M)


def test_a_corrupt_or_foreign_value_in_redis_is_a_miss_never_an_error(replicas, redis_server) -> None:
    a, b, c = replicas()
    foreign = '{"v":1,"order":[1,0],"scores":[0.9,0.1],"prompt_version":"x"}'  # valid, for 2 documents, not 3
    for n, value in enumerate(("\x00\xffnot json", '{"v":1,"order":"oops"}', foreign)):
        before = set(redis_server.command("KEYS", "rrgw:v1:*").split("\n"))
        rerank(a, f"to be corrupted {n}")
        [key] = set(redis_server.command("KEYS", "rrgw:v1:*").split("\n")) - before
        redis_server.command("SET", key, value)
        answer = rerank(b, f"to be corrupted {n}")
        assert answer.status_code == 200 and answer.headers["x-cache"] == "MISS", value
        assert sorted(r["index"] for r in answer.json()["results"]) == [0, 1, 2]
        # The recomputed value replaced the bad one: another replica reads it.
        assert rerank(c, f"to be corrupted {n}").headers["x-cache"] == "HIT"
