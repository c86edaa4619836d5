"""A simulated hosted chat model for benchmarks and tests: rerank prompts answered from TREC DL judgments.

An OpenAI-compatible `POST /v1/chat/completions` on loopback that reads a prompt
the way a model would (it imports nothing of the gateway), grades the passages
from the TREC DL 2019 + 2020 judgments, and answers after as long as a hosted
model would take. Run it with `python -m simulator --port N`, or in a test with
`simulator.running()`. The contract, in brief (simulator/README.md has it whole):

Tasks (cues: `simulator.reading`), each answered from the judged grades:
    listwise   several `[n] text` passages          "[3] > [1] > [2]"
    first      ... + "most relevant passage" + "identifier"/"number"
                                                     "3"; top_logprobs over identifiers
    pointwise  one passage + "scale of 0 to K"      "2"; top_logprobs over labels 0..K
    batch      several passages + a 0..K scale      "[1] 2\\n[2] 0"; logprobs per token
    yesno      one passage + "yes" and "no"         "Yes"; top_logprobs over Yes/No
    generic    anything else                         a short sentence

Grades (`simulator.judgments`): passages are matched, normalized, among their
query's own 100 candidates (whole text, then prefix, containment, common
prefix); anything unknown is graded by query-term overlap.

Answers (`simulator.model`): a latent score per passage, grade plus knobs
(noise, sigma, bias), sorted or turned into label / identifier distributions.

Speed (`simulator.speed`): TTFT (lognormal: median, p95) + seconds per 1k prompt
tokens + completion tokens / tokens per second; `max_tokens` cuts the answer
(`finish_reason: "length"`). Presets gpt-4-turbo, gpt-4o, gpt-4o-mini, instant, steady.

Knobs (`simulator.knobs`): server defaults, then the model name's preset
(`sim-gpt-4o`), then a path prefix `/knobs/noise=0.2,bias=0.5/v1/...`.

Observing (`simulator.timeline`): `GET /stats`, `GET /calls`, `POST /reset`;
`rounds(calls)` counts sequential rounds off the call timeline.
"""

from __future__ import annotations

from simulator.judgments import Judgments
from simulator.knobs import KnobError, Knobs
from simulator.server import Simulator
from simulator.speed import PRESETS, Speed
from simulator.testing import RunningSimulator, SimulatorClient, running
from simulator.timeline import CallRecord, peak_concurrency, rounds

__all__ = [
    "PRESETS", "CallRecord", "Judgments", "KnobError", "Knobs", "RunningSimulator", "Simulator", "SimulatorClient",
    "Speed", "peak_concurrency", "rounds", "running",
]
