"""Rankings as other replicas read them from Redis: what a score means travels with it."""

from __future__ import annotations

import pytest

from gateway.strategies import wire
from gateway.strategies.base import CallStats, Ranking


@pytest.mark.parametrize("score_type", ["calibrated", "rank"])
def test_a_ranking_comes_back_with_its_score_type(score_type: str) -> None:
    ranking = Ranking([1, 0, 2], [0.9, 0.4, 0.1], CallStats(calls=3, prompt_tokens=120), score_type)
    back = wire.decode(wire.encode(wire.ranking_fields(ranking)))["ranking"]
    assert (back.order, back.scores, back.score_type, back.stats.calls) == ([1, 0, 2], [0.9, 0.4, 0.1],
                                                                             score_type, 3)


@pytest.mark.parametrize("change", [{"score_type": "probability"}, {"score_type": None}, {"v": 1}])
def test_values_of_another_format_are_refused(change: dict[str, object]) -> None:
    fields = {**wire.ranking_fields(Ranking([0], [1.0], CallStats(), "rank")), **change}
    with pytest.raises(ValueError):
        wire.decode(wire.encode(fields))
