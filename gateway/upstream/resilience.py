"""Retry, budget and circuit-breaker policy toward upstream LLMs. Pure state, injectable clock.

One retry loop lives in the gateway (the SDK's are off); these pieces decide
how long to wait, whether a retry is affordable, and whether an upstream is
worth calling at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]


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


class CircuitBreaker:
    """Closed → open after `threshold` consecutive failures; after `cooldown` one probe is let through.

    A successful probe closes the breaker; a failed one opens it again for
    twice as long (up to `max_cooldown`).
    """

    def __init__(self, threshold: int, cooldown: float, max_cooldown: float = 60.0,
                 clock: Clock = time.monotonic) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.clock = clock
        self.failures = 0
        self.cooldown = cooldown
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        """May a call go upstream now? In half-open state only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.probing:
            self.probing = True
            return True
        return False

    def retry_after(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown - self.clock())

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False
        self.cooldown = self.base_cooldown

    def record_failure(self) -> None:
        if self.probing:  # the probe failed: stay open, for longer
            self.probing = False
            self.cooldown = min(self.max_cooldown, self.cooldown * 2)
            self.opened_at = self.clock()
            return
        self.failures += 1
        if self.failures >= self.threshold and self.opened_at is None:
            self.opened_at = self.clock()

    def release_probe(self) -> None:
        """A probe that ended without a verdict (cancelled) frees the slot."""
        self.probing = False


class NeverOpen(CircuitBreaker):
    """The breaker of an in-process model: slowness there is load, not an outage, so it never opens."""

    def __init__(self) -> None:
        super().__init__(threshold=1, cooldown=1.0)

    def record_failure(self) -> None:
        self.failures += 1
