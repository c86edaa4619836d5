"""The interface every result cache backend offers the service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Cache(Protocol[T]):
    """Values by key, computed at most once at a time per key (single flight)."""

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[tuple[T, bool]]]
    ) -> tuple[T, bool]:
        """(value, hit); `compute` returns (value, cacheable) and runs only on a miss."""
        ...
