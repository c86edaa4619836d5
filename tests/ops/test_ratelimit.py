"""Per-key rate buckets in process, with a fake clock: admission, token reservations and settlement."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.cache.redis_store import RedisStore
from gateway.errors import RateLimited
from gateway.ops.ratelimit import RateLimiter, SharedBuckets


def meter(now: list[float], requests: int = 0, tokens: int = 0):  # noqa: ANN201
    return RateLimiter(clock=lambda: now[0]).meter("team", requests, tokens)


@pytest.mark.anyio
async def test_request_bucket_refills_over_a_minute() -> None:
    now = [0.0]
    limits = meter(now, requests=2)
    await limits.admit()
    await limits.admit()
    with pytest.raises(RateLimited) as refused:
        await limits.admit()
    assert refused.value.retry_after == pytest.approx(30) and "requests" in refused.value.message
    now[0] = 30
    await limits.admit()


@pytest.mark.anyio
async def test_a_reservation_is_refused_when_the_balance_cannot_cover_it() -> None:
    now = [0.0]
    limits = meter(now, tokens=600)
    first = await limits.reserve_tokens(400)
    with pytest.raises(RateLimited) as refused:
        await limits.reserve_tokens(400)  # 200 left
    assert refused.value.retry_after == pytest.approx(20)  # 200 more tokens take 20 s at 600/min
    assert refused.value.headers()["x-ratelimit-remaining-tokens"] == "200"
    limits.settle(first.claim(), 100)  # used less than reserved: the rest comes back
    assert limits.headers()["x-ratelimit-remaining-tokens"] == "500"


@pytest.mark.anyio
async def test_settling_charges_what_was_used_on_every_path() -> None:
    now = [0.0]
    limits = meter(now, tokens=1000)
    over = await limits.reserve_tokens(100)
    limits.settle(over.claim(), 300)  # used more than estimated: charged in full
    assert limits.headers()["x-ratelimit-remaining-tokens"] == "700"
    unclaimed = await limits.reserve_tokens(200)
    limits.release(unclaimed)  # a cache hit or a joined computation: nothing spent
    limits.release(unclaimed)  # releasing twice gives back once
    assert limits.headers()["x-ratelimit-remaining-tokens"] == "700"
    late = await limits.reserve_tokens(200)
    limits.release(late)  # the request left before its computation claimed the reservation ...
    limits.settle(late.claim(), 250)  # ... which then charges what its calls used, with nothing held
    assert limits.headers()["x-ratelimit-remaining-tokens"] == "450"


@pytest.mark.anyio
async def test_a_request_larger_than_the_whole_limit_is_refused_with_a_reason() -> None:
    limits = meter([0.0], tokens=1000)
    with pytest.raises(RateLimited) as refused:
        await limits.reserve_tokens(5000)
    assert "more than the key's limit of 1000" in refused.value.message


@pytest.mark.anyio
async def test_keys_without_limits_reserve_nothing() -> None:
    limits = meter([0.0])
    await limits.admit()
    assert await limits.reserve_tokens(10**9) is None and limits.headers() == {}


def shared_meter(url: str, requests: int = 0, tokens: int = 0, share: float = 1.0):  # noqa: ANN201
    """One replica's meter: its own limiter and connection, the shared Redis (a timeout that a busy
    test machine cannot trip: these tests are about counting, not about slowness)."""
    store = RedisStore(url, timeout=0.5, max_connections=8, breaker_failures=2, breaker_cooldown=0.3)
    return RateLimiter().meter("team", requests, tokens, SharedBuckets(store, "test"), share)


@pytest.mark.anyio
async def test_a_limit_holds_across_replicas_in_redis(redis_server) -> None:
    replicas = [shared_meter(redis_server.url, requests=5) for _ in range(3)]
    outcomes = []
    for n in range(12):
        try:
            await replicas[n % 3].admit()
            outcomes.append(True)
        except RateLimited:
            outcomes.append(False)
    assert outcomes.count(True) == 5
    assert 0 < int(redis_server.command("PTTL", "test:v1:rate:requests:team")) <= 61_000  # always a TTL


@pytest.mark.anyio
async def test_token_reservations_and_settlements_are_shared(redis_server) -> None:
    a, b = shared_meter(redis_server.url, tokens=1000), shared_meter(redis_server.url, tokens=1000)
    held = await a.reserve_tokens(700)
    with pytest.raises(RateLimited):
        await b.reserve_tokens(400)  # the other replica sees the reservation
    a.settle(held.claim(), 200)  # 500 come back
    await asyncio.sleep(0.05)  # settling runs in the background
    assert await b.reserve_tokens(700) is not None


@pytest.mark.anyio
async def test_while_redis_is_down_each_replica_enforces_its_share_locally(redis_server) -> None:
    meter = shared_meter(redis_server.url, requests=10, share=0.5)
    redis_server.kill()
    started = time.monotonic()
    allowed = 0
    for _ in range(8):
        try:
            await meter.admit()
            allowed += 1
        except RateLimited:
            pass
    assert allowed == 5 and time.monotonic() - started < 0.5  # never refused for Redis's sake, never slow
