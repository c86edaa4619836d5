"""Scores from positions, and how far an answer moved the caller's order (Kendall's tau)."""

from __future__ import annotations

import random

import pytest

from gateway.strategies.scoring import cached_kendall_tau, fuse, kendall_tau, linear_scores


def pairwise_tau(order: list[int]) -> float:
    """The definition: concordant minus discordant pairs over all pairs."""
    n = len(order)
    discordant = sum(1 for i in range(n) for j in range(i + 1, n) if order[i] > order[j])
    return 1 - 4 * discordant / (n * (n - 1))


def test_tau_is_one_when_nothing_moved_and_minus_one_when_reversed() -> None:
    assert kendall_tau(list(range(100))) == 1.0
    assert kendall_tau(list(range(99, -1, -1))) == -1.0
    assert kendall_tau([0]) == kendall_tau([]) == 1.0


@pytest.mark.parametrize("n", [2, 3, 7, 100, 301])
def test_tau_counts_the_discordant_pairs_of_any_order(n: int) -> None:
    rng = random.Random(n)
    for _ in range(20):
        order = list(range(n))
        rng.shuffle(order)
        assert kendall_tau(order) == pytest.approx(pairwise_tau(order), abs=1e-12)


def test_linear_scores_fall_from_one_to_zero() -> None:
    assert linear_scores(1) == [1.0]
    assert linear_scores(5) == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_fusion_blends_with_the_callers_order_and_stays_sorted() -> None:
    order, scores = fuse([2, 0, 1], [1.0, 0.5, 0.0], 0.5)
    assert scores == sorted(scores, reverse=True)
    assert fuse([2, 0, 1], [1.0, 0.5, 0.0], 1.0) == ([2, 0, 1], [1.0, 0.5, 0.0])


def test_the_remembered_tau_is_the_counted_one_and_its_memory_is_bounded() -> None:
    rng = random.Random(11)
    for _ in range(50):
        order = list(range(100))
        rng.shuffle(order)
        assert cached_kendall_tau(tuple(order)) == kendall_tau(order)
    assert cached_kendall_tau.cache_info().maxsize == 1024
