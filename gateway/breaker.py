"""A circuit breaker: stop calling a dependency that keeps failing, probe it now and then, recover by itself.

Pure state with an injectable clock. Upstream LLM endpoints and the Redis store
each keep their own; this module is ground so both layers can use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


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
