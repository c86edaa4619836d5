"""Every ranking strategy against the simulated hosted upstream: wall time, rounds, calls, tokens, dollars, nDCG@10.

The gateway runs as a real process in front of the simulator (`python -m simulator`,
its own process), whose answers come from the TREC DL judgments. Each strategy is
measured four ways, each through its own alias (a knob set in the api_base path):

    quality   perfect answers at no latency (sim-instant): nDCG@10 on DL19 and DL20
              against a perfect reordering, threshold accuracy (of the judged top 10:
              grade >= 2 scored >= 0.5, grade 0 below 0.5), calls, tokens, $ per query
    noise     20% of grades replaced at random; bias: the first passage of a prompt
              favoured by `--bias` grades over the last (nDCG@10, DL19 and DL20)
    rounds    every call 1 s (sim-steady, scale 10), no hedging: sequential LLM rounds per request
    timing    gpt-4-turbo speed (0.8 s median time to first token, p95 5x, 35 tokens/s,
              +0.1 s per 1k prompt tokens), the shipped hedging: wall time per request on
              the first `--timing-queries` DL20 queries, one request at a time,
              median over queries; `--runs` runs give min / median / max

Aliases copy the shipped `gpt-4-turbo-preview` model settings (prices, hedging,
concurrency, default mode), so "default" is what a request with no mode gets.

    .venv/bin/python -m bench.strategies [--strategies default,listwise,...] [--runs 3] [--json] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import cli, counters, harness, report
from bench.trec import DATA_DIR, Query, load_qrels, load_queries, mean_ndcg
from gateway.config import Settings

SHIPPED = Settings().models["gpt-4-turbo-preview"]


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


def profiles(bias: float) -> dict[str, tuple[str, str, bool]]:
    """alias -> (simulated model name, knob spec, hedging as shipped)."""
    return {
        "quality": ("sim-instant", "", False),
        "noise": ("sim-instant", "noise=0.2,seed=7", False),
        "bias": ("sim-instant", f"bias={bias:g}", False),
        # Every call 1 s: calls launched together overlap even on a loaded machine.
        "rounds": ("sim-steady", "scale=10", False),
        "timing": ("sim-gpt-4-turbo", "", True),
    }


def gateway_config(sim_url: str, group: str, bias: float, overrides: dict[str, Any] | None = None) -> str:
    model = {**SHIPPED.model_dump(exclude_none=True), **(overrides or {})}
    parts = ['default_model = "quality"', "[cache]\nenabled = false",
             "[reliability]\nrequest_timeout_seconds = 120\nmax_request_timeout_seconds = 300",
             f"[listwise]\n{GROUPS[group]}"]
    for alias, (name, knobs, hedged) in profiles(bias).items():
        settings = {**model, "litellm_model": f"openai/{name}", "api_key_env": harness.KEY_ENV,
                    "api_base": f"{sim_url}/knobs/{knobs}/v1" if knobs else f"{sim_url}/v1"}
        settings.pop("api_base_env", None)
        if not hedged:
            settings["hedge_after_seconds"] = 0.0
        lines = "\n".join(f"{key} = {toml_value(value)}" for key, value in settings.items())
        parts.append(f'[models."{alias}"]\n{lines}')
    return "\n\n".join(parts) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


@dataclass
class Outcome:
    qid: str
    ranked: list[str]
    scores: dict[str, float]
    seconds: float
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    score_type: str
    partial: bool
    hedges: int


async def rerank(http: httpx.AsyncClient, alias: str, variant: Variant, query: Query) -> Outcome:
    docids = [c.docid for c in query.candidates]
    body: dict[str, Any] = {"query": query.query, "documents": [c.text for c in query.candidates],
                            "model": alias, "top_n": len(docids), "return_documents": False, "timeout": 300}
    if variant.mode:
        body["mode"] = variant.mode
    started = time.perf_counter()
    response = await http.post("/v1/rerank", json=body)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{variant.name} {alias} {query.qid}: HTTP {response.status_code}: {response.text[:300]}")
    data = response.json()
    meta, usage = data["meta"], data["usage"]
    ranked = [docids[r["index"]] for r in data["results"]]
    scores = {docids[r["index"]]: r["relevance_score"] for r in data["results"]}
    return Outcome(query.qid, ranked, scores, seconds, meta["llm_calls"], usage["prompt_tokens"],
                   usage["completion_tokens"], meta["cost_usd"], meta["score_type"], meta["partial"],
                   meta["hedges"])


def threshold_counts(outcomes: list[Outcome], qrels: dict[str, dict[str, int]]) -> tuple[int, int]:
    """(right, judged) over the top 10 of every answer: grade >= 2 at 0.5 or above, grade 0 below."""
    right = judged = 0
    for o in outcomes:
        grades = qrels.get(o.qid, {})
        for docid in o.ranked[:10]:
            grade = grades.get(docid)
            if grade is None or grade == 1:
                continue
            judged += 1
            right += (o.scores[docid] >= 0.5) == (grade >= 2)
    return right, judged


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
    rounds: float = 0.0
    wall: list[float] = field(default_factory=list)  # per run: median seconds over the timing queries
    cpu: list[float] = field(default_factory=list)  # per run: the gateway's CPU seconds per request
    load: list[float] = field(default_factory=list)  # per run: the machine's 1-minute load average after it
    hedges: float = 0.0
    partial: int = 0


async def quality(http: httpx.AsyncClient, variant: Variant, row: Row, sets: dict[str, Any], concurrency: int,
                  profiles_run: list[str]) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(alias: str, q: Query) -> Outcome:
        async with limit:
            return await rerank(http, alias, variant, q)

    right = judged = 0
    clean: list[Outcome] = []
    for alias in profiles_run:
        for name, (queries, qrels) in sets.items():
            outcomes = await asyncio.gather(*(one(alias, q) for q in queries))
            key = name if alias == "quality" else f"{alias} {name}"
            row.ndcg[key] = mean_ndcg({o.qid: o.ranked for o in outcomes}, qrels)
            row.partial += sum(o.partial for o in outcomes)
            if alias == "quality":
                ideal = {q.qid: [c.docid for c in sorted(q.candidates, key=lambda c: -qrels.get(q.qid, {}).get(
                    c.docid, 0))] for q in queries}
                row.ceiling[name] = mean_ndcg(ideal, qrels)
                r, j = threshold_counts(outcomes, qrels)
                right, judged, clean = right + r, judged + j, clean + outcomes
    row.threshold = right / judged if judged else float("nan")
    row.score_type = ",".join(sorted({o.score_type for o in clean}))
    row.calls = statistics.fmean(o.calls for o in clean)
    row.prompt_tokens = statistics.fmean(o.prompt_tokens for o in clean)
    row.completion_tokens = statistics.fmean(o.completion_tokens for o in clean)
    row.cost = statistics.fmean(o.cost for o in clean)


async def rounds(http: httpx.AsyncClient, sim: httpx.AsyncClient, variant: Variant, queries: list[Query]) -> float:
    from simulator.timeline import rounds as count_rounds

    counts = []
    for q in queries:
        await sim.post("/reset")
        await rerank(http, "rounds", variant, q)
        counts.append(count_rounds((await sim.get("/calls")).json()))
    return statistics.median(counts)


async def timing(http: httpx.AsyncClient, variant: Variant, queries: list[Query]) -> tuple[float, float]:
    """(median wall seconds, mean hedges) over the queries, one request at a time."""
    outcomes = [await rerank(http, "timing", variant, q) for q in queries]
    return statistics.median(o.seconds for o in outcomes), statistics.fmean(o.hedges for o in outcomes)


def start_simulator(workdir: Path) -> harness.Server:
    port, log = harness.free_port(), workdir / "simulator.log"
    process = harness.spawn(["-m", "simulator", "--port", str(port), "--data", str(DATA_DIR)], log)
    return harness.Server("simulator", process, port, log)


async def measure(args: argparse.Namespace, sim_url: str, gateways: dict[str, str],
                  pids: dict[str, list[int]]) -> list[Row]:
    sets = {name: (load_queries(name)[: args.queries], load_qrels(name)) for name in args.sets}
    timing_queries = load_queries("dl20")[: args.timing_queries]
    rows = []
    async with httpx.AsyncClient(base_url=sim_url, trust_env=False, timeout=30) as sim:
        for name in args.strategies:
            variant = BY_NAME[name]
            row = Row(variant.name, variant.note)
            async with httpx.AsyncClient(base_url=gateways[variant.group], trust_env=False, timeout=400) as http:
                await quality(http, variant, row, sets, args.concurrency, ["quality", *args.robustness])
                print(f"  {name}: nDCG {row.ndcg}", file=sys.stderr, flush=True)
                row.rounds = await rounds(http, sim, variant, timing_queries[:3])
                hedges = []
                for run in range(args.runs):
                    before = sum(counters.process_cpu_seconds(pid) for pid in pids[variant.group])
                    wall, hedged = await timing(http, variant, timing_queries)
                    spent = sum(counters.process_cpu_seconds(pid) for pid in pids[variant.group]) - before
                    row.wall.append(wall)
                    row.cpu.append(spent / len(timing_queries))
                    row.load.append(os.getloadavg()[0])
                    hedges.append(hedged)
                    print(f"  {name}: run {run + 1}: median {wall:.2f}s", file=sys.stderr, flush=True)
                row.hedges = statistics.fmean(hedges) if hedges else 0.0
            rows.append(row)
    return rows


def tables(rows: list[Row], args: argparse.Namespace, markdown: bool) -> str:
    def fmt(header: list[str], body: list[list[str]]) -> str:
        if not markdown:
            return report.table(header, body)
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                          *("| " + " | ".join(r) + " |" for r in body)])

    sliding = next((r for r in rows if r.variant == "sliding"), None)
    main = [[r.variant, report.spread(r.wall).format(".2f") if r.wall else "-",
             f"{statistics.median(r.cpu):.2f}" if r.cpu else "-", f"{statistics.median(r.load):.1f}" if r.load else "-",
             f"{r.rounds:g}", f"{r.calls:.1f}",
             f"{r.hedges:.1f}", f"{r.ndcg.get('dl19', 0):.2f}", f"{r.ndcg.get('dl20', 0):.2f}",
             f"{100 * r.ndcg.get('dl20', 0) / r.ceiling['dl20']:.1f}%" if "dl20" in r.ceiling else "-",
             f"{r.threshold * 100:.1f}%", r.score_type] for r in rows]
    cost = [[r.variant, f"{r.prompt_tokens:,.0f}", f"{r.completion_tokens:,.0f}", f"${r.cost:.4f}",
             f"{r.cost / sliding.cost:.2f}x" if sliding and sliding.cost else "-"] for r in rows]
    robust = [[r.variant, *(f"{r.ndcg.get(f'{p} {s}', float('nan')):.2f}" for p in args.robustness
                            for s in args.sets)] for r in rows]
    ceiling = rows[0].ceiling if rows else {}
    out = [f"Wall seconds per 100-document request at gpt-4-turbo speed (median over {args.timing_queries} DL20 "
           f"queries; min / median / max over {args.runs} runs); rounds with every call 1 s; nDCG@10 x100 "
           f"with judgment-perfect answers (perfect reordering: DL19 {ceiling.get('dl19', 0):.2f}, "
           f"DL20 {ceiling.get('dl20', 0):.2f}); threshold: judged top-10 documents on the right side of "
           "0.5; CPU: the gateway process's CPU seconds per request; load: the machine's 1-minute load average",
           fmt(["strategy", "wall s", "CPU s", "load", "rounds", "calls", "hedges", "DL19", "DL20", "DL20 / perfect",
                       "threshold", "scores"], main),
           "", "Tokens and dollars per query at gpt-4-turbo prices ($10 / $30 per M), against the sliding window",
           fmt(["strategy", "prompt tokens", "completion tokens", "$ / query", "vs sliding"], cost)]
    if args.robustness:
        out += ["", f"Robustness, nDCG@10 x100: noise = 20% of grades random; bias = first passage of a prompt "
                    f"+{args.bias:g} grade over the last",
                fmt(["strategy", *(f"{p} {s.upper()}" for p in args.robustness for s in args.sets)], robust)]
    return "\n".join(out)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Model settings the command line changes from the shipped ones (hedging experiments)."""
    keys = {"hedge_after": "hedge_after_seconds", "max_hedges": "max_hedges"}
    return {name: getattr(args, key) for key, name in keys.items() if getattr(args, key) is not None}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--strategies", default=",".join(v.name for v in VARIANTS))
    parser.add_argument("--sets", default="dl19,dl20")
    parser.add_argument("--queries", type=int, default=None, help="first N queries per set for quality (all)")
    parser.add_argument("--timing-queries", type=int, default=10, help="DL20 queries timed per run (10)")
    parser.add_argument("--runs", type=int, default=3, help="timing runs (3)")
    parser.add_argument("--robustness", default="noise,bias", help="comma-separated: noise, bias ('' for none)")
    parser.add_argument("--bias", type=float, default=1.0, help="position bias in grades (1.0)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent requests in the quality passes")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--hedge-after", type=float, default=None,
                        help=f"hedge_after_seconds when timing (shipped: {SHIPPED.hedge_after_seconds:g}; 0: off)")
    parser.add_argument("--max-hedges", type=int, default=None, help=f"max_hedges (shipped: {SHIPPED.max_hedges})")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds for the whole benchmark")
    cli.add_json(parser, "strategies")
    cli.add_keep_logs(parser)
    args = parser.parse_args(argv)
    args.strategies = cli.comma_list(parser, args.strategies, "strategy", BY_NAME)
    args.sets = cli.comma_list(parser, args.sets, "set", ("dl19", "dl20"))
    args.robustness = cli.comma_list(parser, args.robustness, "profile", ("noise", "bias"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="rerank-bench-strategies-"))
    servers: list[harness.Server] = []
    with harness.sigterm_as_exit(), harness.time_limit(args.timeout, "bench.strategies: time limit reached"):
        try:
            sim = start_simulator(workdir)
            servers.append(sim)
            sim.wait_ready("/health")
            gateways, pids = {}, {}
            for group in sorted({BY_NAME[s].group for s in args.strategies}):
                home = workdir / (group or "default")
                home.mkdir()
                config = home / "config.toml"
                config.write_text(gateway_config(sim.url, group, args.bias, overrides(args)))
                gateway = harness.start_gateway(config, home, log_level="warning")
                servers.append(gateway)
                gateway.wait_ready("/health")
                gateways[group], pids[group] = gateway.url, [gateway.pid]
            print(f"simulator {sim.url}, gateways {gateways}; logs in {workdir}", file=sys.stderr, flush=True)
            rows = asyncio.run(measure(args, sim.url, gateways, pids))
        finally:
            for server in reversed(servers):
                server.stop()
            if not args.keep_logs:
                shutil.rmtree(workdir, ignore_errors=True)
    print(tables(rows, args, args.markdown))
    if args.json:
        report.write_json(args.json, {"options": cli.as_json(args), "shipped": SHIPPED.model_dump(),
                                      "rows": [asdict(r) for r in rows]})
    return 0


if __name__ == "__main__":
    harness.run_main(main)
