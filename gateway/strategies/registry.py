"""The strategies a config can name, built once per config generation.

A new strategy is a module beside `listwise.py` and one entry in `FACTORIES`.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config import Settings
from gateway.strategies.base import Strategy
from gateway.strategies.listwise import SlidingWindow
from gateway.strategies.pointwise import Pointwise
from gateway.strategies.prompts import Prompt, require_prompt

Factory = Callable[[Settings, dict[str, Prompt]], Strategy]

FACTORIES: dict[str, Factory] = {
    "listwise": lambda s, prompts: SlidingWindow(s.listwise, require_prompt(prompts, s.listwise.prompt, "listwise")),
    "pointwise": lambda s, prompts: Pointwise(s.pointwise, require_prompt(prompts, s.pointwise.prompt, "pointwise")),
}


def build_strategies(settings: Settings, prompts: dict[str, Prompt]) -> dict[str, Strategy]:
    """Every strategy, with its settings and prompt; a bad prompt raises ConfigError."""
    return {name: factory(settings, prompts) for name, factory in FACTORIES.items()}
