"""A simulator in a thread (millisecond preset, a small judged query), and a call through real LiteLLM."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import simulator
from simulator.judgments import DATA_DIR
from tests.simulator.prompts import small_judgments

needs_trec = pytest.mark.skipif(not (DATA_DIR / "dl19-qrels.txt").is_file(),
                                reason=f"TREC DL data not found in {DATA_DIR} (set TREC_DL_DIR)")


@pytest.fixture(scope="module")
def sim() -> Iterator[simulator.RunningSimulator]:
    with simulator.running(judgments=small_judgments(), preset="instant") as running:
        yield running


@pytest.fixture(scope="module")
def trec_sim() -> Iterator[simulator.RunningSimulator]:
    with simulator.running(preset="instant") as running:  # the TREC DL judgments
        yield running


async def complete(api_base: str, messages: list[dict[str, str]], model: str = "sim-instant",
                   **kwargs: Any) -> Any:
    """One chat completion through litellm.acompletion, as the gateway makes it."""
    import gateway  # noqa: F401, I001  (its offline switches must come before LiteLLM's import)
    import litellm

    return await litellm.acompletion(model=f"openai/{model}", api_base=api_base, api_key="sk-sim",
                                     messages=messages, temperature=0, max_retries=0, **kwargs)
