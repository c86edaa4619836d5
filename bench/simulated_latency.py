"""Is the simulated upstream calibrated? Its wall times beside the figures in the hosted-latency notes.

For one speed preset (gpt-4-turbo by default) it times, through litellm.acompletion
over loopback as the gateway calls it:
one RankGPT window (the gateway's own prompt, 20 DL19 passages), a one-token
pointwise answer, and a 100-way pointwise fan-out (the wall time of the slowest
call), and prints min/median/max over the repeats beside the speed model's own
median (Monte Carlo), the simulator's own span (first request in to last answer
out: the client's overhead is the difference), how late the simulator ran
behind its own plan, and the notes' figure
(/work/shared/notes/hosted-latency-and-scores.md).

    .venv/bin/python -m bench.simulated_latency [--repeats 7] [--preset gpt-4-turbo] [--scale 1]

`--scale 0.1` runs everything ten times faster and reports times scaled back
(loopback overhead is then inflated tenfold).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import simulator
from bench.harness import run_main
from bench.trec import DATA_DIR, load_queries
from gateway.config import ListwiseSettings, PointwiseSettings
from gateway.strategies import listwise, pointwise
from gateway.strategies.prompts import default_prompts_dir, load_prompts
from gateway.strategies.tokens import count_messages, get_encoding
from simulator.speed import PRESETS, Speed

FAN_OUT = 100
_FALLBACK_TEXTS = [f"Passage {i} about the history of tea trade routes and shipping." * 4 for i in range(FAN_OUT)]


@dataclass
class Case:
    name: str
    messages: list[list[dict[str, str]]]  # concurrent calls; the case's time is the slowest
    max_tokens: int
    notes: str


def cases(speed: Speed) -> list[Case]:
    prompts, enc = load_prompts(default_prompts_dir()), get_encoding("cl100k_base")
    if (DATA_DIR / "dl19-bm25-top100.jsonl.gz").is_file():
        q = load_queries("dl19")[0]
        query, texts = q.query, [c.text for c in q.candidates]
    else:
        query, texts = "history of tea trade", _FALLBACK_TEXTS
    job = listwise.prepare(enc, prompts["listwise"], query, texts[:20], ListwiseSettings(), 128_000)
    window = listwise.build_messages(prompts["listwise"], job.query, job.passages)
    graded = pointwise.prepare(enc, prompts["pointwise"], query, texts, PointwiseSettings(), 128_000)
    return [
        Case("RankGPT window (20 passages)", [window], listwise.output_tokens(20), "~3.1 s"),
        Case("1-token answer (pointwise)", [graded[0]], 1, "~0.85 s"),
        Case(f"{FAN_OUT}-way fan-out (slowest call)", graded[:FAN_OUT], 1,
             f"~p99 of TTFT = {speed.ttft_quantile(0.99):.2f} s"),
    ]


def model_median(speed: Speed, case: Case, completion: int, trials: int = 4000) -> float:
    """The speed model's median wall time for the case, by Monte Carlo."""
    rng = random.Random(0)
    prompt = [count_messages(get_encoding("cl100k_base"), m) for m in case.messages]
    return statistics.median(
        max(speed.duration(speed.draw_ttft(rng), p, completion) for p in prompt) / speed.scale
        for _ in range(trials)
    )


async def measure(base: str, model: str, case: Case) -> tuple[float, Any]:
    import litellm  # after gateway's offline switches (imported above)

    async def call(messages: list[dict[str, str]]) -> Any:
        return await litellm.acompletion(
            model=f"openai/{model}", api_base=base, api_key="sk-sim", messages=messages, temperature=0,
            max_tokens=case.max_tokens, max_retries=0, timeout=120,
            **({"logprobs": True, "top_logprobs": 10} if case.max_tokens == 1 else {}),
        )

    started = time.monotonic()
    answers = await asyncio.gather(*(call(m) for m in case.messages))
    return time.monotonic() - started, answers[0].usage


async def run(args: argparse.Namespace) -> None:
    speed = PRESETS[args.preset]
    scaled = Speed(speed.ttft, speed.p95, speed.tps, speed.input, args.scale)
    model = f"sim-{args.preset}"
    with simulator.running(preset=args.preset, scale=args.scale, seed=args.seed) as sim:
        print(f"preset {args.preset}: median TTFT {speed.ttft} s, p95 {speed.p95} s, {speed.tps:g} tok/s, "
              f"+{speed.input} s per 1k input tokens; {args.repeats} repeats, scale {args.scale:g}")
        print(f"{'case':<34} {'in/out tokens':>13} {'notes':>24} {'model median':>12} "
              f"{'client wall min / median / max':>31} {'simulator span, median':>23} {'late, max':>10}")
        for case in cases(speed):
            await measure(sim.api_base(scale=0), model, case)  # warm up LiteLLM and the connections
            walls, spans, late, usage = [], [], 0.0, None
            for _ in range(args.repeats):
                sim.reset()
                wall, usage = await measure(sim.api_base(), model, case)
                calls = sim.calls()
                walls.append(wall / args.scale)
                spans.append((max(c["end"] for c in calls) - min(c["start"] for c in calls)) / args.scale)
                late = max(late, *(c["end"] - c["start"] - c["planned"] for c in calls))
            expected = model_median(scaled, case, usage.completion_tokens)
            tokens = f"{usage.prompt_tokens}/{usage.completion_tokens}"
            measured = f"{min(walls):.2f} / {statistics.median(walls):.2f} / {max(walls):.2f} s"
            print(f"{case.name:<34} {tokens:>13} {case.notes:>24} {expected:>10.2f} s {measured:>31} "
                  f"{statistics.median(spans):>21.2f} s {late * 1000:>7.0f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt-4-turbo", choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    run_main(main)
