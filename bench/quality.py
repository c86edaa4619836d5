"""Ranking quality: nDCG@10 (trec_eval's definition) on TREC DL19/DL20, for every strategy the gateway has.

Every query's BM25 top 100 goes through the gateway over HTTP (cache off), once per
strategy and run. The upstream is the simulator by default, answering from the
NIST judgments with the chosen `--noise` (a passage's grade replaced by a random
one with this probability) and `--bias` (grades the first passage of a prompt
gains over the last); each run has its own seed. With noise and bias at 0 the
upstream is a perfect judge, so the gateway should reach the ceiling (a perfect
reordering): any gap is its prompting, truncation, parsing or windowing losing
information. Point it at a real model with `--base-url URL --model NAME
[--api-key-env VAR]` (and `--repeat 1`: every run is paid for).

Printed beside ours: BM25, the ceiling, and the published reference rows RankGPT
with gpt-4 (Sun et al. 2023) and RankZephyr (Pradeep et al. 2023). DL19 is for
tuning, DL20 the acceptance set: report on it, never tune on it.

    .venv/bin/python -m bench.quality [--sets dl19,dl20] [--strategies listwise,pointwise] [--noise 0.2]
        [--bias 0.3] [--queries N] [--repeat 3] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bench import cli, harness, plot, ranking, report
from bench.trec import load_qrels, load_queries, mean_ndcg

SETS = ("dl19", "dl20")
# Published nDCG@10 on the BM25 top 100.
REFERENCES = {"RankGPT gpt-4 (Sun et al. 2023)": {"dl19": 75.59, "dl20": 70.56},
              "RankZephyr (Pradeep et al. 2023)": {"dl19": 73.65, "dl20": 70.80}}


def run_all(args: argparse.Namespace, workdir: Path) -> tuple[list[ranking.Pass], str]:
    sets = {name: (load_queries(name)[: args.queries], load_qrels(name)) for name in args.sets}
    steps = sum(len(q) for q, _ in sets.values()) * len(args.strategies) * args.repeat
    passes: list[ranking.Pass] = []
    with ranking.gateway_for(args, workdir, args.repeat) as (url, aliases, kind):
        bar = plot.progress(steps, "quality")
        try:
            for run, alias in enumerate(aliases):
                for name, (queries, _) in sets.items():
                    for strategy in args.strategies:
                        bar.set_postfix_str(f"run {run + 1}: {name} {strategy}")
                        found = asyncio.run(ranking.rerank_all(
                            url, alias, strategy, name, queries, concurrency=args.concurrency,
                            timeout=args.request_timeout, documents=args.documents, done=bar.update))
                        found.extra["run"] = run
                        passes.append(found)
        finally:
            bar.close()
    return passes, kind


def rows_of(passes: list[ranking.Pass], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in args.sets:
        queries, qrels = load_queries(name)[: args.queries], load_qrels(name)
        cut = {q.qid: q.candidates[: args.documents] for q in queries}
        bm25 = mean_ndcg({qid: [c.docid for c in cands] for qid, cands in cut.items()}, qrels)
        ceiling = mean_ndcg({q.qid: ranking.ideal_order(q, qrels.get(q.qid, {}), args.documents)
                             for q in queries}, qrels)
        rows.append({"set": name, "system": "BM25 (the input order)", "ndcg": report.spread([bm25])})
        for strategy in args.strategies:
            mine = [p for p in passes if p.set == name and p.strategy == strategy]
            rows.append({
                "set": name, "system": f"gateway {strategy}", "strategy": strategy,
                "ndcg": report.spread(p.ndcg(qrels) for p in mine),
                "calls": report.spread(p.mean("llm_calls") for p in mine),
                "prompt_tokens": report.spread(p.mean("prompt_tokens") for p in mine),
                "completion_tokens": report.spread(p.mean("completion_tokens") for p in mine),
                "seconds": report.spread(p.mean("seconds") for p in mine),
                "failed_calls": sum(o.failed_calls for p in mine for o in p.outcomes),
                "parse_failures": sum(o.parse_failures for p in mine for o in p.outcomes),
                "incomplete": sum(o.missing > 0 for p in mine for o in p.outcomes),
                "failed_requests": sum(o.error is not None for p in mine for o in p.outcomes),
            })
        rows.append({"set": name, "system": "ceiling (perfect reordering)", "ndcg": report.spread([ceiling])})
        if args.queries is None and args.documents == 100:  # the references are over every query, top 100
            rows += [{"set": name, "system": f"reference: {ref}", "ndcg": report.spread([scores[name]])}
                     for ref, scores in REFERENCES.items()]
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str, spec: str) -> str:
        return row[key].format(spec) if key in row else ""

    header = ["set", "system", "nDCG@10", "calls/query", "prompt tok/query", "completion tok/query",
              "s/query", "failed", "unparsed"]
    return report.table(header, [[
        r["set"], r["system"], cell(r, "ndcg", ".2f"), cell(r, "calls", ".1f"), cell(r, "prompt_tokens", ".0f"),
        cell(r, "completion_tokens", ".0f"), cell(r, "seconds", ".2f"), str(r.get("failed_calls", "")),
        str(r.get("parse_failures", ""))] for r in rows], align="<<")


def write_plot(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    return plot.bars(path, title, [f"{r['set']}: {r['system']}" for r in rows],
                     [("nDCG@10 x100", [r["ndcg"] for r in rows])])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--sets", default="dl19,dl20")
    ranking.add_options(parser, queries=None)
    cli.add_measuring(parser, "quality")
    args = cli.parse(parser, argv)
    if args.smoke:
        args.sets, args.queries, args.documents, args.repeat = "dl19", 2, 20, 1
    args.sets = cli.comma_list(parser, args.sets, "set", SETS)
    ranking.check_options(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with harness.workdir() as workdir:
        passes, kind = run_all(args, workdir)
    rows = rows_of(passes, args)
    where = {"simulator": f"the simulator (noise {args.noise:g}, bias {args.bias:g}, one seed per run)",
             "fake": "the tests' fake judge (no simulator package)",
             "remote": f"{args.model} at {args.base_url}"}[kind]
    title = f"nDCG@10 x100 through the gateway, upstream: {where}; min / median / max over {args.repeat} runs"
    print(title)
    print(format_table(rows))
    for row in rows:
        if row.get("incomplete") or row.get("failed_requests"):
            print(f"warning: {row['set']} {row['system']}: {row['incomplete']} incomplete rankings, "
                  f"{row['failed_requests']} failed requests (scored as BM25's order)", file=sys.stderr)
    report.write_json(args.json, {"args": cli.as_json(args), "upstream": kind, "rows": rows,
                                  "per_query": [{"set": p.set, "strategy": p.strategy, **p.extra,
                                                 "outcomes": p.outcomes} for p in passes]})
    print(f"wrote {args.json} and {write_plot(rows, args.json.with_suffix('.png'), title)}")
    return 0


if __name__ == "__main__":
    harness.run_main(main)
