"""Every ranking strategy side by side, as a hosted model's users would meet it: wall time, rounds, calls,
tokens, dollars, nDCG@10 on DL19/DL20, threshold accuracy; and how each degrades with noise and bias.

The gateway runs as a real process in front of the simulator (`python -m simulator`, its
own process), which answers from the TREC DL judgments. Every alias copies the shipped
`gpt-4-turbo-preview` model (prices, hedging, concurrency, default mode), so "default"
is what a request with no mode gets and "listwise" what `mode: "listwise"` maps to.
Each strategy is measured through five aliases, each a simulator profile:

    quality   judgment-perfect answers at no latency: nDCG@10 against a perfect reordering,
              threshold accuracy (of the judged top 10: grade >= 2 scored >= 0.5, grade 0
              below), calls, tokens, $ per query
    noise     --noise of grades replaced at random; bias: the first passage of a prompt
              favoured by --bias grades over the last (nDCG@10)
    rounds    every call 1 s, no hedging: the sequential LLM rounds of a request (the
              simulator's own timeline of calls)
    timing    gpt-4-turbo speed (0.8 s median to the first token, p95 5x, 35 tokens/s,
              +0.1 s per 1k prompt tokens), hedging as shipped: wall seconds per request
              on the first --timing-queries DL20 queries, one request at a time, median
              over the queries; --repeat runs give min / median / max

Targets (issue 10), printed as PASS/FAIL: no mode <= 5 s, nDCG@10 >= 97% of the perfect
reordering's, >= 90% of judged top-10 documents on the right side of 0.5; listwise <= 3
rounds and <= 4 s with single-token ranking. DL19 is for tuning, DL20 for reporting.

    ./dev.sh bench strategies [--strategies default,listwise,...] [--repeat 3] [--markdown] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import cli, counters, harness, plot, ranking, report, upstream
from bench.trec import Query, load_qrels, load_queries, mean_ndcg
from gateway.config import Settings

SHIPPED = Settings().models["gpt-4-turbo-preview"]
# What every alias copies from the shipped model, besides its mode.
COPIED = ("input_cost_per_million", "output_cost_per_million", "encoding", "max_concurrency", "fusion_weight",
          "hedge_after_seconds", "max_hedges", "output_tokens_per_second")


@dataclass(frozen=True)
class Variant:
    name: str
    mode: str | None  # None: no mode in the request (the model's default)
    group: str = ""  # variants with other [listwise] settings get a gateway of their own
    note: str = ""


GROUPS = {"": "", "rankgpt": 'prompt = "rankgpt"', "psc3": "consistency = 3"}
VARIANTS = [
    Variant("default", None, note=f"no mode: the shipped default ({SHIPPED.mode})"),
    Variant("listwise", "listwise", note="= tdpart-first"),
    Variant("tdpart", "tdpart"),
    Variant("tdpart-first", "tdpart-first"),
    Variant("sliding", "sliding", note="RankGPT's sliding window, single-message prompt"),
    Variant("sliding-rankgpt", "sliding", "rankgpt", "the same, RankGPT's multi-turn prompt (44 messages)"),
    Variant("sliding-first", "sliding-first"),
    Variant("pointwise", "pointwise"),
    Variant("batched", "batched"),
    Variant("tdpart-psc3", "tdpart", "psc3", "self-consistency: 3 shuffled passes per window"),
    Variant("tdpart-first-psc3", "tdpart-first", "psc3", "self-consistency: 3 shuffled passes per window"),
]
BY_NAME = {v.name: v for v in VARIANTS}


@dataclass
class Row:
    variant: str
    note: str
    ndcg: dict[str, float] = field(default_factory=dict)  # "dl19", "dl20", "noise dl19", ...
    ceiling: dict[str, float] = field(default_factory=dict)
    threshold: float = float("nan")  # share of judged top-10 documents on the right side of 0.5
    score_type: str = ""
    calls: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cost: float = 0.0
    rounds: float = float("nan")
    wall: list[float] = field(default_factory=list)  # per run: median seconds over the timing queries
    cpu: list[float] = field(default_factory=list)  # per run: the gateway's CPU seconds per request
    load: list[float] = field(default_factory=list)  # per run: the machine's 1-minute load average after it
    hedges: float = 0.0
    partial: int = 0


def aliases(up: upstream.Upstream, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """alias -> (target, mode), and each alias's copied model settings: one alias per simulator profile."""
    shipped = {key: getattr(SHIPPED, key) for key in COPIED}
    calm = {**shipped, "hedge_after_seconds": 0.0}  # no hedging where latency is not measured
    if up.kind != "simulator":  # a real model: its own speed and answers
        return {"quality": (up.target(), SHIPPED.mode), "timing": (up.target(), SHIPPED.mode)}, \
            {"quality": calm, "timing": {**shipped, **args.hedging}}
    profiles = {"quality": ("instant", {}, calm), "noise": ("instant", {"noise": args.noise, "seed": 7}, calm),
                "bias": ("instant", {"bias": args.bias}, calm),
                # Every call 1 s: calls launched together overlap even on a loaded machine.
                "rounds": ("steady", {"scale": 10}, calm), "timing": ("hosted", {}, {**shipped, **args.hedging})}
    return ({alias: (up.target(speed, **knobs), SHIPPED.mode) for alias, (speed, knobs, _) in profiles.items()},
            {alias: settings for alias, (_, _, settings) in profiles.items()})


async def quality(url: str, variant: Variant, row: Row, sets: dict[str, Any], args: argparse.Namespace) -> None:
    right = judged = 0
    clean: list[ranking.Outcome] = []
    for profile in ["quality", *args.robustness]:
        for name, (queries, qrels) in sets.items():
            found = await ranking.rerank_all(url, profile, variant.mode, name, queries, concurrency=args.concurrency,
                                             timeout=400, documents=args.documents, label=variant.name)
            row.ndcg[name if profile == "quality" else f"{profile} {name}"] = found.ndcg(qrels)
            row.partial += sum(o.partial for o in found.outcomes)
            if profile == "quality":
                ideal = {q.qid: ranking.ideal_order(q, qrels.get(q.qid, {}), args.documents) for q in queries}
                row.ceiling[name] = mean_ndcg(ideal, qrels)
                r, j = found.threshold(qrels)
                right, judged, clean = right + r, judged + j, clean + found.outcomes
    row.threshold = right / judged if judged else float("nan")
    row.score_type = ",".join(sorted({o.score_type for o in clean}))
    for key, attr in (("calls", "llm_calls"), ("prompt_tokens", "prompt_tokens"),
                      ("completion_tokens", "completion_tokens"), ("cost", "cost_usd")):
        setattr(row, key, statistics.fmean(getattr(o, attr) for o in clean))


async def rounds(url: str, sim_url: str, variant: Variant, queries: list[Query], documents: int) -> float:
    from simulator.timeline import rounds as count_rounds

    counts = []
    async with httpx.AsyncClient(base_url=sim_url, trust_env=False, timeout=30) as sim:
        for q in queries:
            await sim.post("/reset")
            await ranking.rerank_all(url, "rounds", variant.mode, "dl20", [q], concurrency=1, timeout=400,
                                     documents=documents)
            counts.append(count_rounds((await sim.get("/calls")).json()))
    return statistics.median(counts)


async def measure(args: argparse.Namespace, up: upstream.Upstream, gateways: dict[str, harness.Server]) -> list[Row]:
    sets = {name: (load_queries(name)[: args.queries], load_qrels(name)) for name in args.sets}
    timing_queries = load_queries("dl20")[: args.timing_queries]
    rows = []
    bar = plot.progress(len(args.strategies) * (1 + args.repeat), "strategies")
    try:
        for name in args.strategies:
            variant, row = BY_NAME[name], Row(name, BY_NAME[name].note)
            gateway = gateways[variant.group]
            bar.set_postfix_str(f"{name}: quality")
            await quality(gateway.url, variant, row, sets, args)
            if up.kind == "simulator":
                row.rounds = await rounds(gateway.url, up.url, variant, timing_queries[:3], args.documents)
            bar.update()
            hedges = []
            for run in range(args.repeat):
                bar.set_postfix_str(f"{name}: timing run {run + 1}")
                before = counters.process_cpu_seconds(gateway.pid)
                timed = await ranking.rerank_all(gateway.url, "timing", variant.mode, "dl20", timing_queries,
                                                 concurrency=1, timeout=400, documents=args.documents)
                row.cpu.append((counters.process_cpu_seconds(gateway.pid) - before) / len(timing_queries))
                row.wall.append(statistics.median(o.seconds for o in timed.outcomes))
                row.load.append(os.getloadavg()[0])
                hedges.append(timed.mean("hedges"))
                bar.update()
            row.hedges = statistics.fmean(hedges) if hedges else 0.0
            rows.append(row)
    finally:
        bar.close()
    return rows


def tables(rows: list[Row], args: argparse.Namespace) -> str:
    def fmt(header: list[str], body: list[list[str]]) -> str:
        if not args.markdown:
            return report.table(header, body)
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                          *("| " + " | ".join(r) + " |" for r in body)])

    def ndcg(row: Row, key: str) -> str:
        return f"{row.ndcg[key]:.2f}" if key in row.ndcg else "-"

    sliding = next((r for r in rows if r.variant == "sliding"), None)
    main = [[r.variant, report.spread(r.wall).format(".2f") if r.wall else "-",
             f"{statistics.median(r.cpu):.2f}" if r.cpu else "-", f"{statistics.median(r.load):.1f}" if r.load else "-",
             f"{r.rounds:g}", f"{r.calls:.1f}", f"{r.hedges:.1f}", ndcg(r, "dl19"), ndcg(r, "dl20"),
             f"{100 * r.ndcg['dl20'] / r.ceiling['dl20']:.1f}%" if "dl20" in r.ceiling else "-",
             f"{r.threshold * 100:.1f}%", r.score_type] for r in rows]
    cost = [[r.variant, f"{r.prompt_tokens:,.0f}", f"{r.completion_tokens:,.0f}", f"${r.cost:.4f}",
             f"{r.cost / sliding.cost:.2f}x" if sliding and sliding.cost else "-"] for r in rows]
    robust = [[r.variant, *(ndcg(r, f"{p} {s}") for p in args.robustness for s in args.sets)] for r in rows]
    ceiling = rows[0].ceiling if rows else {}
    perfect = ", ".join(f"{s.upper()} {c:.2f}" for s, c in ceiling.items())
    out = [f"Wall seconds per {args.documents}-document request at gpt-4-turbo speed (median over "
           f"{args.timing_queries} DL20 queries; min / median / max over {args.repeat} runs); rounds with every "
           f"call 1 s; nDCG@10 x100 with judgment-perfect answers (perfect reordering: {perfect}); threshold: "
           "judged top-10 documents on the right side of 0.5; CPU: the gateway's CPU seconds per request; "
           "load: the machine's 1-minute load average",
           fmt(["strategy", "wall s", "CPU s", "load", "rounds", "calls", "hedges", "DL19", "DL20", "DL20 / perfect",
                "threshold", "scores"], main),
           "", "Tokens and dollars per query at gpt-4-turbo prices ($10 / $30 per M), against the sliding window",
           fmt(["strategy", "prompt tokens", "completion tokens", "$ / query", "vs sliding"], cost)]
    if args.robustness:
        out += ["", f"Robustness, nDCG@10 x100: noise = {args.noise:g} of grades random; bias = the first passage "
                    f"of a prompt +{args.bias:g} grade over the last",
                fmt(["strategy", *(f"{p} {s.upper()}" for p in args.robustness for s in args.sets)], robust)]
    return "\n".join(out)


def checks(rows: list[Row]) -> list[tuple[str, bool]]:
    """Issue 10's targets, for the rows that have them."""
    found: list[tuple[str, bool]] = []
    for row in rows:
        wall = statistics.median(row.wall) if row.wall else float("nan")
        common = [(f"{row.variant}: threshold accuracy {100 * row.threshold:.1f}% (>= 90%)", row.threshold >= 0.9)]
        if row.ceiling.get("dl20"):  # the acceptance set; DL19 is for tuning
            fidelity = row.ndcg["dl20"] / row.ceiling["dl20"]
            common.append((f"{row.variant}: nDCG@10 DL20 {100 * fidelity:.1f}% of perfect (>= 97%)",
                           fidelity >= 0.97))
        if row.variant == "default":
            found += [(f"default: {wall:.2f} s per request (<= 5 s)", wall <= 5), *common]
        elif row.variant == "listwise":
            found += [(f"listwise: {row.rounds:g} rounds (<= 3)", row.rounds <= 3),
                      (f"listwise (single-token ranking): {wall:.2f} s (<= 4 s)", wall <= 4), *common]
        elif row.variant == "tdpart":
            found.append((f"tdpart (generated permutations): {wall:.2f} s (<= 10 s)", wall <= 10))
    return found


def write_plot(rows: list[Row], path: Path) -> Path:
    labels = [r.variant for r in rows]
    return plot.bars(path, "Strategies at gpt-4-turbo speed: wall seconds per request, nDCG@10 DL20 x100", labels,
                     [("wall s (min / median / max over runs)", [report.spread(r.wall or [0.0]) for r in rows]),
                      ("nDCG@10 DL20 x100", [report.spread([r.ndcg.get("dl20", 0.0)]) for r in rows])],
                     reference=[5.0, None])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--strategies", default=",".join(v.name for v in VARIANTS))
    parser.add_argument("--sets", default="dl19,dl20")
    parser.add_argument("--queries", type=int, default=None, help="the first N queries per set for quality (all)")
    parser.add_argument("--documents", type=int, default=100, help="BM25 candidates per query (100)")
    parser.add_argument("--timing-queries", type=int, default=10, help="DL20 queries timed per run (10)")
    parser.add_argument("--robustness", default="noise,bias", help="comma-separated: noise, bias ('' for none)")
    parser.add_argument("--noise", type=float, default=0.2, help="the noise profile's share of random grades (0.2)")
    parser.add_argument("--bias", type=float, default=1.0, help="the bias profile's position bias in grades (1.0)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight in the quality passes")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown (the README's)")
    parser.add_argument("--hedge-after", type=float, default=None,
                        help=f"hedge_after_seconds when timing (shipped: {SHIPPED.hedge_after_seconds:g}; 0: off)")
    parser.add_argument("--max-hedges", type=int, default=None, help=f"max_hedges (shipped: {SHIPPED.max_hedges})")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds for the whole benchmark")
    cli.add_measuring(parser, "strategies", knobs=False)
    args = cli.parse(parser, argv)
    if args.smoke:
        args.strategies, args.sets, args.queries, args.documents = "default,listwise", "dl19", 2, 20
        args.timing_queries, args.repeat, args.robustness = 1, 1, "noise"
    args.strategies = cli.comma_list(parser, args.strategies, "strategy", BY_NAME)
    args.sets = cli.comma_list(parser, args.sets, "set", ("dl19", "dl20"))
    args.robustness = cli.comma_list(parser, args.robustness, "profile", ("noise", "bias"))
    args.hedging = {name: value for name, value in (("hedge_after_seconds", args.hedge_after),
                                                    ("max_hedges", args.max_hedges)) if value is not None}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with harness.workdir() as workdir, harness.time_limit(args.timeout, "bench.strategies: time limit reached"), \
            upstream.running(args, workdir) as up:
        if up.kind == "fake":
            raise SystemExit("bench.strategies needs the simulator package (simulator/ beside gateway/)")
        if up.kind != "simulator":
            args.robustness = []  # noise and bias are simulator knobs
        targets, settings = aliases(up, args)
        gateways: dict[str, harness.Server] = {}
        try:
            for group in sorted({BY_NAME[s].group for s in args.strategies}):
                home = workdir / (group or "shipped")
                home.mkdir()
                config = harness.write_gateway_config(
                    home / "config.toml", targets, request_timeout=120, model_settings=settings,
                    reliability={"breaker_failure_threshold": 1_000_000},
                    extra=f"[listwise]\n{GROUPS[group]}" if group else "")
                gateways[group] = harness.start_gateway(config, home, log_level="warning")
                gateways[group].wait_ready("/health")
            rows = asyncio.run(measure(args, up, gateways))
        finally:
            for gateway in gateways.values():
                gateway.stop()
    print(tables(rows, args))
    verdicts = checks(rows)
    print("\n".join(report.verdicts(verdicts)))
    report.write_json(args.json, {"args": cli.as_json(args), "upstream": up.kind, "shipped": SHIPPED.model_dump(),
                                  "rows": rows, "checks": verdicts})
    print(f"wrote {args.json} and {write_plot(rows, args.json.with_suffix('.png'))}", file=sys.stderr)
    return 0 if all(passed for _, passed in verdicts) else 1


if __name__ == "__main__":
    harness.run_main(main)
