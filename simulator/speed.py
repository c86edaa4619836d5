"""How long a hosted model takes to answer one call.

    wall = scale * (TTFT + input * prompt_tokens / 1000 + completion_tokens / tps)

TTFT (time to first token) is lognormal with the given median and 95th
percentile, drawn independently per call (so a hedged duplicate call gets its
own draw), and never below half the median: a hosted model has a floor (network,
prefill) that a pure lognormal's left tail lacks (with p95 = 5x the median its
5th percentile would be a fifth of it). The floor moves neither the median nor
the p95. Everything else is deterministic. The presets follow
/work/shared/notes/hosted-latency-and-scores.md; `scale` shrinks or stretches
every duration alike, so a benchmark can keep a schedule's shape at a tenth of
its time.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

_Z95 = statistics.NormalDist().inv_cdf(0.95)
_FLOOR = 0.5  # of the median


@dataclass(frozen=True)
class Speed:
    ttft: float  # median seconds to the first token
    p95: float  # 95th percentile of the same; == ttft: no jitter
    tps: float  # output tokens per second
    input: float  # seconds per 1000 prompt tokens
    scale: float = 1.0

    @property
    def sigma(self) -> float:
        """The lognormal's shape: p95 = median * exp(z95 * sigma)."""
        return math.log(self.p95 / self.ttft) / _Z95 if self.p95 > self.ttft > 0 else 0.0

    def draw_ttft(self, rng: random.Random) -> float:
        if self.sigma == 0.0:
            return self.ttft
        return max(_FLOOR * self.ttft, rng.lognormvariate(math.log(self.ttft), self.sigma))

    def ttft_quantile(self, q: float) -> float:
        if self.sigma == 0.0:
            return self.ttft
        return max(_FLOOR * self.ttft, self.ttft * math.exp(self.sigma * statistics.NormalDist().inv_cdf(q)))

    def duration(self, ttft: float, prompt_tokens: int, completion_tokens: int) -> float:
        return self.scale * (ttft + self.input * prompt_tokens / 1000 + completion_tokens / self.tps)


# gpt-4-turbo: 0.8 s median TTFT, p95 5x the median (the middle of the 4-6x the notes give),
# 35 tok/s (measured 32-41). The 4o family: ~0.45 s median, 60-130 tok/s; mini: 0.7 s p50, 4 s p95,
# 30-60 tok/s. Input cost +0.1 s per 1k tokens for all: the only figure the notes have.
PRESETS: dict[str, Speed] = {
    "gpt-4-turbo": Speed(ttft=0.8, p95=4.0, tps=35.0, input=0.1),
    "gpt-4o": Speed(ttft=0.45, p95=2.25, tps=90.0, input=0.1),
    "gpt-4o-mini": Speed(ttft=0.7, p95=4.0, tps=45.0, input=0.1),
    # For tests: answers in about a millisecond.
    "instant": Speed(ttft=0.001, p95=0.003, tps=1e6, input=0.0),
    # For tests that count sequential rounds: every call takes 0.1 s, so calls launched together
    # overlap and a call that waited for another starts after it ended.
    "steady": Speed(ttft=0.1, p95=0.1, tps=1e6, input=0.0),
}


def preset_for(model: str) -> str | None:
    """The preset a model name selects: "sim-gpt-4o", "openai/gpt-4o-mini-2024-07-18" (longest prefix)."""
    name = model.rsplit("/", 1)[-1].lower().removeprefix("sim-")
    return max((p for p in PRESETS if name == p or name.startswith(p + "-")), key=len, default=None)
