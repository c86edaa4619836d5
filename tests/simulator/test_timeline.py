"""Sequential rounds and peak concurrency, read off a call timeline."""

from __future__ import annotations

from simulator.timeline import peak_concurrency, rounds


def calls(*spans: tuple[float, float]) -> list[dict[str, float]]:
    return [{"start": s, "end": e} for s, e in spans]


def test_concurrent_calls_are_one_round() -> None:
    assert rounds(calls((0, 1), (0.01, 1.2), (0.02, 0.9))) == 1


def test_a_call_after_another_ended_is_a_new_round() -> None:
    # A pivot window, then three concurrent windows, then a final one: three rounds.
    timeline = calls((0, 1), (1.1, 2), (1.1, 2.5), (1.12, 2.2), (2.6, 3.5))
    assert rounds(timeline) == 3
    assert peak_concurrency(timeline) == 3


def test_the_longest_chain_counts_not_the_number_of_calls() -> None:
    # A long call beside a chain of three short ones.
    assert rounds(calls((0, 3), (0, 1), (1.5, 2), (2.1, 2.9))) == 3
    assert rounds(calls((0, 1), (0.5, 1.5), (1.2, 2))) == 2
    assert rounds([]) == 0 and peak_concurrency([]) == 0


def test_a_hundred_way_fan_out_is_one_round() -> None:
    assert rounds(calls(*((i * 0.001, 1 + i * 0.01) for i in range(100)))) == 1
