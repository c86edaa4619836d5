"""Latency and throughput of the gateway under load, side by side with its baselines in one run.

Load comes from a separate process, closed loop (`--connections` keep-alive
connections, each sending its next request when its last one is answered), with
real TREC DL passages: wrk for cache hits (thousands a second, where a Python client
would take as much CPU as the server), a fixed count of requests from this process
for misses (tens a second, each costing the server far more than the client).
Each cell of (hit or miss, upstream speed, mode, documents) measures the gateway
and its baseline back to back, `--repeat` times, alternating which goes first,
and reports requests/s, p50/p99 latency, the server's CPU per request, and the
gateway/baseline ratios, min / median / max over the runs:

    hit    the same body again and again, answered from the gateway's cache, against
           `bench.bare`: a bare Starlette endpoint that parses the same body and answers
           a result of the same size. Targets: req/s ratio >= 1.0, p99 ratio <= 2.0.
    miss   every body new (a counter in the query), so every request makes its LLM calls,
           against `bench.minimal`: a ~150-line pipeline making the same kind of calls to
           the same upstream, through LiteLLM (the ratio's baseline) and through raw httpx
           (what LiteLLM itself costs). "instant" is the simulator at ~0 ms per call: the
           CPU-bound case; "hosted" at gpt-4-turbo's speed: what a client waits.

    .venv/bin/python -m bench.latency [--scenarios hit,miss] [--speeds instant,hosted] [--modes ...]
        [--documents 20,100] [--seconds 5] [--miss-requests 32] [--hosted-requests 16] [--repeat 3] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import cli, counters, harness, plot, report, upstream
from bench.load import LoadResult, fixed_count
from bench.trec import load_queries
from bench.wrk import UNIQUE, run_wrk

MODES = ("listwise", "pointwise")
BASELINE = {"hit": "bare", "miss": "minimal-litellm"}


@dataclass(frozen=True)
class Cell:
    scenario: str  # "hit" or "miss"
    speed: str  # the upstream's: "instant" or "hosted" (hits never reach it)
    mode: str
    documents: int

    @property
    def label(self) -> str:
        where = "cache hit" if self.scenario == "hit" else f"miss, {self.speed}"
        return f"{where}, {self.mode}, {self.documents} docs"

    def servers(self) -> list[str]:
        if self.scenario == "hit":
            return ["gateway", "bare"]
        # At hosted speed both wait on the same upstream: raw httpx would say nothing new.
        return ["gateway", "minimal-litellm"] + (["minimal-httpx"] if self.speed == "instant" else [])


@dataclass
class Measurement:
    cell: Cell
    server: str
    run: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms_per_request: float
    requests: int
    errors: int
    bytes_per_response: float


class Servers:
    """The processes a run needs, started on first use and stopped together."""

    def __init__(self, workdir: Path, up: upstream.Upstream, cells: list[Cell]) -> None:
        self.workdir, self.up = workdir, up
        speeds = sorted({c.speed for c in cells if c.scenario == "miss"} | {"instant"})
        self.aliases = {f"{mode}-{speed}": (up.target(speed), mode) for speed in speeds for mode in MODES}
        self.started: dict[str, harness.Server] = {}

    def get(self, name: str, speed: str) -> harness.Server:
        key = name if name in ("gateway", "bare") else f"{name}-{speed}"
        if key not in self.started:
            self.started[key] = self._start(name, speed)
        return self.started[key]

    def _start(self, name: str, speed: str) -> harness.Server:
        if name == "gateway":
            # No circuit breaker: an upstream hiccup under load must not turn the rest of the run into 503s.
            config = harness.write_gateway_config(self.workdir / "config.toml", self.aliases, cache=True,
                                                  request_timeout=120,
                                                  reliability={"breaker_failure_threshold": 1_000_000})
            server = harness.start_gateway(config, self.workdir)
            server.wait_ready("/health")
            return server
        if name == "bare":
            server = harness.start_module("bare", "bench.bare", [], self.workdir)
        else:
            target = self.up.target(speed)
            client = name.removeprefix("minimal-")
            server = harness.start_module(f"{name}-{speed}", "bench.minimal", [
                "--api-base", target.api_base, "--model", target.model, "--api-key-env", target.key_env,
                "--client", client], self.workdir)
        server.wait_ready("/health")
        return server

    def stop(self) -> None:
        for server in self.started.values():
            server.stop()


def body_for(cell: Cell, documents: list[str], query: str) -> bytes:
    if cell.scenario == "miss":
        query = f"{query} {UNIQUE.decode()}"  # a new query, so a new cache key, every request
    return json.dumps({"model": f"{cell.mode}-{cell.speed}", "mode": cell.mode, "query": query,
                       "documents": documents[: cell.documents]}).encode()


def measure(server: harness.Server, cell: Cell, body: bytes, run: int, args: argparse.Namespace,
            name: str) -> Measurement:
    # One request first: a hit fills the cache, a miss (with its own query) warms the server's first call.
    warm = httpx.post(server.url + "/v1/rerank", content=body.replace(UNIQUE, f"warm-{run}".encode()),
                      timeout=300, trust_env=False, headers={"content-type": "application/json"})
    if warm.status_code != 200:
        raise RuntimeError(f"{name}: HTTP {warm.status_code}: {warm.text[:300]}\n{server.log_tail()}")
    cpu = counters.process_cpu_seconds(server.pid)
    if cell.scenario == "hit":
        result: LoadResult = run_wrk(server.url + "/v1/rerank", body, seconds=args.seconds,
                                     connections=args.connections, timeout=60)
    else:
        count = args.hosted_requests if cell.speed == "hosted" else args.miss_requests
        prefix, _, suffix = body.partition(UNIQUE)
        result = asyncio.run(fixed_count(server.url + "/v1/rerank", lambda n: b"%s%d-%d%s" % (prefix, run, n, suffix),
                                         connections=args.connections, requests=count, timeout=300))
    cpu = counters.process_cpu_seconds(server.pid) - cpu
    if result.requests == 0:
        raise RuntimeError(f"{name}: no request finished ({cell.label})\n{server.log_tail()}")
    return Measurement(cell, name, run, result.rps, result.p50_ms, result.p99_ms, result.max_ms,
                       1000 * cpu / result.requests, result.requests, result.errors,
                       result.bytes / result.requests)


def run_all(args: argparse.Namespace, cells: list[Cell]) -> list[Measurement]:
    query = load_queries("dl19")[0]
    documents = [c.text for c in query.candidates]
    results: list[Measurement] = []
    steps = sum(len(c.servers()) for c in cells) * args.repeat
    with harness.workdir() as workdir:
        with upstream.running(args, workdir) as up:
            if up.kind == "fake" and any(c.speed == "hosted" and c.scenario == "miss" for c in cells):
                print("no simulator package: hosted-speed cells skipped", file=sys.stderr)
                cells = [c for c in cells if not (c.speed == "hosted" and c.scenario == "miss")]
            servers = Servers(workdir, up, cells)
            bar = plot.progress(steps, "latency")
            try:
                for run in range(args.repeat):
                    for cell in cells:
                        names = cell.servers()
                        if run % 2:  # alternate who goes first
                            names = names[::-1]
                        body = body_for(cell, documents, query.query)
                        for name in names:
                            bar.set_postfix_str(f"run {run + 1}: {cell.label}: {name}")
                            results.append(measure(servers.get(name, cell.speed), cell, body, run, args, name))
                            bar.update()
            finally:
                bar.close()
                servers.stop()
    return results


def summarize(results: list[Measurement]) -> list[dict[str, Any]]:
    """One row per (cell, server): spreads of each figure and of its ratio to the cell's baseline."""
    rows = []
    cells = list(dict.fromkeys(m.cell for m in results))
    for cell in cells:
        mine = [m for m in results if m.cell == cell]
        base = {m.run: m for m in mine if m.server == BASELINE[cell.scenario]}
        for server in cell.servers():
            ms = [m for m in mine if m.server == server]
            if not ms:
                continue
            row: dict[str, Any] = {"cell": asdict(cell), "label": cell.label, "server": server}
            for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request", "bytes_per_response"):
                row[key] = report.spread(getattr(m, key) for m in ms)
            row["errors"] = sum(m.errors for m in ms)
            if server != BASELINE[cell.scenario] and base:
                row["rps_ratio"] = report.spread(m.rps / base[m.run].rps for m in ms if m.run in base)
                row["p99_ratio"] = report.spread(m.p99_ms / base[m.run].p99_ms for m in ms if m.run in base)
                row["cpu_ratio"] = report.spread(m.cpu_ms_per_request / base[m.run].cpu_ms_per_request
                                                 for m in ms if m.run in base)
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    def ratio(row: dict[str, Any], key: str) -> str:
        return row[key].format(".2f") if key in row else "baseline"

    header = ["cell", "server", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "req/s ratio", "p99 ratio", "err"]
    lines = [[r["label"], r["server"], r["rps"].format(".0f"), r["p50_ms"].format(".1f"), r["p99_ms"].format(".1f"),
              r["cpu_ms_per_request"].format(".2f"), ratio(r, "rps_ratio"), ratio(r, "p99_ratio"), str(r["errors"])]
             for r in rows]
    return report.table(header, lines, align="<<")


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    checks = []
    for r in rows:
        cell = r["cell"]
        if cell["scenario"] == "hit" and cell["documents"] == 100 and r["server"] == "gateway":
            checks.append((f"{r['label']}: req/s {r['rps_ratio'].median:.2f}x the bare endpoint's (>= 1.0)",
                           r["rps_ratio"].median >= 1.0))
            checks.append((f"{r['label']}: p99 {r['p99_ratio'].median:.2f}x the bare endpoint's (<= 2.0)",
                           r["p99_ratio"].median <= 2.0))
    return checks


def write_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    compared = [r for r in rows if "rps_ratio" in r]
    labels = [f"{r['label']}: {r['server']}" for r in compared]
    return plot.bars(path, "gateway (and raw httpx) against each cell's baseline; whiskers: min-max over runs",
                     labels, [("req/s ratio (>= 1 is faster)", [r["rps_ratio"] for r in compared]),
                              ("p99 ratio (<= 1 is faster)", [r["p99_ratio"] for r in compared]),
                              ("CPU per request ratio", [r["cpu_ratio"] for r in compared])],
                     reference=[1.0, 1.0, 1.0])


def cells_from(args: argparse.Namespace) -> list[Cell]:
    cells = []
    for scenario in args.scenarios:
        for speed in (["instant"] if scenario == "hit" else args.speeds):
            for mode in args.modes:
                for documents in args.documents:
                    cells.append(Cell(scenario, speed, mode, documents))
    return cells


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--scenarios", default="hit,miss")
    parser.add_argument("--speeds", default="instant,hosted", help="upstream speeds for misses")
    parser.add_argument("--modes", default="listwise,pointwise")
    parser.add_argument("--documents", default="20,100")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk's load per cache-hit measurement")
    parser.add_argument("--miss-requests", type=int, default=32, help="requests per miss measurement (instant)")
    parser.add_argument("--hosted-requests", type=int, default=16, help="requests per hosted-speed measurement")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    cli.add_measuring(parser, "latency", knobs=False)
    args = cli.parse(parser, argv)
    if args.smoke:
        args.scenarios, args.speeds, args.documents = "hit,miss", "instant", "20"
        args.seconds, args.repeat, args.miss_requests = 1.0, 1, 4
    args.scenarios = cli.comma_list(parser, args.scenarios, "scenario", BASELINE)
    args.speeds = cli.comma_list(parser, args.speeds, "speed", upstream.SPEEDS)
    args.modes = cli.comma_list(parser, args.modes, "mode", MODES)
    args.documents = [int(n) for n in cli.comma_list(parser, args.documents, "document count")]
    if args.smoke:
        args.modes = args.modes[:1]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cells = cells_from(args)
    results = run_all(args, cells)
    rows = summarize(results)
    print(f"latency and throughput, {args.connections} connections: cache hits by wrk for {args.seconds:g}s, "
          f"misses {args.miss_requests} requests ({args.hosted_requests} at hosted speed); "
          f"min / median / max over {args.repeat} runs")
    print(format_table(rows))
    checks = targets(rows)
    print("\n".join(report.verdicts(checks)))
    out = args.json
    report.write_json(out, {"args": cli.as_json(args), "rows": rows,
                            "measurements": [asdict(m) for m in results]})
    print(f"wrote {out} and {write_plot(rows, out.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    harness.run_main(main)
