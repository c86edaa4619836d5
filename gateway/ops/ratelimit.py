"""Per-key request and token rates, as token buckets refilled continuously per minute."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Bucket:
    per_minute: float
    level: float = field(init=False)
    stamp: float = field(init=False)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.level = self.per_minute
        self.stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.per_minute, self.level + (now - self.stamp) * self.per_minute / 60)
        self.stamp = now

    def available(self) -> float:
        self._refill()
        return self.level

    def take(self, amount: float) -> None:
        """Debit `amount`; the level may go below zero (tokens are only known afterwards)."""
        self._refill()
        self.level -= amount

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available."""
        missing = amount - self.available()
        return 0.0 if missing <= 0 else missing * 60 / self.per_minute

    def reset_seconds(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.per_minute - self.available()) * 60 / self.per_minute)


@dataclass
class Decision:
    allowed: bool
    limit: str | None  # "requests" or "tokens" when refused
    retry_after: float
    headers: dict[str, str]


class KeyLimits:
    """The buckets of one key; a limit of 0 means unlimited."""

    def __init__(self, requests_per_minute: int, tokens_per_minute: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.requests = Bucket(requests_per_minute, clock=clock) if requests_per_minute else None
        self.tokens = Bucket(tokens_per_minute, clock=clock) if tokens_per_minute else None

    def admit(self) -> Decision:
        """Take one request if the key may make it now."""
        if self.requests is not None and self.requests.available() < 1:
            return Decision(False, "requests", self.requests.wait_for(1), self.headers())
        if self.tokens is not None and self.tokens.available() <= 0:
            return Decision(False, "tokens", self.tokens.wait_for(1), self.headers())
        if self.requests is not None:
            self.requests.take(1)
        return Decision(True, None, 0.0, self.headers())

    def charge_tokens(self, tokens: int) -> None:
        if self.tokens is not None:
            self.tokens.take(tokens)

    def headers(self) -> dict[str, str]:
        headers = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.per_minute))
                headers[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.available())))
                headers[f"x-ratelimit-reset-{name}"] = f"{bucket.reset_seconds():.3f}s"
        return headers


class RateLimiter:
    """Buckets per key name, kept across config reloads while the key's limits stay the same."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._keys: dict[tuple[str, int, int], KeyLimits] = {}

    def limits(self, name: str, requests_per_minute: int, tokens_per_minute: int) -> KeyLimits:
        key = (name, requests_per_minute, tokens_per_minute)
        if key not in self._keys:
            self._keys[key] = KeyLimits(requests_per_minute, tokens_per_minute, self.clock)
        return self._keys[key]
