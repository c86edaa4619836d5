"""The speed model: lognormal time to first token, input and output costs, presets that match the notes."""

from __future__ import annotations

import random
import statistics

import pytest

from simulator.speed import PRESETS, Speed


def test_ttft_draws_have_the_configured_median_and_p95() -> None:
    speed = PRESETS["gpt-4-turbo"]
    rng = random.Random(1)
    draws = sorted(speed.draw_ttft(rng) for _ in range(20000))
    assert statistics.median(draws) == pytest.approx(0.8, rel=0.05)
    assert draws[int(0.95 * len(draws))] == pytest.approx(4.0, rel=0.1)
    assert speed.ttft_quantile(0.5) == pytest.approx(0.8) and speed.ttft_quantile(0.95) == pytest.approx(4.0)
    assert draws[0] == speed.ttft_quantile(0.001) == pytest.approx(0.4)  # the floor: half the median


def test_wall_time_is_ttft_plus_input_plus_output_scaled() -> None:
    speed = Speed(ttft=0.8, p95=4.0, tps=35, input=0.1, scale=0.5)
    assert speed.duration(0.8, 2400, 80) == pytest.approx(0.5 * (0.8 + 0.24 + 80 / 35))


def test_no_jitter_when_p95_equals_the_median() -> None:
    steady = PRESETS["steady"]
    assert {steady.draw_ttft(random.Random(s)) for s in range(5)} == {0.1}


def test_a_rankgpt_window_and_a_one_token_answer_match_the_notes_at_the_median() -> None:
    """The notes: one RankGPT window (~2.4k in, ~80 out) is about 3.1 s, a 1-token answer about 0.85 s."""
    turbo = PRESETS["gpt-4-turbo"]
    window = turbo.duration(turbo.ttft, 2400, 80)
    one_token = turbo.duration(turbo.ttft, 300, 1)
    assert 2.8 < window < 3.6 and 0.8 < one_token < 0.95
    for name in ("gpt-4o", "gpt-4o-mini"):
        assert PRESETS[name].duration(PRESETS[name].ttft, 2400, 80) < window
