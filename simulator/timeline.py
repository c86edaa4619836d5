"""What the simulator records per call, and what a test reads off the timeline.

Times are `time.monotonic()` of the simulator's process. On Linux that clock is
system-wide, so a test in another process may compare its own monotonic times
with them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    start: float  # when the request arrived
    end: float  # when the answer was sent
    planned: float  # the simulated duration; end - start beyond it is the simulator running late
    model: str
    preset: str
    kind: str  # the task the prompt was read as (simulator.reading.KINDS)
    passages: int
    judged: int  # passages matched to a judged candidate (the rest were graded by term overlap)
    prompt_tokens: int
    completion_tokens: int
    max_tokens: int | None
    top_logprobs: int  # what the request asked for (0: no logprobs)
    finish_reason: str
    status: int
    knobs: str  # the knob spec the request ran with


def _span(call: CallRecord | Mapping[str, Any]) -> tuple[float, float]:
    if isinstance(call, Mapping):
        return float(call["start"]), float(call["end"])
    return call.start, call.end


def rounds(calls: Iterable[CallRecord | Mapping[str, Any]]) -> int:
    """Sequential rounds: the longest chain of calls, each starting after the previous one ended.

    Calls launched together overlap and count once; a call that had to wait for
    another's answer extends the chain. Accepts `CallRecord`s or the dicts of
    `GET /calls`. Calls must last longer than the client takes to launch a
    round's calls (the `steady` preset: 0.1 s), or a round smears into several.
    """
    # In order of start, a call's chain is one more than the longest among calls that ended
    # by then; since starts only grow, those calls leave the heap for good.
    pending: list[tuple[float, int]] = []  # (end, chain length) of calls not yet known to have ended
    finished = longest = 0
    for start, end in sorted(_span(c) for c in calls):
        while pending and pending[0][0] <= start:
            finished = max(finished, heapq.heappop(pending)[1])
        heapq.heappush(pending, (end, finished + 1))
        longest = max(longest, finished + 1)
    return longest


def peak_concurrency(calls: Iterable[CallRecord | Mapping[str, Any]]) -> int:
    """The most calls in flight at one moment, from the timeline."""
    events = sorted(e for c in calls for e in ((_span(c)[0], 1), (_span(c)[1], -1)))
    peak = current = 0
    for _, step in events:  # an end at the same instant as a start sorts first (-1 < 1)
        current += step
        peak = max(peak, current)
    return peak
