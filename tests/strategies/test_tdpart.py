"""Top-down partitioning: the top of a full sort in two rounds (the paper's order: three), windows at once."""

from __future__ import annotations

import random

import pytest

from gateway.config import ListwiseSettings, PointwiseSettings
from gateway.errors import CallCut, UpstreamError
from gateway.strategies.rankers import WindowOrder
from gateway.strategies.tdpart import (
    Layout,
    TopDownFirst,
    TopDownPartitioning,
    anchor_positions,
    choose_pivot,
    chunks,
    interleave,
    split_at_pivot,
)
from tests.support.scripted import Model, number_in, prompt, task

PAPER = {"anchors": 0}  # the paper's order: the chunks wait for the first window's pivot


def tdpart(cls: type[TopDownPartitioning] = TopDownPartitioning, **settings: object) -> TopDownPartitioning:
    return cls(ListwiseSettings(**settings), prompt("listwise"), PointwiseSettings(), prompt("pointwise"))


def shuffled_docs(seed: int, n: int = 100) -> tuple[list[str], list[int]]:
    """Documents whose number is their relevance, in a shuffled (first-stage) order; and the ideal order."""
    numbers = list(range(n))
    random.Random(seed).shuffle(numbers)
    docs = [f"doc {k}" for k in numbers]
    ideal = sorted(range(n), key=lambda i: -numbers[i])
    return docs, ideal


def relevance(text: str) -> float:
    return number_in(text) / 33


def window_calls(model: Model) -> list:
    return sorted((c for c in model.calls if c.kind in ("listwise", "first")), key=lambda c: c.start)


def test_helpers() -> None:
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert interleave([[1, 2, 3], [4], [5, 6]]) == [1, 4, 5, 2, 6, 3]
    window = [10, 11, 12, 99]  # 99 is the pivot
    assert split_at_pivot(window, WindowOrder([2, 3, 0, 1], 4, True), 99) == ([12], [10, 11])
    # The pivot not among what the model named: everything named is above it.
    assert split_at_pivot(window, WindowOrder([1, 0, 2, 3], 2, True), 99) == ([11, 10], [12])


def test_anchors_are_spread_from_the_pivots_rank_to_the_end_of_the_first_window() -> None:
    assert anchor_positions(20, 10, 4) == [9, 12, 16, 19]
    assert anchor_positions(20, 10, 1) == [19]
    assert anchor_positions(20, 10, 0) == []
    assert anchor_positions(20, 19, 4) == [18, 19]  # no more than the places at or below the pivot's rank


def test_the_pivot_is_the_first_anchor_ranked_at_the_pivots_rank_or_below() -> None:
    ranked = [5, 3, 9, 1, 7, 0, 2, 4, 6, 8]
    assert choose_pivot(ranked, [1, 4, 8], 5) == 4  # 1 ranks 4th (above), 4 ranks 8th, 8 ranks 10th
    assert choose_pivot(ranked, [1, 3], 5) == 1  # every anchor above: the lowest of them


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("cls", [TopDownPartitioning, TopDownFirst])
async def test_the_top_ten_equals_a_full_sort_in_two_rounds(seed: int, cls: type[TopDownPartitioning]) -> None:
    docs, ideal = shuffled_docs(seed)
    model = Model(relevance, delay=0.02)
    ranking = await tdpart(cls, calibrate_top=0).rank(model.client(), task(docs))
    assert ranking.order[:10] == ideal[:10]
    assert sorted(ranking.order) == list(range(100))
    # Round 1: the first window and the other 80 documents in 80 / (20 - 4 anchors) = 5 windows; round 2: one.
    assert model.rounds() == 2 and len(model.calls) == ranking.stats.calls == 7


@pytest.mark.anyio
@pytest.mark.parametrize("cls", [TopDownPartitioning, TopDownFirst])
async def test_in_the_papers_order_the_chunks_wait_for_the_pivot_three_rounds(cls: type[TopDownPartitioning]) -> None:
    docs, ideal = shuffled_docs(11)
    model = Model(relevance, delay=0.02)
    ranking = await tdpart(cls, calibrate_top=0, **PAPER).rank(model.client(), task(docs))
    assert ranking.order[:10] == ideal[:10]
    # Round 1 one window, round 2 the other 80 documents in ceil(80 / 19) = 5 windows, round 3 one.
    assert model.rounds() == 3 and len(model.calls) == 7


@pytest.mark.anyio
async def test_the_chunks_run_with_the_first_window_each_closed_by_the_same_anchors() -> None:
    docs, _ = shuffled_docs(1)
    model = Model(relevance, delay=0.02)
    await tdpart(calibrate_top=0).rank(model.client(), task(docs))
    *together, last = window_calls(model)
    chunked = together[1:]  # the first window, then the chunks
    assert [c.passages for c in together] == [20] * 6
    assert min(c.end for c in together) >= max(c.start for c in together)  # all in flight together
    anchors = [docs[i] for i in anchor_positions(20, 10, 4)]
    for call in chunked:
        lines = call.request.messages[-1]["content"].split("\n\n")[1].split("\n")
        assert [line.split("] ", 1)[1] for line in lines[-4:]] == anchors
    # Generated permutations of the first round need the documents above the pivot, and the anchors.
    assert all(c.request.max_tokens < last.request.max_tokens for c in together)


@pytest.mark.anyio
async def test_in_the_papers_order_second_round_windows_carry_the_pivot_last() -> None:
    docs, _ = shuffled_docs(1)
    model = Model(relevance, delay=0.02)
    await tdpart(calibrate_top=0, **PAPER).rank(model.client(), task(docs))
    first, *middle, last = window_calls(model)
    assert [c.passages for c in middle] == [20, 20, 20, 20, 5]
    assert len({c.request.messages[-1]["content"].split("\n")[-3] for c in middle}) == 1  # the same last passage
    assert min(c.end for c in middle) >= max(c.start for c in middle)
    assert all(c.request.max_tokens < first.request.max_tokens for c in middle)


@pytest.mark.anyio
@pytest.mark.parametrize(("settings", "rounds"), [({}, 1), (PAPER, 2)])
async def test_no_candidate_beyond_the_first_window_means_no_last_round(settings: dict, rounds: int) -> None:
    docs = [f"doc {99 - i}" for i in range(100)]  # already in order
    model = Model(relevance, delay=0.02)
    ranking = await tdpart(calibrate_top=0, **settings).rank(model.client(), task(docs))
    assert ranking.order[:20] == list(range(20)) and model.rounds() == rounds and len(model.calls) == 6


def anchors_best_docs() -> tuple[list[str], list[int]]:
    """The first window's anchors are the four best documents, its others the worst; the best of the
    rest spread over the chunks (chunk i holds 95 - i, 90 - i, ...)."""
    positions = anchor_positions(20, 10, 4)
    others = iter(range(16))
    first = [99 - positions.index(i) if i in positions else next(others) for i in range(20)]
    rest = [95 - i - 5 * k for i in range(5) for k in range(16)]
    numbers = first + rest
    return [f"doc {k}" for k in numbers], sorted(range(100), key=lambda i: -numbers[i])


@pytest.mark.anyio
@pytest.mark.parametrize("cls", [TopDownPartitioning, TopDownFirst])
async def test_when_every_anchor_ranks_above_the_pivot_one_more_round_keeps_the_top_exact(
        cls: type[TopDownPartitioning]) -> None:
    docs, ideal = anchors_best_docs()
    model = Model(relevance, delay=0.02)
    strategy = tdpart(cls, calibrate_top=0)
    ranking = await strategy.rank(model.client(), task(docs))
    assert ranking.order[:10] == ideal[:10]
    assert model.rounds() == 3
    # Each chunk's best five below the lowest anchor (10 - 2 - its index 3) meet the first window's
    # tenth: 25 documents in two windows. The cost bound holds that round too.
    assert len(window_calls(model)) == 1 + 5 + 2 + 1
    assert len(window_calls(model)) <= len(strategy.windows(100, strategy.settings))


@pytest.mark.anyio
async def test_twenty_documents_or_fewer_are_one_window() -> None:
    docs, ideal = shuffled_docs(3, n=20)
    model = Model(relevance)
    ranking = await tdpart(calibrate_top=0).rank(model.client(), task(docs))
    assert ranking.order == ideal and len(model.calls) == 1


@pytest.mark.anyio
async def test_first_windows_are_single_token_calls() -> None:
    docs, _ = shuffled_docs(2)
    model = Model(relevance)
    await tdpart(TopDownFirst, calibrate_top=0).rank(model.client(), task(docs))
    assert model.calls and all(c.kind == "first" for c in model.calls)
    assert all(c.request.max_tokens == 1 and c.request.top_logprobs == 20 for c in model.calls)


@pytest.mark.anyio
async def test_first_falls_back_to_a_permutation_for_a_window_answered_without_logprobs() -> None:
    docs, ideal = shuffled_docs(4)
    model = Model(relevance, logprobs=False)
    ranking = await tdpart(TopDownFirst, calibrate_top=0).rank(model.client(), task(docs))
    assert ranking.order[:10] == ideal[:10]
    assert ranking.stats.first_fallbacks == len(model.of("first")) == len(model.of("listwise")) == 7


@pytest.mark.anyio
async def test_a_model_known_to_lack_logprobs_gets_permutations_at_once() -> None:
    docs, _ = shuffled_docs(4)
    model = Model(relevance, logprobs=False)
    await tdpart(TopDownFirst).rank(model.client(), task(docs, logprobs=False))
    assert not model.of("first") and not model.of("pointwise") and len(model.of("listwise")) == 7


@pytest.mark.anyio
async def test_calibration_grades_the_top_without_an_extra_round() -> None:
    docs, ideal = shuffled_docs(5)
    model = Model(relevance, delay=0.02)
    ranking = await tdpart(TopDownFirst).rank(model.client(), task(docs))
    assert ranking.score_type == "calibrated" and ranking.order[:10] == ideal[:10]
    graded = {c.request.messages[-1]["content"] for c in model.of("pointwise")}
    assert len(graded) == len(model.of("pointwise"))  # each document graded at most once
    assert model.rounds("first") == 2 and model.rounds() == 2  # grading waits for no round
    # The likely top: the top 20, the pivot and each chunk's best three at most, not every candidate.
    assert len(graded) <= 20 + 1 + 5 * 3
    assert all(a >= b for a, b in zip(ranking.scores, ranking.scores[1:], strict=False))


@pytest.mark.anyio
@pytest.mark.parametrize(("settings", "pivot_at"), [({}, 90), (PAPER, 89)])
async def test_more_candidates_than_the_last_window_holds_stay_above_the_pivot(settings: dict,
                                                                               pivot_at: int) -> None:
    # Every document beyond the first window beats the first window's: 80 candidates.
    docs = [f"doc {i}" for i in range(20)] + [f"doc {i}" for i in range(99, 19, -1)]
    model = Model(relevance, delay=0.02)
    ranking = await tdpart(calibrate_top=0, final_window=40, **settings).rank(model.client(), task(docs))
    assert model.calls[-1].passages == 40
    numbers = [number_in(docs[i]) for i in ranking.order]
    assert numbers[:40] == sorted(numbers[:40], reverse=True)  # the last window, in order
    # The pivot is the first window's 10th (doc 10) in the paper's order; with anchors (docs 9, 12,
    # 16, 19, ranked 11th, 8th, 4th, 1st) the first at rank 10 or below: doc 9. Above it: the 80
    # others and the first window's documents it ranked higher.
    pivot = number_in(docs[ranking.order[pivot_at]])
    assert pivot == (9 if not settings else 10) and min(numbers[:pivot_at]) > pivot


def failing_at(call: int, error: Exception) -> Model:
    """A model whose `call`-th call (counting from 1) raises `error`."""
    model = Model(relevance)
    model.fail = lambda request: error if len(model.calls) == call else None
    return model


@pytest.mark.anyio
@pytest.mark.parametrize(("settings", "chunk"), [({}, range(36, 52)), (PAPER, range(39, 58))])
async def test_a_chunk_the_deadline_cut_goes_below_in_the_callers_order(settings: dict, chunk: range) -> None:
    docs, _ = shuffled_docs(6)
    model = failing_at(3, CallCut("deadline"))  # the second chunk
    ranking = await tdpart(calibrate_top=0, **settings).rank(model.client(), task(docs))
    assert ranking.stats.cut_calls == 1 and ranking.unranked == len(chunk)
    assert ranking.order[-len(chunk):] == list(chunk)  # the second chunk, in the caller's order, last


@pytest.mark.anyio
@pytest.mark.parametrize("settings", [{}, PAPER])
async def test_a_cut_first_window_leaves_nothing_ranked(settings: dict) -> None:
    model = Model(relevance, fail=lambda request: CallCut("deadline"))
    ranking = await tdpart(calibrate_top=0, **settings).rank(model.client(), task(shuffled_docs(7)[0]))
    assert ranking.unranked == 100 and ranking.order == list(range(100))


@pytest.mark.anyio
@pytest.mark.parametrize("settings", [{}, PAPER])
async def test_a_failed_first_window_still_partitions_around_the_callers_tenth(settings: dict) -> None:
    docs, ideal = shuffled_docs(8)
    model = failing_at(1, UpstreamError("boom"))
    ranking = await tdpart(calibrate_top=0, **settings).rank(model.client(), task(docs))
    assert ranking.stats.failed_calls == 1 and ranking.unranked == 0
    assert sorted(ranking.order) == list(range(100))
    # The first window keeps the caller's order: its 10th document (an anchor, or the pivot) splits
    # it, the rest of it follows in that order.
    pivot = ranking.order.index(9)
    assert ranking.order[pivot + 1:pivot + 11] == list(range(10, 20))


@pytest.mark.anyio
@pytest.mark.parametrize("n", [21, 25, 39, 57, 100])
@pytest.mark.parametrize("anchors", [1, 2, 4, 8])
@pytest.mark.parametrize("seed", range(3))
async def test_any_size_and_any_anchors_keep_the_top_exact_within_the_cost_bound(n: int, anchors: int,
                                                                                 seed: int) -> None:
    docs, ideal = shuffled_docs(seed, n)
    model = Model(relevance, delay=0.001)
    strategy = tdpart(calibrate_top=0, anchors=anchors)
    ranking = await strategy.rank(model.client(), task(docs))
    assert ranking.order[:9] == ideal[:9] and sorted(ranking.order) == list(range(n))
    assert model.rounds() <= 3
    assert len(window_calls(model)) <= len(strategy.windows(n, strategy.settings))


@pytest.mark.parametrize("n", [20, 21, 57, 100])
@pytest.mark.parametrize("anchors", [0, 1, 4])
def test_the_cost_bound_and_the_grading_cap_read_the_layout_the_rounds_follow(n: int, anchors: int) -> None:
    settings = ListwiseSettings(anchors=anchors)
    layout = Layout.of(n, settings)
    windows = tdpart(anchors=anchors).windows(n, settings)
    if n <= layout.window:
        assert len(windows) == 1 and not layout.groups
        return
    # The first window, one per chunk, the extra round's (anchors only), the last round.
    assert len(windows) == 1 + len(layout.groups) + len(layout.again()) + 1
    assert sorted(d for g in layout.groups for d in g) == list(range(layout.window, n))
    assert all(len(g) + max(len(layout.anchors), 1) <= layout.window for g in layout.groups)
