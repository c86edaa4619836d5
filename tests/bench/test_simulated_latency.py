"""The calibration benchmark runs (at a thousandth of the time) and prints its three cases."""

from __future__ import annotations

import pytest

from bench import simulated_latency


def test_it_prints_the_three_cases_beside_the_notes(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulated_latency.main(["--repeats", "1", "--scale", "0.001"]) == 0
    out = capsys.readouterr().out
    for case in ("RankGPT window", "1-token answer", "100-way fan-out"):
        assert case in out
    assert "~3.1 s" in out and "p99 of TTFT" in out
