"""The Redis tier and store against a real redis-server: sharing, single flight across caches, and every way
Redis can fail (frozen, dead, corrupt values) costing at most a timeout, never an error."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.cache.base import Deadline
from gateway.cache.memory import ResultCache
from gateway.cache.redis import RedisTier
from gateway.cache.redis_store import RedisStore, StoreUnavailable, store_for
from gateway.config import CacheSettings, ConfigError

KEY = "ab" * 32  # what gateway.cache.keys makes: a sha256 hex digest


class TextCodec:
    def encode(self, value: str) -> bytes:
        return b"text:" + value.encode()

    def decode(self, raw: bytes) -> str:
        if not raw.startswith(b"text:"):
            raise ValueError("not ours")
        return raw[5:].decode()


def store(url: str, timeout: float = 0.5, failures: int = 3, cooldown: float = 0.3) -> RedisStore:
    return RedisStore(url, timeout=timeout, max_connections=16, breaker_failures=failures,
                      breaker_cooldown=cooldown)


def replica(url: str, **options: float) -> ResultCache[str]:
    """One replica's cache: its own memory and its own connection, the shared Redis."""
    tier = RedisTier(store(url, **options), TextCodec(), prefix="test", ttl_seconds=60)
    return ResultCache(max_entries=100, ttl_seconds=60, shared=tier)


def counting(calls: list[int], seconds: float = 0.0, value: str = "ranked"):  # noqa: ANN201
    async def compute(deadline: Deadline) -> tuple[str, bool]:
        calls.append(1)
        await asyncio.sleep(seconds)
        return value, True

    return compute


@pytest.mark.anyio
async def test_a_value_computed_by_one_replica_is_a_hit_on_another(redis_server) -> None:
    a, b = replica(redis_server.url), replica(redis_server.url)
    calls: list[int] = []
    assert await a.get_or_compute(KEY, counting(calls)) == ("ranked", False)
    assert await b.get_or_compute(KEY, counting(calls)) == ("ranked", True)
    assert calls == [1]
    # Versioned, namespaced, compact, and always with a TTL.
    assert redis_server.command("GET", f"test:v1:{KEY}") == "text:ranked"
    assert 0 < int(redis_server.command("PTTL", f"test:v1:{KEY}")) <= 60_000


@pytest.mark.anyio
async def test_a_stampede_over_replicas_costs_one_computation(redis_server) -> None:
    replicas = [replica(redis_server.url) for _ in range(3)]
    calls: list[int] = []
    results = await asyncio.gather(*(r.get_or_compute(KEY, counting(calls, 0.2)) for r in replicas * 10))
    assert calls == [1]
    assert {value for value, _ in results} == {"ranked"} and sum(not hit for _, hit in results) == 1
    assert redis_server.command("EXISTS", f"test:v1:lock:{KEY}") == "0"  # released once published


@pytest.mark.anyio
async def test_a_waiter_computes_itself_when_the_lock_holder_dies(redis_server) -> None:
    # A holder that took the lock and died: no value, no heartbeat, the lock expires.
    redis_server.command("SET", f"test:v1:lock:{KEY}", "dead-holder", "PX", "300")
    calls: list[int] = []
    started = time.monotonic()
    assert await replica(redis_server.url).get_or_compute(KEY, counting(calls), deadline=started + 5) == (
        "ranked", False)
    assert calls == [1] and 0.25 < time.monotonic() - started < 1.5


@pytest.mark.anyio
async def test_a_waiter_stops_waiting_as_its_deadline_nears(redis_server) -> None:
    redis_server.command("SET", f"test:v1:lock:{KEY}", "slow-holder", "PX", "60000")  # alive, and slow
    calls: list[int] = []
    started = time.monotonic()
    await replica(redis_server.url).get_or_compute(KEY, counting(calls), deadline=started + 1.0)
    assert calls == [1] and time.monotonic() - started < 0.9  # with time left to compute


@pytest.mark.anyio
async def test_a_corrupt_or_foreign_value_is_a_miss_and_is_overwritten(redis_server) -> None:
    redis_server.command("SET", f"test:v1:{KEY}", "\x80garbage{not ours")
    calls: list[int] = []
    assert await replica(redis_server.url).get_or_compute(KEY, counting(calls)) == ("ranked", False)
    assert redis_server.command("GET", f"test:v1:{KEY}") == "text:ranked"


@pytest.mark.anyio
async def test_a_frozen_redis_costs_one_timeout_then_nothing_until_it_answers_again(redis_server) -> None:
    cache = replica(redis_server.url, timeout=0.05, failures=2, cooldown=0.3)
    tier_store = cache.shared.store  # type: ignore[union-attr]
    await cache.get_or_compute("warm", counting([]))  # connected
    redis_server.freeze()
    try:
        timings = []
        for n in range(6):
            started = time.monotonic()
            value, hit = await cache.get_or_compute(f"k{n}", counting([]))
            timings.append(time.monotonic() - started)
            assert value == "ranked" and not hit
        # Each command waits at most the timeout; once the breaker opens, not at all.
        # (Bounds with room for a busy test machine: the timeout is 50 ms.)
        assert max(timings) < 0.5 and min(timings[-3:]) < 0.05
        assert tier_store.status()["state"] == "degraded" and tier_store.breaker.state != "closed"
    finally:
        redis_server.thaw()
    await asyncio.sleep(0.35)  # the cooldown: the next command probes, and closes the breaker
    other = replica(redis_server.url)
    await other.get_or_compute("after", counting([]))
    calls: list[int] = []
    assert await cache.get_or_compute("after", counting(calls)) == ("ranked", True) and not calls
    assert tier_store.status()["state"] == "ok"


@pytest.mark.anyio
async def test_a_dead_redis_is_a_miss_at_once(redis_server) -> None:
    cache = replica(redis_server.url)
    redis_server.kill()
    started = time.monotonic()
    assert await cache.get_or_compute(KEY, counting([])) == ("ranked", False)
    assert time.monotonic() - started < 0.2


@pytest.mark.anyio
async def test_the_store_fails_fast_and_counts_what_failed(redis_server) -> None:
    seen: list[tuple[str, str | None]] = []
    states: list[str] = []
    s = RedisStore(redis_server.url, timeout=0.05, max_connections=4, breaker_failures=1, breaker_cooldown=5,
                   observe=lambda op, seconds, failure: seen.append((op, failure)), on_state=states.append)
    assert await s.run("ping", lambda r: r.ping())
    redis_server.freeze()
    try:
        with pytest.raises(StoreUnavailable):
            await s.run("get", lambda r: r.get("x"))
        with pytest.raises(StoreUnavailable, match="circuit open"):
            await s.run("get", lambda r: r.get("x"))  # the breaker is open: Redis is not even asked (`seen` below)
    finally:
        redis_server.thaw()
    assert seen == [("ping", None), ("get", "timeout")] and states == ["open"]


@pytest.mark.anyio
async def test_a_retired_store_closes_only_after_the_requests_holding_it(redis_server) -> None:
    s = store(redis_server.url)
    with s.hold():
        s.retire()
        assert not s.closed
        assert await s.run("ping", lambda r: r.ping())  # a request in flight still uses it
    assert s.closed
    with pytest.raises(StoreUnavailable):
        await s.run("ping", lambda r: r.ping())


def test_the_environment_selects_redis_and_a_missing_url_is_a_config_error(monkeypatch) -> None:
    monkeypatch.delenv("RERANK_GATEWAY_REDIS_URL", raising=False)
    assert store_for(CacheSettings(), None) is None
    with pytest.raises(ConfigError, match="needs cache.redis_url or RERANK_GATEWAY_REDIS_URL"):
        store_for(CacheSettings(backend="redis"), None)
    monkeypatch.setenv("RERANK_GATEWAY_REDIS_URL", "redis://:secret@127.0.0.1:6390/2")
    chosen = store_for(CacheSettings(), None)
    assert chosen is not None and chosen.status()["url"] == "redis://127.0.0.1:6390/2"  # no password
    assert store_for(CacheSettings(), chosen) is chosen  # unchanged settings keep the pool
    assert store_for(CacheSettings(redis_timeout_ms=20), chosen) is not chosen
