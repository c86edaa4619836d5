"""The strategies a config can name, built once per config generation.

A new strategy is a module beside `sliding.py` and one entry in `FACTORIES`.
Two names are aliases, resolved per model: "listwise" is the model's fastest
listwise strategy (TDPart with single-token ranking when the model returns
logprobs, with generated permutations when it does not), "first" is TDPart with
single-token ranking.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config import Settings
from gateway.strategies.base import Strategy
from gateway.strategies.batched import BatchedPointwise
from gateway.strategies.pointwise import Pointwise, check_labels
from gateway.strategies.prompts import Prompt, require_prompt
from gateway.strategies.sliding import SlidingFirst, SlidingWindow
from gateway.strategies.tdpart import TopDownFirst, TopDownPartitioning

Factory = Callable[[Settings, dict[str, Prompt]], Strategy]


def _listwise(cls: type[SlidingWindow] | type[TopDownPartitioning]) -> Factory:
    def build(s: Settings, prompts: dict[str, Prompt]) -> Strategy:
        grading = require_prompt(prompts, s.pointwise.prompt, "pointwise")
        check_labels(grading, s.pointwise.max_label)
        return cls(s.listwise, require_prompt(prompts, s.listwise.prompt, "listwise"), s.pointwise, grading)

    return build


FACTORIES: dict[str, Factory] = {
    "sliding": _listwise(SlidingWindow),
    "sliding-first": _listwise(SlidingFirst),
    "tdpart": _listwise(TopDownPartitioning),
    "tdpart-first": _listwise(TopDownFirst),
    "pointwise": lambda s, prompts: Pointwise(s.pointwise, require_prompt(prompts, s.pointwise.prompt, "pointwise")),
    "batched": lambda s, prompts: BatchedPointwise(
        s.batched, s.pointwise, require_prompt(prompts, s.batched.prompt, "batched"),
        require_prompt(prompts, s.pointwise.prompt, "pointwise")),
}


def resolve(mode: str, logprobs: bool) -> str:
    """The strategy a mode names for a model: aliases resolved, other names as they are."""
    if mode == "listwise":
        return "tdpart-first" if logprobs else "tdpart"
    if mode == "first":
        return "tdpart-first"
    return mode


def build_strategies(settings: Settings, prompts: dict[str, Prompt]) -> dict[str, Strategy]:
    """Every strategy, with its settings and prompt; a bad prompt raises ConfigError."""
    return {name: factory(settings, prompts) for name, factory in FACTORIES.items()}
