"""nDCG@10 on TREC DL19 of the embedded local model (`local/smollm2-135m`), and its latency.

Runs the real strategies (gateway.pointwise / gateway.listwise) through
`LiteLLMChatClient` -> `litellm.acompletion` -> the in-process llama.cpp
provider, with no server. Each query's BM25 top `--depth` (20) is reranked and
ranks depth+1..100 follow in BM25 order. Every mode is also scored fused with
the BM25 position i among the reranked documents:
`a * llm_score + (1 - a) * (1 - i / (n - 1))`.

    .venv/bin/python -m bench.local_quality [--queries N] [--modes pointwise,listwise] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import cli, counters, harness, report
from bench.trec import Query, load_qrels, load_queries, mean_ndcg
from gateway.config import ListwiseSettings, ModelSettings, PointwiseSettings
from gateway.strategies import pointwise, sliding
from gateway.strategies import window as listwise_window
from gateway.strategies.base import Ranking
from gateway.strategies.prompts import Prompt, load_prompts
from gateway.strategies.scoring import fuse  # the gateway's own fusion: what ships is what is measured
from gateway.strategies.tokens import get_encoding
from gateway.upstream import local as local_llm
from gateway.upstream.litellm_client import LiteLLMChatClient

MODEL = "local/smollm2-135m"
# The gateway truncates with cl100k_base but SmolLM2's tokenizer counts ~10-20% more tokens,
# so each mode's budget leaves room under the model's real context (N_CTX).
N_CTX = 4096
CONTEXT_WINDOW = {"pointwise": 2048, "listwise": 3072}


@dataclass
class ModeResult:
    mode: str
    queries: int
    ndcg: dict[str, float]  # variant ("llm", "fused a=0.3", ...) -> nDCG@10 x100
    seconds_per_request: float  # mean wall time of one 20-document rerank
    cpu_seconds_per_request: float  # process CPU time (all threads) of the same
    calls: int
    failed_calls: int
    parse_failures: int
    prompt_tokens_per_request: float
    per_query: dict[str, dict[str, Any]] = field(default_factory=dict)


async def rerank(
    mode: str, client: LiteLLMChatClient, prompt: Prompt, query: Query, depth: int,
) -> tuple[Ranking, float, float]:
    enc = get_encoding("cl100k_base")
    texts = [c.text for c in query.candidates[:depth]]
    window = CONTEXT_WINDOW[mode]
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "pointwise":
        settings = PointwiseSettings()
        conversations = pointwise.prepare(enc, prompt, query.query, texts, settings, window)
        ranking = await pointwise.rank_pointwise(client, enc, conversations, settings, logprobs=True)
    else:
        lw = ListwiseSettings()
        job = listwise_window.prepare(enc, prompt, query.query, texts, lw, window)
        ranking = await sliding.rank_listwise(client, enc, prompt, job, lw)
    return ranking, time.perf_counter() - started, time.process_time() - cpu


async def run_mode(
    mode: str, queries: list[Query], qrels: dict[str, dict[str, int]], depth: int, alphas: list[float],
) -> ModeResult:
    prompt = load_prompts(harness.ROOT / "prompts")[mode]
    client = LiteLLMChatClient(ModelSettings(
        litellm_model=MODEL, mode=mode, logprobs=mode == "pointwise",  # type: ignore[arg-type]
        timeout_seconds=3600, context_window=CONTEXT_WINDOW[mode], encoding="cl100k_base"))
    variants = ["llm", *(f"fused a={a:g}" for a in alphas)]
    runs: dict[str, dict[str, list[str]]] = {v: {} for v in variants}
    seconds: list[float] = []
    cpu_seconds: list[float] = []
    calls = failed = unparsed = tokens = 0
    result = ModeResult(mode, len(queries), {}, 0.0, 0.0, 0, 0, 0, 0.0)
    for number, query in enumerate(queries, 1):
        ranking, took, cpu = await rerank(mode, client, prompt, query, depth)
        n = min(depth, len(query.candidates))
        docids = [c.docid for c in query.candidates]
        fused = {f"fused a={a:g}": fuse(ranking.order, ranking.scores, a)[0] for a in alphas}
        orders = {"llm": ranking.order, **fused}
        for variant, order in orders.items():
            runs[variant][query.qid] = [docids[i] for i in order] + docids[n:]
        seconds.append(took)
        cpu_seconds.append(cpu)
        stats = ranking.stats
        calls, failed, tokens = calls + stats.calls, failed + stats.failed_calls, tokens + stats.prompt_tokens
        unparsed += stats.parse_failures
        result.per_query[query.qid] = {"seconds": round(took, 3), "cpu_seconds": round(cpu, 3),
                                       "order": ranking.order,
                                       "scores": [round(s, 4) for s in ranking.scores],
                                       "parse_failures": stats.parse_failures,
                                       "failed_calls": stats.failed_calls}
        print(f"  {mode} {number}/{len(queries)} qid={query.qid}: {took:.1f}s ({cpu:.1f}s CPU), "
              f"{stats.parse_failures} unparsed, {stats.failed_calls} failed", file=sys.stderr, flush=True)
    result.ndcg = {v: mean_ndcg(runs[v], qrels) for v in variants}
    result.seconds_per_request = statistics.fmean(seconds)
    result.cpu_seconds_per_request = statistics.fmean(cpu_seconds)
    result.calls, result.failed_calls, result.parse_failures = calls, failed, unparsed
    result.prompt_tokens_per_request = tokens / len(queries)
    return result


def compare_logits_all(query: Query, docs: int, threads: int | None) -> dict[str, float]:
    """Pointwise prompts through our path (logits_all=False; logprobs read from the last position's
    logits) and through llama-cpp's own logprobs, which need logits_all=True. No prefix reuse."""
    import llama_cpp

    enc, settings = get_encoding("cl100k_base"), PointwiseSettings()
    prompt = load_prompts(harness.ROOT / "prompts")["pointwise"]
    texts = [c.text for c in query.candidates[:docs]]
    conversations = pointwise.prepare(enc, prompt, query.query, texts, settings, 2048)
    name = MODEL.split("/", 1)[1]
    path = str(local_llm.gguf_path(name))
    ours, rss = local_llm.LocalLLM(n_ctx=2048, n_threads=threads), counters.rss_mib()
    with ours._lock:
        ours._model(name)
    rss_ours = counters.rss_mib() - rss
    reference = llama_cpp.Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                                logits_all=True, verbose=False)
    times: dict[str, list[float]] = {"ours": [], "logits_all": []}
    cpu: dict[str, list[float]] = {"ours": [], "logits_all": []}
    worst = 0.0
    for messages in conversations:
        ours._llama.reset()
        started, cpu_started = time.perf_counter(), time.process_time()
        params = {"temperature": 0, "max_tokens": 1, "logprobs": True, "top_logprobs": settings.top_logprobs}
        mine = ours.generate(name, messages, params)
        times["ours"].append(time.perf_counter() - started)
        cpu["ours"].append(time.process_time() - cpu_started)
        reference.reset()
        started, cpu_started = time.perf_counter(), time.process_time()
        theirs = reference.create_chat_completion(
            messages=messages, temperature=0, max_tokens=1, logprobs=True, top_logprobs=settings.top_logprobs)
        times["logits_all"].append(time.perf_counter() - started)
        cpu["logits_all"].append(time.process_time() - cpu_started)
        a = [alt.logprob for alt in mine.choices[0].logprobs.content[0].top_logprobs]
        b = [float(alt["logprob"]) for alt in theirs["choices"][0]["logprobs"]["content"][0]["top_logprobs"]]
        worst = max([worst, *(abs(x - y) for x, y in zip(a, b, strict=False))])
    # The logits_all model fills its n_ctx x n_vocab float32 score rows for every prompt token.
    rss_reference = counters.rss_mib() - rss - rss_ours
    return {"docs": len(conversations), "median_seconds_ours": statistics.median(times["ours"]),
            "median_seconds_logits_all": statistics.median(times["logits_all"]),
            "median_cpu_seconds_ours": statistics.median(cpu["ours"]),
            "median_cpu_seconds_logits_all": statistics.median(cpu["logits_all"]),
            "rss_mib_ours": rss_ours, "rss_mib_logits_all": rss_reference, "max_logprob_difference": worst}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--queries", type=int, default=None, help="first N DL19 queries (default: all 43)")
    parser.add_argument("--modes", default="pointwise,listwise", help="comma-separated: pointwise, listwise")
    parser.add_argument("--depth", type=int, default=20, help="BM25 candidates reranked per query")
    parser.add_argument("--alphas", default="0.3,0.5", help="fusion weights of the LLM score")
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads (default: its own, all cores for prompts)")
    parser.add_argument("--logits-all-check", type=int, default=0, metavar="DOCS",
                        help="also time DOCS pointwise prompts against llama-cpp's logits_all=True logprobs")
    cli.add_json(parser, "local_quality")
    args = parser.parse_args(argv)
    args.modes = cli.comma_list(parser, args.modes, "mode", CONTEXT_WINDOW)
    args.alphas = [float(a) for a in cli.comma_list(parser, args.alphas, "alpha")]
    if (args.queries is not None and args.queries < 1) or args.depth < 2:
        parser.error("--queries must be positive and --depth at least 2")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if reason := local_llm.unavailable_reason():
        raise SystemExit(reason)
    handler = local_llm.register(n_ctx=N_CTX, n_threads=args.threads)
    started = time.perf_counter()
    with handler._lock:  # the model loads lazily; load it here so the timings below exclude it
        handler._model(MODEL.split("/", 1)[1])
    load_seconds = time.perf_counter() - started
    queries, qrels = load_queries("dl19")[: args.queries], load_qrels("dl19")
    bm25 = mean_ndcg({q.qid: [c.docid for c in q.candidates] for q in queries}, qrels)
    load_before = os.getloadavg()
    results = [await run_mode(mode, queries, qrels, args.depth, args.alphas) for mode in args.modes]
    check = None
    if args.logits_all_check:
        check = compare_logits_all(queries[0], args.logits_all_check, args.threads)
    # Latency depends on what else runs on the machine; the load average says how busy it was.
    return {"model": MODEL, "n_ctx": N_CTX, "threads": args.threads, "depth": args.depth,
            "queries": len(queries), "load_seconds": load_seconds, "bm25": bm25,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "results": [asdict(r) for r in results], "logits_all_check": check}


def format_table(result: dict[str, Any]) -> str:
    modes = result["results"]
    variants = list(modes[0]["ndcg"]) if modes else []
    header = ["mode", *variants, "s/request", "CPU s/req", "unparsed"]
    rows = [[r["mode"], *(f"{r['ndcg'][v]:.2f}" for v in variants), f"{r['seconds_per_request']:.2f}",
             f"{r['cpu_seconds_per_request']:.2f}", f"{r['parse_failures']}/{r['calls']}"] for r in modes]
    lines = [f"DL19, {result['queries']} queries, rerank BM25 top {result['depth']}; "
             f"BM25 alone {result['bm25']:.2f}; model load {result['load_seconds']:.2f}s",
             report.table(header, rows)]
    if check := result.get("logits_all_check"):
        lines.append(
            f"logits_all=True costs {check['median_seconds_logits_all']:.2f}s "
            f"({check['median_cpu_seconds_logits_all']:.2f}s CPU) against "
            f"{check['median_seconds_ours']:.2f}s ({check['median_cpu_seconds_ours']:.2f}s CPU) "
            f"per pointwise prompt, median of {check['docs']}; "
            f"RSS {check['rss_mib_logits_all']:.0f} MiB against {check['rss_mib_ours']:.0f} MiB; "
            f"top logprobs differ by at most {check['max_logprob_difference']:.1e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    print(format_table(result))
    if args.json:
        report.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    harness.run_main(main)
