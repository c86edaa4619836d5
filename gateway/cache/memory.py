"""Rerank results cached in process: TTL + LRU, with single flight, optionally in front of a shared tier.

Concurrent requests with the same key share one computation. Keys come from
`gateway.cache.keys`. With a `SharedTier` (Redis, `gateway.cache.redis`) this
is the small L1 of each replica: a miss here asks the shared tier, which also
keeps other replicas from computing the same key at the same time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from cachetools import TTLCache

from gateway.cache.base import DEFAULT_POLICY, CachePolicy, Compute, Deadline

T = TypeVar("T")


class SharedTier(Protocol[T]):
    """A cache shared by replicas, behind the in-process one."""

    async def fill(self, key: str, compute: Compute[T], deadline: Deadline, write: bool) -> tuple[T, bool, bool]:
        """(value, cacheable, hit): the shared value, another replica's, or `compute`'s (stored when
        cacheable and `write`). Never raises for the tier's own trouble: it computes instead."""
        ...

    async def put(self, key: str, value: T) -> None: ...


@dataclass
class _Flight(Generic[T]):
    deadline: Deadline
    task: asyncio.Task[tuple[T, bool, bool]] = field(init=False)
    waiters: int = 0


class ResultCache(Generic[T]):
    def __init__(self, *, max_entries: int, ttl_seconds: float, enabled: bool = True,
                 shared: SharedTier[T] | None = None) -> None:
        self.enabled = enabled
        self.shared = shared
        self._entries: TTLCache[str, T] = TTLCache(maxsize=max_entries, ttl=ttl_seconds)
        self._inflight: dict[str, _Flight[T]] = {}

    def get(self, key: str) -> T | None:
        return self._entries.get(key) if self.enabled else None

    async def get_or_compute(
        self, key: str, compute: Compute[T], *, deadline: float = math.inf, policy: CachePolicy = DEFAULT_POLICY,
        on_miss: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[T, bool]:
        """Return (value, hit). `compute(deadline)` returns (value, cacheable).

        `hit` is True when this caller made no computation of its own: the value
        was cached, or another caller with the same key was already computing it.

        The computation runs in its own task, so a caller that goes away does
        not cancel it for the others waiting on the same key, and it runs to the
        latest deadline among them: each caller still times out on its own.
        """
        if not self.enabled or not policy.read:
            return await self._compute_alone(key, compute, deadline, policy, on_miss)
        cached = self._entries.get(key)
        if cached is not None:
            return cached, True
        flight = self._inflight.get(key)
        if flight is None and on_miss is not None:
            await on_miss()
            # Meanwhile another caller may have filled the key or started on it.
            cached = self._entries.get(key)
            if cached is not None:
                return cached, True
            flight = self._inflight.get(key)
        joined = flight is not None
        if flight is None:
            flight = _Flight(Deadline(deadline))
            flight.task = asyncio.create_task(self._fill(key, compute, flight.deadline, policy.write))
            # If every waiter goes away, the task's outcome is still collected.
            flight.task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight[key] = flight
        else:
            flight.deadline.extend(deadline)
        flight.waiters += 1
        try:
            value, _, hit = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            # The last caller to leave cancels the work: nobody is left to answer. (The
            # work may have finished, and forgotten its waiters, as this caller was cancelled.)
            if not flight.task.done() and self._inflight.get(key) is flight:
                flight.waiters -= 1
                if flight.waiters <= 0:
                    flight.task.cancel()
            raise
        # Joined another request's computation, or another replica's: this one made no LLM call.
        return value, joined or hit

    async def _compute_alone(
        self, key: str, compute: Compute[T], deadline: float, policy: CachePolicy,
        on_miss: Callable[[], Awaitable[None]] | None,
    ) -> tuple[T, bool]:
        """No reading (cache off, or `no-cache`/`no-store`): a computation of this caller's own."""
        if on_miss is not None:
            await on_miss()
        value, cacheable = await compute(Deadline(deadline))
        if self.enabled and policy.write and cacheable:
            self._entries[key] = value
            if self.shared is not None:
                await self.shared.put(key, value)
        return value, False

    async def _fill(self, key: str, compute: Compute[T], deadline: Deadline, write: bool) -> tuple[T, bool, bool]:
        try:
            if self.shared is not None:
                value, cacheable, hit = await self.shared.fill(key, compute, deadline, write)
            else:
                value, cacheable = await compute(deadline)
                hit = False
            if cacheable and write:
                self._entries[key] = value
            return value, cacheable, hit
        finally:
            self._inflight.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
