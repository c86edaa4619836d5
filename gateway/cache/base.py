"""The interface every result cache backend offers the service, and what a caller tells it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class CachePolicy:
    """What one request lets the cache do: HTTP's `Cache-Control: no-cache` is `read=False`
    (recompute, then store), `no-store` is neither."""

    read: bool = True
    write: bool = True


DEFAULT_POLICY = CachePolicy()


class Deadline:
    """When a computation must be done, as time.monotonic(). Shared by the callers waiting on one
    computation: each one that joins may push it later, never earlier, so a joiner keeps its own deadline."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def extend(self, at: float) -> None:
        if at > self.at:
            self.at = at


# `compute(deadline)` returns (value, cacheable); it runs only on a miss, and reads `deadline.at` as it goes.
Compute = Callable[[Deadline], Awaitable[tuple[T, bool]]]


class Cache(Protocol[T]):
    """Values by key (strings), computed at most once at a time per key (single flight)."""

    async def get_or_compute(
        self, key: str, compute: Compute[T], *, deadline: float, policy: CachePolicy = DEFAULT_POLICY,
        on_miss: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[T, bool]:
        """(value, hit): `hit` when this caller caused no computation of its own.

        `on_miss` runs in the caller's own task when it is about to start a computation, and may
        raise to refuse it (a rate limit), which reaches that caller only.
        """
        ...
