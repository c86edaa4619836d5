from __future__ import annotations

import asyncio

import pytest

from gateway.cache.base import CachePolicy, Deadline
from gateway.cache.memory import ResultCache


def numbered():  # noqa: ANN201
    """A computation that answers 1, 2, 3, ... and the list of its calls."""
    calls: list[int] = []

    async def compute(deadline: Deadline) -> tuple[int, bool]:
        calls.append(1)
        return len(calls), True

    return compute, calls


@pytest.mark.anyio
async def test_second_lookup_is_a_hit_without_computing() -> None:
    cache: ResultCache[str] = ResultCache(max_entries=10, ttl_seconds=60)
    computed = []

    async def compute(deadline: Deadline) -> tuple[str, bool]:
        computed.append(1)
        return "value", True

    assert await cache.get_or_compute("k", compute) == ("value", False)
    assert await cache.get_or_compute("k", compute) == ("value", True)
    assert len(computed) == 1


@pytest.mark.anyio
async def test_uncacheable_results_are_not_stored() -> None:
    cache: ResultCache[str] = ResultCache(max_entries=10, ttl_seconds=60)

    async def degraded(deadline: Deadline) -> tuple[str, bool]:
        return "partial", False

    await cache.get_or_compute("k", degraded)
    assert cache.get("k") is None


@pytest.mark.anyio
async def test_concurrent_identical_requests_compute_once() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)
    calls = 0

    async def slow(deadline: Deadline) -> tuple[int, bool]:
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

    async def boom(deadline: Deadline) -> tuple[int, bool]:
        await asyncio.sleep(0.01)
        raise ValueError("upstream down")

    results = await asyncio.gather(*(cache.get_or_compute("k", boom) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert cache.get("k") is None and not cache._inflight


@pytest.mark.anyio
async def test_a_cancelled_caller_does_not_cancel_the_shared_computation() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)

    async def slow(deadline: Deadline) -> tuple[int, bool]:
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
    compute, _ = numbered()
    assert await cache.get_or_compute("k", compute) == (1, False)
    assert await cache.get_or_compute("k", compute) == (2, False)


@pytest.mark.anyio
async def test_a_caller_cancelled_as_the_work_finishes_is_not_an_error() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)

    async def quick(deadline: Deadline) -> tuple[int, bool]:
        return 1, True

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):  # expires while the computation completes
            await cache.get_or_compute("k", quick)
    assert not cache._inflight


@pytest.mark.anyio
async def test_a_joiner_keeps_its_own_deadline() -> None:
    """A request with a long deadline that joins one with a short deadline is not cut at the short one:
    the shared computation runs to the latest deadline of its waiters."""
    cache: ResultCache[str] = ResultCache(max_entries=10, ttl_seconds=60)
    loop = asyncio.get_running_loop()
    seen: list[float] = []

    async def until_deadline(deadline: Deadline) -> tuple[str, bool]:
        # A computation that works as long as its deadline allows, like a strategy's calls do.
        while loop.time() < deadline.at - 0.08:
            seen.append(deadline.at)
            await asyncio.sleep(0.01)
        return "done", True

    async def request(budget: float) -> tuple[str, bool]:
        deadline = loop.time() + budget
        async with asyncio.timeout(budget):
            return await cache.get_or_compute("k", until_deadline, deadline=deadline)

    short = asyncio.create_task(request(0.2))
    await asyncio.sleep(0.02)
    long = asyncio.create_task(request(0.6))
    with pytest.raises(TimeoutError):
        await short  # the short request still ends at its own deadline
    assert await long == ("done", True)
    assert max(seen) > min(seen) + 0.3  # the computation's deadline moved out to the joiner's


@pytest.mark.anyio
async def test_no_cache_recomputes_and_stores_and_no_store_does_neither() -> None:
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)
    compute, calls = numbered()
    assert await cache.get_or_compute("k", compute) == (1, False)
    assert await cache.get_or_compute("k", compute, policy=CachePolicy(read=False, write=True)) == (2, False)
    assert await cache.get_or_compute("k", compute) == (2, True)
    assert await cache.get_or_compute("k", compute, policy=CachePolicy(read=False, write=False)) == (3, False)
    assert cache.get("k") == 2 and len(calls) == 3


@pytest.mark.anyio
async def test_a_refusal_before_computing_reaches_only_that_caller() -> None:
    """`on_miss` (a token reservation) runs in the caller's task: a refusal is that caller's alone,
    and a caller that joins an existing computation is not asked at all."""
    cache: ResultCache[int] = ResultCache(max_entries=10, ttl_seconds=60)
    asked: list[str] = []

    async def slow(deadline: Deadline) -> tuple[int, bool]:
        await asyncio.sleep(0.05)
        return 1, True

    def on_miss(name: str, refuse: bool):  # noqa: ANN202
        async def check() -> None:
            asked.append(name)
            if refuse:
                raise PermissionError(name)
        return check

    first = asyncio.create_task(cache.get_or_compute("k", slow, on_miss=on_miss("first", False)))
    await asyncio.sleep(0.01)
    joined = asyncio.create_task(cache.get_or_compute("k", slow, on_miss=on_miss("joined", True)))
    assert await first == (1, False) and await joined == (1, True)
    with pytest.raises(PermissionError):
        await cache.get_or_compute("other", slow, on_miss=on_miss("refused", True))
    assert asked == ["first", "refused"] and cache.get("other") is None
