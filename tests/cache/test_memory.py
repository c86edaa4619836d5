from __future__ import annotations

import asyncio

import pytest

from gateway.cache.memory import ResultCache


@pytest.mark.anyio
async def test_second_lookup_is_a_hit_without_computing() -> None:
    cache: ResultCache[str] = ResultCache(max_entries=10, ttl_seconds=60)
    computed = []

    async def compute() -> tuple[str, bool]:
        computed.append(1)
        return "value", True

    assert await cache.get_or_compute("k", compute) == ("value", False)
    assert await cache.get_or_compute("k", compute) == ("value", True)
    assert len(computed) == 1


@pytest.mark.anyio
async def test_uncacheable_results_are_not_stored() -> None:
    cache: ResultCache[str] = ResultCache(max_entries=10, ttl_seconds=60)

    async def degraded() -> tuple[str, bool]:
        return "partial", False

    await cache.get_or_compute("k", degraded)
    assert cache.get("k") is None


@pytest.mark.anyio
async def test_concurrent_identical_requests_compute_once() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)
    calls = 0

    async def slow() -> tuple[int, bool]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42, True

    results = await asyncio.gather(*(cache.get_or_compute("k", slow) for _ in range(5)))
    assert calls == 1
    assert sorted(hit for _, hit in results) == [False, True, True, True, True]


@pytest.mark.anyio
async def test_errors_reach_every_waiter_and_are_not_cached() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)

    async def boom() -> tuple[int, bool]:
        await asyncio.sleep(0.01)
        raise ValueError("upstream down")

    results = await asyncio.gather(*(cache.get_or_compute("k", boom) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert cache.get("k") is None and not cache._inflight


@pytest.mark.anyio
async def test_a_cancelled_caller_does_not_cancel_the_shared_computation() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)

    async def slow() -> tuple[int, bool]:
        await asyncio.sleep(0.05)
        return 7, True

    first = asyncio.create_task(cache.get_or_compute("k", slow))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.get_or_compute("k", slow))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == (7, True)
    assert cache.get("k") == 7


def test_entries_expire_and_the_least_recently_used_is_evicted() -> None:
    clock = [0.0]
    cache: ResultCache[str] = ResultCache(max_entries=2, ttl_seconds=10)
    cache._entries = type(cache._entries)(maxsize=2, ttl=10, timer=lambda: clock[0])
    cache._entries["a"], cache._entries["b"] = "A", "B"
    cache.get("a")
    cache._entries["c"] = "C"
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    clock[0] = 11
    assert cache.get("a") is None


@pytest.mark.anyio
async def test_disabled_cache_always_computes() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60, enabled=False)
    calls = 0

    async def compute() -> tuple[int, bool]:
        nonlocal calls
        calls += 1
        return calls, True

    assert await cache.get_or_compute("k", compute) == (1, False)
    assert await cache.get_or_compute("k", compute) == (2, False)


@pytest.mark.anyio
async def test_a_caller_cancelled_as_the_work_finishes_is_not_an_error() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)

    async def quick() -> tuple[int, bool]:
        return 1, True

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):  # expires while the computation completes
            await cache.get_or_compute("k", quick)
    assert not cache._inflight and not cache._waiters
