"""Knobs: parsed from a path segment, layered over server defaults and the model name's preset."""

from __future__ import annotations

import pytest

from simulator.knobs import KnobError, Knobs, parse, resolve
from simulator.speed import PRESETS, preset_for


def test_a_spec_parses_into_typed_values() -> None:
    assert parse("noise=0.2, bias=-0.5,seed=7,logprobs=0,usage=on") == {
        "noise": 0.2, "bias": -0.5, "seed": 7, "logprobs": False, "usage": True,
    }
    assert parse("") == {}


@pytest.mark.parametrize("spec", ["nosie=0.2", "noise", "noise=1.5", "noise=abc", "tps=0", "preset=gpt-5",
                                  "logprobs=maybe", "seed=1.5", "ttft=-1"])
def test_a_bad_spec_is_an_error_that_names_the_problem(spec: str) -> None:
    with pytest.raises(KnobError):
        parse(spec)


@pytest.mark.parametrize(("model", "preset"), [
    ("sim-gpt-4o", "gpt-4o"), ("gpt-4o-mini", "gpt-4o-mini"), ("openai/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4-turbo-preview", "gpt-4-turbo"), ("sim-instant", "instant"), ("judge", None), ("gpt-4", None),
])
def test_the_model_name_selects_a_preset(model: str, preset: str | None) -> None:
    assert preset_for(model) == preset


def test_path_knobs_override_the_model_which_overrides_the_defaults() -> None:
    defaults = Knobs(noise=0.1, preset="gpt-4o")
    assert resolve(defaults, "judge").preset == "gpt-4o"
    assert resolve(defaults, "sim-instant").preset == "instant"
    knobs = resolve(defaults, "sim-instant", "preset=steady,noise=0.3")
    assert (knobs.preset, knobs.noise) == ("steady", 0.3)


def test_speed_overrides_replace_the_presets_figures() -> None:
    base = PRESETS["gpt-4-turbo"]
    assert Knobs().speed() == base
    faster = Knobs(ttft=0.4).speed()
    assert faster.ttft == 0.4 and faster.p95 == pytest.approx(0.4 * base.p95 / base.ttft)
    assert Knobs(ttft=0.4, p95=0.4, tps=100, input=0, scale=0.5).speed().sigma == 0.0


def test_spec_round_trips() -> None:
    knobs = Knobs(noise=0.2, logprobs=False, preset="instant")
    assert Knobs(**parse(knobs.spec())) == knobs  # type: ignore[arg-type]
