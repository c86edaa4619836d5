"""Rerank results cached in process: TTL + LRU, with single flight.

Concurrent requests with the same key share one computation. Keys come from
`gateway.cache.keys`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from cachetools import TTLCache

T = TypeVar("T")


class ResultCache(Generic[T]):
    def __init__(self, *, max_entries: int, ttl_seconds: float, enabled: bool = True) -> None:
        self.enabled = enabled
        self._entries: TTLCache[str, T] = TTLCache(maxsize=max_entries, ttl=ttl_seconds)
        self._inflight: dict[str, asyncio.Task[tuple[T, bool]]] = {}
        self._waiters: dict[str, int] = {}

    def get(self, key: str) -> T | None:
        return self._entries.get(key) if self.enabled else None

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[tuple[T, bool]]]
    ) -> tuple[T, bool]:
        """Return (value, hit). `compute` returns (value, cacheable).

        `hit` is True when this caller made no computation of its own: the value
        was cached, or another caller with the same key was already computing it.

        The computation runs in its own task, so a caller that goes away does
        not cancel it for the others waiting on the same key.
        """
        if not self.enabled:
            value, _ = await compute()
            return value, False
        cached = self._entries.get(key)
        if cached is not None:
            return cached, True
        task = self._inflight.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.create_task(self._fill(key, compute))
            # If every waiter goes away, the task's outcome is still collected.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight[key] = task
            self._waiters[key] = 0
        self._waiters[key] += 1
        try:
            value, _ = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The last caller to leave cancels the work: nobody is left to answer. (The
            # work may have finished, and forgotten its waiters, as this caller was cancelled.)
            if not task.done() and self._inflight.get(key) is task:
                self._waiters[key] -= 1
                if self._waiters[key] <= 0:
                    task.cancel()
            raise
        # Joined another request's computation: this one made no LLM call.
        return value, joined

    async def _fill(self, key: str, compute: Callable[[], Awaitable[tuple[T, bool]]]) -> tuple[T, bool]:
        try:
            value, cacheable = await compute()
            if cacheable:
                self._entries[key] = value
            return value, cacheable
        finally:
            self._inflight.pop(key, None)
            self._waiters.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
