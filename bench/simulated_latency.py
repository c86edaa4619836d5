"""Is the simulated upstream calibrated? Its wall times beside the figures in the hosted-latency notes.

For one speed preset (gpt-4-turbo by default) it starts the simulator as its own
process (as benchmarks and docker-compose run it) and times, through
litellm.acompletion over loopback as the gateway calls it:
one listwise window (the gateway's own prompt, 20 DL19 passages), a one-token
pointwise answer, and a 100-way pointwise fan-out (the wall time of the slowest
call), and prints min/median/max over the repeats beside the speed model's own
median (Monte Carlo), the simulator's own span (first request in to last answer
out: the client's overhead is the difference), how late the simulator ran
behind its own plan, and the notes' figure
(/work/shared/notes/hosted-latency-and-scores.md).

    .venv/bin/python -m bench.simulated_latency [--repeat 7] [--preset gpt-4-turbo] [--scale 1] [--json]

`--scale 0.1` runs everything ten times faster and reports times scaled back
(loopback overhead is then inflated tenfold).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cli, harness, report
from bench.trec import DATA_DIR, load_queries
from gateway.config import ListwiseSettings, PointwiseSettings
from gateway.strategies import pointwise
from gateway.strategies import window as listwise_window
from gateway.strategies.prompts import default_prompts_dir, load_prompts
from gateway.strategies.tokens import count_messages, get_encoding
from simulator.speed import PRESETS, Speed
from simulator.testing import SimulatorClient

_FALLBACK_TEXTS = [f"Passage {i} about the history of tea trade routes and shipping." * 4 for i in range(100)]


@dataclass
class Case:
    name: str
    messages: list[list[dict[str, str]]]  # concurrent calls; the case's time is the slowest
    max_tokens: int
    notes: str


def cases(speed: Speed, fan_out: int) -> list[Case]:
    prompts, enc = load_prompts(default_prompts_dir()), get_encoding("cl100k_base")
    if (DATA_DIR / "dl19-bm25-top100.jsonl.gz").is_file():
        q = load_queries("dl19")[0]
        query, texts = q.query, [c.text for c in q.candidates]
    else:
        query, texts = "history of tea trade", _FALLBACK_TEXTS
    job = listwise_window.prepare(enc, prompts["listwise"], query, texts[:20], ListwiseSettings(), 128_000)
    window = listwise_window.build_messages(prompts["listwise"], job.query, job.passages)
    graded = pointwise.prepare(enc, prompts["pointwise"], query, texts, PointwiseSettings(), 128_000)
    return [
        Case("listwise window (20 passages)", [window], listwise_window.output_tokens(20), "~3.1 s"),
        Case("1-token answer (pointwise)", [graded[0]], 1, "~0.85 s"),
        Case(f"{fan_out}-way fan-out (slowest call)", graded[:fan_out], 1,
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


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    speed = PRESETS[args.preset]
    scaled = Speed(speed.ttft, speed.p95, speed.tps, speed.input, args.scale)
    model = f"sim-{args.preset}"
    results = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(harness.sigterm_as_exit())
        workdir = Path(tempfile.mkdtemp(prefix="rerank-bench-"))
        if not args.keep_logs:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        server = harness.start_simulator(workdir, preset=args.preset, scale=args.scale, seed=args.seed)
        stack.callback(server.stop)
        server.wait_ready("/health")
        sim = SimulatorClient(server.url)
        stack.callback(sim.close)
        for case in cases(speed, args.fan_out):
            await measure(sim.api_base(scale=0), model, case)  # warm up LiteLLM and the connections
            walls, spans, late, usage = [], [], 0.0, None
            for _ in range(args.repeat):
                sim.reset()
                wall, usage = await measure(sim.api_base(), model, case)
                calls = sim.calls()
                walls.append(wall / args.scale)
                spans.append((max(c["end"] for c in calls) - min(c["start"] for c in calls)) / args.scale)
                late = max(late, *(c["end"] - c["start"] - c["planned"] for c in calls))
            results.append({
                "case": case.name, "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                "notes": case.notes, "model_median": model_median(scaled, case, usage.completion_tokens),
                "wall": report.spread(walls), "span": report.spread(spans), "late_max": late,
            })
    return results


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--preset", default="gpt-4-turbo", choices=sorted(PRESETS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every simulated duration (default 1)")
    parser.add_argument("--fan-out", type=int, default=100, choices=range(1, 101), metavar="N",
                        help="calls in the fan-out case, 1..100 (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="the latency stream's seed")
    cli.add_repeat(parser)
    cli.add_keep_logs(parser)
    cli.add_json(parser, "simulated_latency")
    parser.set_defaults(repeat=7)
    args = parser.parse_args(argv)
    speed = PRESETS[args.preset]
    results = asyncio.run(run(args))
    print(f"preset {args.preset}: median TTFT {speed.ttft} s, p95 {speed.p95} s, {speed.tps:g} tok/s, "
          f"+{speed.input} s per 1k input tokens; {args.repeat} repeats, scale {args.scale:g}; seconds")
    print(report.table(
        ["case", "in/out tokens", "notes", "model median", "client wall min / median / max",
         "simulator span, median", "late, max"],
        [[r["case"], f"{r['prompt_tokens']}/{r['completion_tokens']}", r["notes"], f"{r['model_median']:.2f}",
          r["wall"].format(".2f"), f"{r['span'].median:.2f}", f"{r['late_max'] * 1000:.0f} ms"] for r in results],
    ))
    if args.json:
        report.write_json(args.json, {"options": cli.as_json(args), "results": results})
    return 0


if __name__ == "__main__":
    harness.run_main(main)
