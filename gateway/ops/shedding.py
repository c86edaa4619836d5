"""Load shedding: a bound on rerank requests in flight, past which requests are refused at once."""

from __future__ import annotations

from gateway.errors import Overloaded
from gateway.ops.metrics import Metrics


class Gate:
    """At most `limit` rerank requests in flight; the next one is shed with 503 at once."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.in_flight = 0

    def enter(self, limit: int) -> None:
        if self.in_flight >= limit:
            self.metrics.shed.inc()
            raise Overloaded(f"too many requests in flight ({limit}); retry shortly", retry_after=1)
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1
        self.metrics.in_flight.set(self.in_flight)
