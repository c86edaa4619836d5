"""The calibration benchmark runs (a thousandth of the time, a 10-way fan-out) and prints its three cases."""

from __future__ import annotations

import pytest

from bench import simulated_latency


def test_it_prints_the_three_cases_beside_the_notes(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulated_latency.main(["--repeat", "1", "--scale", "0.001", "--fan-out", "10"]) == 0
    out = capsys.readouterr().out
    for case in ("listwise window", "1-token answer", "10-way fan-out"):
        assert case in out
    assert "~3.1 s" in out and "p99 of TTFT" in out
