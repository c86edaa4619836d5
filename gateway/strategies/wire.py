"""A `Ranking` as compact JSON, for a cache other processes share; validated on the way back in.

What comes back from a shared cache is untrusted: another version of the
gateway, another program or plain corruption may have written it. `decode`
accepts only what `encode` writes (a permutation with as many non-increasing
0-1 scores, small non-negative counters) and raises ValueError for the rest.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.strategies.base import CallStats, Ranking

VERSION = 1
MAX_ITEMS = 100_000
_COUNTERS = ("calls", "parse_failures", "prompt_tokens", "completion_tokens")


def ranking_fields(ranking: Ranking) -> dict[str, Any]:
    stats = ranking.stats
    return {"v": VERSION, "order": ranking.order, "scores": ranking.scores,
            **{name: getattr(stats, name) for name in _COUNTERS}}


def encode(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, separators=(",", ":"), allow_nan=False).encode()


def decode(raw: bytes) -> dict[str, Any]:
    """The fields of an encoded value, with `ranking` rebuilt; ValueError for anything else."""
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError("not a ranking of this version")
    order, scores = data.get("order"), data.get("scores")
    if not isinstance(order, list) or not isinstance(scores, list) or not 0 < len(order) <= MAX_ITEMS:
        raise ValueError("order and scores must be non-empty lists")
    if len(scores) != len(order) or sorted(order) != list(range(len(order))) or not all(_is_int(i) for i in order):
        raise ValueError("order is not a permutation with one score each")
    if not all(_is_number(s) and 0.0 <= s <= 1.0 for s in scores):
        raise ValueError("scores must be numbers in [0, 1]")
    if any(later > earlier + 1e-9 for earlier, later in zip(scores, scores[1:], strict=False)):
        raise ValueError("scores must not increase down the order")
    counters = {name: data.get(name, 0) for name in _COUNTERS}
    if not all(_is_int(v) and 0 <= v < 2**53 for v in counters.values()):
        raise ValueError("counters must be non-negative integers")
    data["ranking"] = Ranking(order, [float(s) for s in scores], CallStats(**counters))
    return data


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, float) and math.isfinite(value)) or _is_int(value)
