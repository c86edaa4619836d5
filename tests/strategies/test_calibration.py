"""Calibration: pointwise grades fitted monotone to a listwise order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import PointwiseSettings
from gateway.strategies.base import CallStats
from gateway.strategies.calibration import Grader, calibrated_scores, isotonic_non_increasing
from tests.support.scripted import ENC, Model, number_in

GRADE = st.floats(min_value=0, max_value=1, allow_nan=False)


def test_pool_adjacent_violators() -> None:
    assert isotonic_non_increasing([0.9, 0.5, 0.7, 0.1]) == pytest.approx([0.9, 0.6, 0.6, 0.1])
    assert isotonic_non_increasing([0.1, 0.2, 0.3]) == pytest.approx([0.2, 0.2, 0.2])
    assert isotonic_non_increasing([0.3, 0.2, 0.1]) == [0.3, 0.2, 0.1]
    assert isotonic_non_increasing([]) == []


def test_weights_pull_the_pooled_value() -> None:
    assert isotonic_non_increasing([0.2, 0.8], [3, 1]) == pytest.approx([0.35, 0.35])


@given(st.lists(GRADE, max_size=30))
def test_the_fit_never_increases_and_keeps_the_mean(values: list[float]) -> None:
    fitted = isotonic_non_increasing(values)
    assert all(a >= b - 1e-12 for a, b in zip(fitted, fitted[1:], strict=False))
    if values:
        assert sum(fitted) == pytest.approx(sum(values))


@given(st.lists(st.one_of(GRADE, st.none()), min_size=1, max_size=25), st.integers(min_value=0, max_value=80))
def test_scores_are_monotone_in_range_and_the_tail_stays_below_the_head(grades: list[float | None],
                                                                        extra: int) -> None:
    n = len(grades) + extra
    scores = calibrated_scores(n, grades)
    if all(g is None for g in grades):
        assert scores is None
        return
    assert scores is not None and len(scores) == n
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(a >= b - 1e-12 for a, b in zip(scores, scores[1:], strict=False))
    k = len(grades)
    assert all(s <= scores[k - 1] for s in scores[k:])


def test_grades_that_agree_with_the_order_are_kept() -> None:
    assert calibrated_scores(3, [0.9, 0.6, 0.1]) == pytest.approx([0.9, 0.6, 0.1])


def test_an_ungraded_document_lies_between_its_graded_neighbours() -> None:
    assert calibrated_scores(4, [0.9, None, 0.5, None]) == pytest.approx([0.9, 0.7, 0.5, 0.5])


def test_documents_below_the_graded_top_decay_from_the_last_graded_score() -> None:
    scores = calibrated_scores(6, [0.8, 0.6])
    assert scores[:2] == pytest.approx([0.8, 0.6])
    assert scores[2:] == pytest.approx([0.6 * 4 / 5, 0.6 * 3 / 5, 0.6 * 2 / 5, 0.6 / 5])


def grader(model: Model) -> Grader:
    return Grader(model.client(), ENC, lambda i: [{"role": "user", "content": f"<passage>\ndoc {i}\n</passage>"}],
                  PointwiseSettings(), CallStats())


@pytest.mark.anyio
async def test_a_grader_grades_each_document_once() -> None:
    model = Model(lambda text: number_in(text) % 4)
    g = grader(model)
    g.start([1, 2])
    g.start([2, 3])
    grades = await g.grades([1, 2, 3])
    assert len(model.calls) == 3 and all(c.kind == "pointwise" for c in model.calls)
    assert grades[3] == pytest.approx((0.05 * 2 + 0.9 * 3) / 0.95 / 3)
    await g.close()


@pytest.mark.anyio
async def test_without_start_documents_not_begun_get_no_grade_and_no_call() -> None:
    model = Model(lambda text: 3)
    g = grader(model)
    g.start([0])
    grades = await g.grades([0, 1], start=False)
    assert grades[1] is None and grades[0] is not None and len(model.calls) == 1
    await g.close()


@pytest.mark.anyio
async def test_close_cancels_grading_nobody_waits_for() -> None:
    model = Model(lambda text: 3, delay=5)
    g = grader(model)
    g.start(range(4))
    await asyncio.sleep(0)
    await asyncio.wait_for(g.close(), 1)
    assert all(task.cancelled() for task in g.tasks.values())


@pytest.mark.anyio
async def test_a_grader_grades_no_more_documents_than_its_cap() -> None:
    model = Model(lambda text: 3)
    g = Grader(model.client(), ENC, lambda i: [{"role": "user", "content": f"<passage>\ndoc {i}\n</passage>"}],
               PointwiseSettings(), CallStats(), cap=2)
    g.start([0, 1])
    grades = await g.grades([5, 0, 1])
    assert grades[5] is None and len(model.calls) == 2  # what the token estimate reserved for, no more
    await g.close()
