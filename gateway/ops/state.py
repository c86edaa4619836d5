"""What outlives any one config: the holder of the current one, metrics, rate buckets, the gate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic

from gateway.ops.metrics import Metrics
from gateway.ops.ratelimit import RateLimiter
from gateway.ops.reload import ConfigHolder, S
from gateway.ops.shedding import Gate


@dataclass
class Gateway(Generic[S]):
    """The process's long-lived state; the HTTP edge reads it from `app.state.gateway`."""

    holder: ConfigHolder[S]
    metrics: Metrics
    limiter: RateLimiter = field(init=False)
    gate: Gate = field(init=False)
    # Under `serve --workers N`: asks the supervisor to reload every other worker too.
    reload_siblings: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.metrics)
        self.gate = Gate(self.metrics)
