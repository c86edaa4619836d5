"""Top-down partitioning: the top of a full sort in at most three rounds, each round's windows at once."""

from __future__ import annotations

import random

import pytest

from gateway.config import ListwiseSettings, PointwiseSettings
from gateway.errors import CallCut, UpstreamError
from gateway.strategies.rankers import WindowOrder
from gateway.strategies.tdpart import TopDownFirst, TopDownPartitioning, chunks, interleave, split_at_pivot
from tests.support.scripted import Model, number_in, prompt, task


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


def test_helpers() -> None:
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert interleave([[1, 2, 3], [4], [5, 6]]) == [1, 4, 5, 2, 6, 3]
    window = [10, 11, 12, 99]  # 99 is the pivot
    assert split_at_pivot(window, WindowOrder([2, 3, 0, 1], 4, True), 99) == ([12], [10, 11])
    # The pivot not among what the model named: everything named is above it.
    assert split_at_pivot(window, WindowOrder([1, 0, 2, 3], 2, True), 99) == ([11, 10], [12])


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("cls", [TopDownPartitioning, TopDownFirst])
async def test_the_top_ten_equals_a_full_sort_in_three_rounds(seed: int, cls: type[TopDownPartitioning]) -> None:
    docs, ideal = shuffled_docs(seed)
    model = Model(relevance, delay=0.02)
    ranking = await tdpart(cls, calibrate_top=0).rank(model.client(), task(docs))
    assert ranking.order[:10] == ideal[:10]
    assert sorted(ranking.order) == list(range(100))
    # Round 1 one window, round 2 the other 80 documents in ceil(80 / 19) = 5 windows, round 3 one.
    assert model.rounds() == 3 and len(model.calls) == ranking.stats.calls == 7


@pytest.mark.anyio
async def test_windows_of_the_second_round_run_at_once_and_carry_the_pivot_last() -> None:
    docs, _ = shuffled_docs(1)
    model = Model(relevance, delay=0.02)
    await tdpart(calibrate_top=0).rank(model.client(), task(docs))
    first, *middle, last = sorted(model.calls, key=lambda c: c.start)
    assert [c.passages for c in middle] == [20, 20, 20, 20, 5]
    assert len({c.request.messages[-1]["content"].split("\n")[-3] for c in middle}) == 1  # the same last passage
    assert min(c.end for c in middle) >= max(c.start for c in middle)  # all in flight together
    # Generated permutations of round 2 only need the documents above the pivot.
    assert all(c.request.max_tokens < first.request.max_tokens for c in middle)


@pytest.mark.anyio
async def test_no_candidate_beyond_the_first_window_means_no_third_round() -> None:
    docs = [f"doc {99 - i}" for i in range(100)]  # already in order
    model = Model(relevance, delay=0.02)
    ranking = await tdpart(calibrate_top=0).rank(model.client(), task(docs))
    assert ranking.order[:20] == list(range(20)) and model.rounds() == 2 and len(model.calls) == 6


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
    assert model.rounds("first") == 3 and model.rounds() == 3  # grading waits for no round
    assert len(graded) <= 30  # the likely top, not every candidate
    assert all(a >= b for a, b in zip(ranking.scores, ranking.scores[1:], strict=False))


@pytest.mark.anyio
async def test_more_candidates_than_the_last_window_holds_stay_above_the_pivot() -> None:
    # Every document beyond the first window beats the first window's: 80 candidates.
    docs = [f"doc {i}" for i in range(20)] + [f"doc {i}" for i in range(99, 19, -1)]
    model = Model(relevance, delay=0.02)
    ranking = await tdpart(calibrate_top=0, final_window=40).rank(model.client(), task(docs))
    assert model.calls[-1].passages == 40 and model.rounds() == 3
    numbers = [number_in(docs[i]) for i in ranking.order]
    assert numbers[:40] == sorted(numbers[:40], reverse=True)  # the last window, in order
    # 9 candidates from the first window and 80 from the others, all above the pivot (doc 10).
    assert numbers[89] == 10 and min(numbers[:89]) > 10


def failing_at(call: int, error: Exception) -> Model:
    """A model whose `call`-th call (counting from 1) raises `error`."""
    model = Model(relevance)
    model.fail = lambda request: error if len(model.calls) == call else None
    return model


@pytest.mark.anyio
async def test_a_chunk_the_deadline_cut_goes_below_in_the_callers_order() -> None:
    docs, _ = shuffled_docs(6)
    model = failing_at(3, CallCut("deadline"))  # the second chunk
    ranking = await tdpart(calibrate_top=0).rank(model.client(), task(docs))
    assert ranking.stats.cut_calls == 1 and ranking.unranked == 19
    assert ranking.order[-19:] == list(range(39, 58))  # the second chunk, in the caller's order, last


@pytest.mark.anyio
async def test_a_cut_first_window_leaves_nothing_ranked() -> None:
    model = Model(relevance, fail=lambda request: CallCut("deadline"))
    ranking = await tdpart(calibrate_top=0).rank(model.client(), task(shuffled_docs(7)[0]))
    assert ranking.unranked == 100 and ranking.order == list(range(100))


@pytest.mark.anyio
async def test_a_failed_first_window_still_partitions_around_the_callers_tenth() -> None:
    docs, ideal = shuffled_docs(8)
    model = failing_at(1, UpstreamError("boom"))
    ranking = await tdpart(calibrate_top=0).rank(model.client(), task(docs))
    assert ranking.stats.failed_calls == 1 and ranking.unranked == 0
    assert sorted(ranking.order) == list(range(100))
