"""Single-token window ranking (FIRST, Reddy et al. 2024): a window ordered by its first token's distribution.

The model is asked for the identifier of the most relevant passage only, as a
bare number (numbers up to 3 digits are one token in cl100k/o200k), with
`max_tokens=1` and `top_logprobs=20`. The alternatives for that one token give a
distribution over identifiers: the window is ordered by it. Identifiers it does
not rank (outside the top alternatives) keep their input order behind the ranked
ones. Pure functions; the call itself is `rankers.py`'s.
"""

from __future__ import annotations

import math

from gateway.strategies.base import clean_answer

_TOKEN_NOISE = " \t\n\"'*`.:()[]{}#"


def first_ranking(top_logprobs: list[tuple[str, float]], n: int) -> list[int]:
    """0-based window positions ranked by the first token's probability of naming them, best first.

    Variants of one identifier (" 3", "3", "[3") add up; tokens that are no identifier
    of the window are ignored. Ties keep input order.
    """
    mass: dict[int, float] = {}
    for token, logprob in top_logprobs:
        text = clean_answer(token).strip(_TOKEN_NOISE)
        if not (text.isdigit() and len(text) <= 3) or not math.isfinite(logprob):
            continue
        position = int(text) - 1
        if 0 <= position < n:
            mass[position] = mass.get(position, 0.0) + math.exp(min(logprob, 0.0))
    return sorted(mass, key=lambda p: (-mass[p], p))
