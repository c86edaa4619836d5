"""nDCG@10 of the gateway on TREC DL, end to end over HTTP, against the fake "judge" upstream.

The judge answers from the NIST judgments, so this measures what the gateway's
plumbing (prompting, truncation, parsing, windowing, score aggregation) keeps of
a perfect model: the gateway column should sit near the ceiling column.

    .venv/bin/python -m bench.rerank_trec [--sets dl19,dl20] [--modes listwise,pointwise]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bench import cli, harness, report
from bench.trec import Query, load_qrels, load_queries, mean_ndcg


@dataclass
class QueryOutcome:
    qid: str
    ranked: list[str]
    llm_calls: int
    total_tokens: int
    failed_calls: int
    parse_failures: int
    cached: bool
    seconds: float
    missing: int  # candidates absent from the response, appended in BM25 order


@dataclass
class Row:
    set: str
    mode: str
    queries: int
    bm25: float
    gateway: float
    ceiling: float
    calls_per_request: float
    tokens_per_request: float
    failed_calls: int
    parse_failures: int
    cached_responses: int
    incomplete_rankings: int
    seconds_per_request: float
    wall_seconds: float
    per_query: dict[str, float] = field(default_factory=dict)


def ideal_order(query: Query, judgments: dict[str, int]) -> list[str]:
    # Stable sort: ties keep BM25 order, as any reranker's ties would.
    return [c.docid for c in sorted(query.candidates, key=lambda c: -judgments.get(c.docid, 0))]


async def rerank_one(
    http: httpx.AsyncClient, limit: asyncio.Semaphore, mode: str, query: Query
) -> QueryOutcome:
    docids = [c.docid for c in query.candidates]
    body: dict[str, Any] = {
        "query": query.query,
        "documents": [c.text for c in query.candidates],
        "model": harness.ALIASES[mode],
        "mode": mode,
        "top_n": len(docids),
        "return_documents": False,  # indices are all we need; keeps responses small
    }
    async with limit:
        started = time.perf_counter()
        response = await http.post("/v1/rerank", json=body)
        seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{mode} query {query.qid}: HTTP {response.status_code}: {response.text[:500]}")
    data = response.json()
    seen: dict[str, None] = {}
    for result in data["results"]:
        seen.setdefault(docids[result["index"]], None)
    missing = [d for d in docids if d not in seen]
    meta, usage = data["meta"], data["usage"]
    return QueryOutcome(
        query.qid, list(seen) + missing, meta["llm_calls"], usage["total_tokens"], meta["failed_calls"],
        meta["parse_failures"], meta["cached"], seconds, len(missing),
    )


async def run_mode(
    base_url: str, name: str, mode: str, queries: list[Query], qrels: dict[str, dict[str, int]],
    concurrency: int, request_timeout: float,
) -> Row:
    limit = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=request_timeout, trust_env=False) as http:
        outcomes = await asyncio.gather(*(rerank_one(http, limit, mode, q) for q in queries))
    wall = time.perf_counter() - started
    runs = {o.qid: o.ranked for o in outcomes}
    bm25 = {q.qid: [c.docid for c in q.candidates] for q in queries}
    ceiling = {q.qid: ideal_order(q, qrels.get(q.qid, {})) for q in queries}
    per_query = {qid: round(mean_ndcg({qid: run}, qrels), 2) for qid, run in runs.items() if qid in qrels}
    return Row(
        set=name, mode=mode, queries=len(queries),
        bm25=mean_ndcg(bm25, qrels), gateway=mean_ndcg(runs, qrels), ceiling=mean_ndcg(ceiling, qrels),
        calls_per_request=statistics.fmean(o.llm_calls for o in outcomes),
        tokens_per_request=statistics.fmean(o.total_tokens for o in outcomes),
        failed_calls=sum(o.failed_calls for o in outcomes),
        parse_failures=sum(o.parse_failures for o in outcomes),
        cached_responses=sum(o.cached for o in outcomes),
        incomplete_rankings=sum(o.missing > 0 for o in outcomes),
        seconds_per_request=statistics.fmean(o.seconds for o in outcomes),
        wall_seconds=wall, per_query=per_query,
    )


def format_table(rows: list[Row]) -> str:
    header = ["set", "mode", "n", "BM25", "gateway", "ceiling", "calls/req", "tokens/req", "failed", "unparsed",
              "s/req"]
    return report.table(header, [
        [r.set, r.mode, str(r.queries), f"{r.bm25:.2f}", f"{r.gateway:.2f}", f"{r.ceiling:.2f}",
         f"{r.calls_per_request:.2f}", f"{r.tokens_per_request:.1f}", str(r.failed_calls), str(r.parse_failures),
         f"{r.seconds_per_request:.2f}"] for r in rows], align="<<")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--sets", default="dl19,dl20", help="comma-separated: dl19, dl20")
    parser.add_argument("--modes", default="listwise,pointwise", help="comma-separated: listwise, pointwise")
    parser.add_argument("--queries", type=int, default=None, help="first N queries per set (default: all)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent rerank requests")
    cli.add_json(parser, "rerank_trec")
    parser.add_argument("--request-timeout", type=float, default=300.0, help="seconds per rerank request")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds for the whole benchmark")
    cli.add_keep_logs(parser)
    args = parser.parse_args(argv)
    args.sets = cli.comma_list(parser, args.sets, "set", ("dl19", "dl20"))
    args.modes = cli.comma_list(parser, args.modes, "mode", harness.ALIASES)
    if args.concurrency < 1 or (args.queries is not None and args.queries < 1):
        parser.error("--concurrency and --queries must be positive")
    return args


async def run_all(args: argparse.Namespace, base_url: str) -> list[Row]:
    rows: list[Row] = []
    for name in args.sets:
        queries, qrels = load_queries(name)[: args.queries], load_qrels(name)
        for mode in args.modes:
            row = await run_mode(base_url, name, mode, queries, qrels, args.concurrency, args.request_timeout)
            print(f"  {name} {mode}: {row.gateway:.2f} in {row.wall_seconds:.0f}s", file=sys.stderr,
                  flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("starting fake upstream and gateway ...", file=sys.stderr, flush=True)
    with harness.running_stack(keep_logs=args.keep_logs) as stack:
        if args.keep_logs:
            print(f"logs and config in {stack.workdir}", file=sys.stderr)
        try:
            rows = asyncio.run(asyncio.wait_for(run_all(args, stack.gateway.url), args.timeout))
        except Exception:
            print(f"--- gateway log tail ---\n{stack.gateway.log_tail()}", file=sys.stderr)
            raise
    print("nDCG@10 x100 with the fake 'judge' upstream (reads TREC judgments); "
          "tokens are as the fake's usage reports them")
    print(format_table(rows))
    for r in rows:
        if r.cached_responses or r.incomplete_rankings:
            print(f"warning: {r.set} {r.mode}: {r.cached_responses} cached responses, "
                  f"{r.incomplete_rankings} incomplete rankings", file=sys.stderr)
    if args.json:
        report.write_json(args.json, {"args": cli.as_json(args), "rows": [asdict(r) for r in rows]})
    return 0


if __name__ == "__main__":
    harness.run_main(main)
