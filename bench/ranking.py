"""Rerank TREC DL queries through a running gateway over HTTP, and what each answer cost.

Shared by the quality and cost benchmarks: one `Outcome` per query (the gateway's
order as docids, tokens, calls, failures, time), one `Pass` per (set, strategy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import cli, harness, upstream
from bench.trec import Query, mean_ndcg


@dataclass
class Outcome:
    qid: str
    ranked: list[str]
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    failed_calls: int
    parse_failures: int
    seconds: float
    missing: int  # candidates absent from the response, appended in BM25 order
    error: str | None = None  # the request failed (twice): scored as the BM25 order


@dataclass
class Pass:
    set: str
    strategy: str
    outcomes: list[Outcome]
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def ndcg(self, qrels: dict[str, dict[str, int]]) -> float:
        return mean_ndcg({o.qid: o.ranked for o in self.outcomes}, qrels)

    def mean(self, name: str) -> float:
        return statistics.fmean(getattr(o, name) for o in self.outcomes)


def add_options(parser: argparse.ArgumentParser, queries: int | None) -> None:
    """The options of a run over TREC queries (quality, cost)."""
    parser.add_argument("--strategies", default=",".join(strategies()),
                        help="comma-separated; default every registered strategy")
    parser.add_argument("--queries", type=int, default=queries,
                        help=f"the first N queries of each set (default {queries or 'all'})")
    parser.add_argument("--documents", type=int, default=100, help="BM25 candidates per query (at most 100)")
    parser.add_argument("--concurrency", type=int, default=4, help="rerank requests in flight")
    parser.add_argument("--request-timeout", type=float, default=300.0)


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    args.strategies = cli.comma_list(parser, args.strategies, "strategy", strategies())


def strategies() -> list[str]:
    """Every strategy the gateway registers, by the `mode` a request names it with."""
    from gateway.strategies.registry import FACTORIES

    return list(FACTORIES)


def ideal_order(query: Query, judgments: dict[str, int], documents: int = 100) -> list[str]:
    """The first `documents` candidates, best judged first (stable: ties keep BM25 order, as any reranker's)."""
    return [c.docid for c in sorted(query.candidates[:documents], key=lambda c: -judgments.get(c.docid, 0))]


async def rerank_one(http: httpx.AsyncClient, limit: asyncio.Semaphore, model: str, strategy: str,
                     query: Query, documents: int) -> Outcome:
    candidates = query.candidates[:documents]
    docids = [c.docid for c in candidates]
    body = {"query": query.query, "documents": [c.text for c in candidates], "model": model, "mode": strategy,
            "top_n": len(docids), "return_documents": False}
    async with limit:
        started = time.perf_counter()
        for _ in range(2):  # one retry: a long run against a real model meets the odd 5xx
            response = await http.post("/v1/rerank", json=body)
            if response.status_code == 200:
                break
        seconds = time.perf_counter() - started
    if response.status_code != 200:
        error = f"HTTP {response.status_code}: {response.text[:300]}"
        return Outcome(query.qid, docids, 0, 0, 0, 0, 0, seconds, 0, error)
    data = response.json()
    seen = dict.fromkeys(docids[r["index"]] for r in data["results"])
    missing = [d for d in docids if d not in seen]
    meta, usage = data["meta"], data["usage"]
    return Outcome(query.qid, list(seen) + missing, meta["llm_calls"], usage["prompt_tokens"],
                   usage["completion_tokens"], meta["failed_calls"], meta["parse_failures"], seconds, len(missing))


async def rerank_all(base_url: str, model: str, strategy: str, name: str, queries: list[Query], *,
                     concurrency: int, timeout: float, documents: int = 100,
                     done: Callable[[], None] | None = None) -> Pass:
    limit = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as http:
        async def one(query: Query) -> Outcome:
            outcome = await rerank_one(http, limit, model, strategy, query, documents)
            if done:
                done()
            return outcome

        outcomes = await asyncio.gather(*(one(q) for q in queries))
    return Pass(name, strategy, list(outcomes), time.perf_counter() - started)


@contextlib.contextmanager
def gateway_for(args: argparse.Namespace, workdir: Path, runs: int) -> Iterator[tuple[str, list[str], str]]:
    """The upstream the options name and a gateway (cache off) with one alias per run.

    On the simulator each run has its own seed (noise and tie-breaks differ, the judgments
    do not); elsewhere the runs are plain repeats. Yields (gateway URL, aliases, upstream kind).
    """
    with upstream.running(args, workdir) as up:
        knobs = {"noise": getattr(args, "noise", 0.0), "bias": getattr(args, "bias", 0.0)}
        preset = getattr(args, "preset", "instant")
        aliases = {f"run{r}": (up.target(preset, seed=r, **knobs), "listwise") for r in range(runs)}
        config = harness.write_gateway_config(workdir / "config.toml", aliases, request_timeout=args.request_timeout,
                                              reliability={"breaker_failure_threshold": 1_000_000})
        gateway = harness.start_gateway(config, workdir, log_level="warning")
        try:
            gateway.wait_ready("/health")
            yield gateway.url, list(aliases), up.kind
        finally:
            gateway.stop()
