"""Permutation self-consistency (Tang et al. 2024): several shuffled passes over one window, aggregated by Borda.

A listwise model favours passages by where they sit in the prompt. Asking m times
with the passages shuffled, and adding up Borda points, cancels much of that
bias and of the answers' noise. Pure functions: the shuffles are seeded by the
window's content, so the same window always gets the same passes (and cached
answers stay reproducible).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence


def shuffles(members: Sequence[int], passes: int) -> list[list[int]]:
    """`passes` orders of `members`: the given order first, then seeded shuffles."""
    if passes <= 1:  # every window of every miss asks: seeding a generator costs more than the rest
        return [list(members)]
    digest = hashlib.sha256(repr(list(members)).encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8]))
    orders = [list(members)]
    for _ in range(passes - 1):
        order = list(members)
        rng.shuffle(order)
        orders.append(order)
    return orders


def borda(rankings: Sequence[tuple[Sequence[int], int]], n: int) -> tuple[list[int], int]:
    """Aggregate rankings of range(n) into one.

    Each ranking is (order, named): `order` a permutation of range(n) whose first
    `named` entries the model placed (the rest it did not rank). A placed item at
    position p earns n - p points; the items a ranking did not place share the
    points left, equally. Items placed by at least one ranking come first (they
    are the `named` of the result), by points, ties by index.
    """
    points = [0.0] * n
    placed: set[int] = set()
    for order, named in rankings:
        for position, item in enumerate(order[:named]):
            points[item] += n - position
            placed.add(item)
        rest = order[named:]
        if rest:
            share = sum(n - p for p in range(named, n)) / len(rest)
            for item in rest:
                points[item] += share
    ranked = sorted(range(n), key=lambda i: (i not in placed, -points[i], i))
    return ranked, len(placed)
