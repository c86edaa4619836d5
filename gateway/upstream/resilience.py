"""Retry and budget policy toward upstream LLMs. Pure state, injectable clock.

One retry loop lives in the gateway (the SDK's are off); these pieces decide
how long to wait and whether a retry is affordable. Whether an upstream is
worth calling at all is the circuit breaker's call (`gateway.breaker`, shared
with the Redis store).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from gateway.breaker import CircuitBreaker

__all__ = ["CircuitBreaker", "NeverOpen", "RetryBudget", "backoff_delay", "parse_retry_after"]


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (attempt 0 = first retry)."""
    return rand() * min(cap, base * 2**attempt)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = moment - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay


class RetryBudget:
    """Retries may add at most `ratio` to the calls made, so an outage is not amplified.

    Each first attempt deposits `ratio` tokens; each retry withdraws one. A small
    reserve lets an idle process retry its first few failures.
    """

    def __init__(self, ratio: float, reserve: float = 10.0) -> None:
        self.ratio = ratio
        self.reserve = reserve
        self.tokens = reserve

    def record_call(self) -> None:
        self.tokens = min(self.reserve + 1000 * self.ratio, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        if self.tokens >= 1 - 1e-9:  # ten deposits of 0.1 make one retry, despite float rounding
            self.tokens -= 1
            return True
        return False


class NeverOpen(CircuitBreaker):
    """The breaker of an in-process model: slowness there is load, not an outage, so it never opens."""

    def __init__(self) -> None:
        super().__init__(threshold=1, cooldown=1.0)

    def record_failure(self) -> None:
        self.failures += 1
