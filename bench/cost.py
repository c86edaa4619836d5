"""What a query costs: prompt and completion tokens, and dollars, per query and strategy.

Each strategy reranks the BM25 top 100 of `--queries` TREC DL queries through the
gateway (cache off). Tokens are the upstream's own `usage` counts (the simulator
counts with tiktoken's cl100k_base and OpenAI's chat formula; a real model counts
its own), priced at the list prices below, per query and per 1,000 queries.
gpt-4o-mini counts with o200k_base, a few percent fewer tokens for English text
than cl100k, so its dollars are slightly high here.

    .venv/bin/python -m bench.cost [--strategies listwise,pointwise] [--queries 20] [--repeat 3] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from bench import cli, harness, plot, ranking, report
from bench.trec import load_queries

# USD per million tokens (input, output): OpenAI's list prices.
PRICES = {"gpt-4-turbo-preview": (10.00, 30.00), "gpt-4o-mini": (0.15, 0.60)}


def dollars(prompt_tokens: float, completion_tokens: float, model: str) -> float:
    price_in, price_out = PRICES[model]
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1e6


def run_all(args: argparse.Namespace, workdir: Path) -> tuple[list[ranking.Pass], str]:
    queries = load_queries(args.set)[: args.queries]
    passes: list[ranking.Pass] = []
    with ranking.gateway_for(args, workdir, args.repeat) as (url, aliases, kind):
        bar = plot.progress(len(queries) * len(args.strategies) * args.repeat, "cost")
        try:
            for run, alias in enumerate(aliases):
                for strategy in args.strategies:
                    bar.set_postfix_str(f"run {run + 1}: {strategy}")
                    found = asyncio.run(ranking.rerank_all(url, alias, strategy, args.set, queries,
                                                           concurrency=args.concurrency,
                                                           timeout=args.request_timeout, documents=args.documents,
                                                           done=bar.update))
                    passes.append(found)
        finally:
            bar.close()
    return passes, kind


def rows_of(passes: list[ranking.Pass], strategies: list[str]) -> list[dict[str, Any]]:
    rows = []
    for strategy in strategies:
        mine = [p for p in passes if p.strategy == strategy]
        row: dict[str, Any] = {
            "strategy": strategy,
            "calls": report.spread(p.mean("llm_calls") for p in mine),
            "prompt_tokens": report.spread(p.mean("prompt_tokens") for p in mine),
            "completion_tokens": report.spread(p.mean("completion_tokens") for p in mine),
        }
        for model in PRICES:
            row[f"usd_{model}"] = report.spread(dollars(p.mean("prompt_tokens"), p.mean("completion_tokens"), model)
                                                for p in mine)
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ["strategy", "LLM calls/query", "prompt tok/query", "completion tok/query",
              *(f"$/query {m}" for m in PRICES), *(f"$/1k queries {m}" for m in PRICES)]
    return report.table(header, [[
        r["strategy"], r["calls"].format(".1f"), r["prompt_tokens"].format(".0f"), r["completion_tokens"].format(".0f"),
        *(r[f"usd_{m}"].format(".4f") for m in PRICES),
        *(report.Spread(r[f"usd_{m}"].low * 1000, r[f"usd_{m}"].median * 1000, r[f"usd_{m}"].high * 1000).format(".2f")
          for m in PRICES)] for r in rows])


def write_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    labels = [r["strategy"] for r in rows]
    return plot.bars(path, "dollars per 1,000 queries (100 documents each), at list prices",
                     labels, [(f"$ per 1k queries, {m}", [report.Spread(r[f"usd_{m}"].low * 1000,
                                                                      r[f"usd_{m}"].median * 1000,
                                                                      r[f"usd_{m}"].high * 1000) for r in rows])
                              for m in PRICES])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--set", default="dl19", choices=["dl19", "dl20"])
    ranking.add_options(parser, queries=20)
    cli.add_measuring(parser, "cost")
    args = cli.parse(parser, argv)
    if args.smoke:
        args.queries, args.documents, args.repeat = 2, 20, 1
    ranking.check_options(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with harness.workdir() as workdir:
        passes, kind = run_all(args, workdir)
    rows = rows_of(passes, args.strategies)
    print(f"tokens and dollars per query ({args.queries} {args.set} queries, {args.documents} documents each, "
          f"upstream: {kind}); min / median / max over {args.repeat} runs")
    print(format_table(rows))
    if kind == "fake":
        print("note: the fake upstream counts words, not tokens: run with the simulator for real counts")
    report.write_json(args.json, {"args": cli.as_json(args), "upstream": kind, "prices_per_million": PRICES,
                                  "rows": rows})
    print(f"wrote {args.json} and {write_plot(rows, args.json.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    harness.run_main(main)
