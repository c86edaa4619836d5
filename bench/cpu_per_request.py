"""The gateway's own CPU time per 100-document rerank miss, against the same calls made without it.

Three measurements of the same sequential requests (distinct TREC DL queries, so
nothing is cached, and each run of `--repeat` asks queries no other run asked) to
the same upstream (the simulator at ~0 ms), in one run; the three are asked each
query in turn, so a shared machine's drifting load falls on all alike:

    gateway   the gateway process (cache off), from /proc/<pid>/stat
    bare      a server replaying exactly the gateway's LLM calls for each query (its prompts,
              its arguments, max_retries=0, its event loop, heap settings and executor) with
              `litellm.acompletion`: gateway - bare, per LLM call, is the
              gateway's overhead outside LiteLLM (target <= 0.5 ms per call)
    minimal   `bench.minimal`, the ~150-line pipeline with the minimal prompt, as a server:
              the target is gateway <= minimal for a 100-document listwise miss

The ratios, not the milliseconds, carry across machines; every figure is min /
median / max over `--repeat` runs.

    .venv/bin/python -m bench.cpu_per_request [--requests 10] [--warmup 2] [--repeat 3] [--smoke]
"""


from __future__ import annotations

import argparse
import asyncio
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cli, counters, harness, plot, report, upstream
from bench.trec import Query, load_queries


@dataclass
class Measurement:
    requests: int
    llm_calls: int
    cpu_seconds: float
    wall_seconds: float

    @property
    def ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / self.requests

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.cpu_seconds / max(self.llm_calls, 1)


# One run: per side ("gateway", "bare", "minimal"), per mode.
Run = dict[str, dict[str, Measurement]]
SIDES = ("gateway", "bare", "minimal")


def benchmark_queries(count: int) -> list[Query]:
    # Distinct queries, so nothing could be answered from any cache.
    queries = load_queries("dl19") + load_queries("dl20")
    if count > len(queries):
        raise SystemExit(f"only {len(queries)} distinct queries, and every measured request of every run asks "
                         f"one of its own; ask for fewer requests or runs")
    return queries[:count]


def measure_servers(servers: dict[str, harness.Server], mode: str, queries: list[Query], warmup: int,
                    documents: int, timeout: float, measured: range | None = None) -> dict[str, Measurement]:
    """Sequential requests, each query to every server in turn, so they share the machine's load as it
    drifts (CPU per request does not depend on overlap, and sequential keeps the upstream from starving a
    server of a core). `queries[:warmup]` warm up; `measured` (the indices measured, by default the rest)
    lets each run of a repeated benchmark ask queries of its own, so that no run is answered from what an
    earlier one taught a process (the gateway's table of words it has met)."""
    import httpx

    measured = measured if measured is not None else range(warmup, len(queries))

    def send(http: httpx.Client, server: harness.Server, index: int) -> int | None:
        query = queries[index]
        if server.name == "bare":
            response = http.post(f"{server.url}/replay", json={"mode": mode, "index": index})
        else:
            body = {"query": query.query, "documents": [c.text for c in query.candidates[:documents]],
                    "model": harness.ALIASES[mode], "mode": harness.STRATEGIES[mode], "return_documents": False}
            response = http.post(f"{server.url}/v1/rerank", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{server.name} {mode}: HTTP {response.status_code}: {response.text[:300]}")
        if server.name == "bare":
            return None
        meta = response.json().get("meta")
        if meta is not None and (meta["cached"] or meta["failed_calls"]):
            raise RuntimeError(f"{mode}: unexpected meta {meta}")
        return int(meta["llm_calls"]) if meta else None

    wall = dict.fromkeys(servers, 0.0)
    calls = 0  # the gateway's, from its meta: the minimal pipeline runs the same windows
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        for index in range(warmup):
            for server in servers.values():
                send(http, server, index)
        # Whole-phase CPU per process: what a server does after it answered (LiteLLM's logging tasks,
        # the access line) belongs to the request, and runs while the next server is asked.
        start = {name: counters.process_cpu_seconds(server.pid) for name, server in servers.items()}
        for index in measured:
            for name, server in servers.items():
                started = time.perf_counter()
                calls += send(http, server, index) or 0
                wall[name] += time.perf_counter() - started
        time.sleep(0.2)
        cpu = {name: counters.process_cpu_seconds(server.pid) - start[name] for name, server in servers.items()}
    requests = len(measured)
    return {name: Measurement(requests, calls, cpu[name], wall[name]) for name in servers}


# --- the bare side: a server that replays the gateway's calls for a query, with nothing around them ---

def bare_server_args(config: Path, port: int, modes: list[str], requests: int, warmup: int,
                     documents: int) -> list[str]:
    """The arguments to `python` that start the bare side (`bare_server`) for these queries."""
    return ["-m", "bench.cpu_per_request", "--bare-server", str(port), "--config", str(config),
            "--requests", str(requests), "--warmup", str(warmup), "--modes", ",".join(modes),
            "--documents", str(documents)]


def minimal_server_args(target: harness.Target, port: int) -> list[str]:
    """The arguments to `python` that start the minimal side (`bench.minimal`) against `target`."""
    return ["-m", "bench.minimal", "--port", str(port), "--api-base", target.api_base, "--model", target.model]


def bare_server(config: Path, modes: list[str], count: int, documents: int, port: int) -> None:
    """Serve `POST /replay {"mode", "index"}`: the gateway's LLM calls for query `index`, built at start-up
    (its prompts, its arguments, max_retries=0) and made with `litellm.acompletion` on the gateway's
    event loop, heap settings and executor (LiteLLM's dispatch on the loop, as the gateway's client marks it).
    Asked in turn with the other two, it shares their drifting load."""
    # Order matters: gateway sets LITELLM_LOCAL_MODEL_COST_MAP etc. before litellm loads.
    import gateway  # noqa: F401, I001
    from gateway.strategies import sliding, window
    from gateway.strategies import pointwise
    from gateway.config import load_settings
    from gateway.server import loop_factory, settle_heap
    from gateway.strategies.prompts import default_prompts_dir, load_prompts
    from gateway.strategies.tokens import get_encoding

    import litellm
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from gateway.upstream import dispatch
    from gateway.upstream.litellm_client import register_prices

    settings = load_settings(config)
    model = settings.models[harness.ALIASES["listwise"]]
    register_prices(model)  # as the gateway does: the same work inside LiteLLM on both sides
    prompts = load_prompts(Path(settings.prompts_dir) if settings.prompts_dir else default_prompts_dir())
    enc = get_encoding("cl100k_base")
    base = {"model": model.litellm_model, "temperature": 0, "timeout": model.timeout_seconds,
            "max_retries": 0, "api_base": model.resolved_api_base(), "api_key": model.resolved_api_key()}

    def calls_for(mode: str, query: Query) -> list[dict[str, Any]]:
        """The gateway's prompts for one request, built before anything is measured."""
        texts = [c.text for c in query.candidates[:documents]]
        if mode == "listwise":
            s = settings.listwise
            job = window.prepare(enc, prompts[s.prompt], query.query, texts, s, model.context_window)
            # Windows over BM25 order: the gateway's windows hold reordered passages,
            # but the same number of calls of the same sizes.
            return [{"messages": window.build_messages(prompts[s.prompt], job.query, job.passages[a:b]),
                     "max_tokens": window.output_tokens(b - a)}
                    for a, b in sliding.window_spans(len(texts), s.window, s.step)]
        p = settings.pointwise
        conversations = pointwise.prepare(enc, prompts[p.prompt], query.query, texts, p, model.context_window)
        return [{"messages": m, "max_tokens": 1, "logprobs": True, "top_logprobs": p.top_logprobs}
                for m in conversations]

    queries = benchmark_queries(count)
    calls = {mode: [calls_for(mode, q) for q in queries] for mode in modes}
    limit = asyncio.Semaphore(settings.pointwise.concurrency)

    inline = dispatch.runs_inline(model.litellm_model, model.resolved_api_base())

    async def call(kwargs: dict[str, Any]) -> None:
        with dispatch.inline_dispatch(inline):  # LiteLLM reached as the gateway reaches it
            (await litellm.acompletion(**base, **kwargs)).choices[0].message.content  # noqa: B018

    async def judge(kwargs: dict[str, Any]) -> None:
        async with limit:
            await call(kwargs)

    async def replay(request: Request) -> JSONResponse:
        body = await request.json()
        batch = calls[body["mode"]][body["index"]]
        if body["mode"] == "listwise":  # the sliding window is sequential
            for kwargs in batch:
                await call(kwargs)
        else:
            await asyncio.gather(*(judge(kwargs) for kwargs in batch))
        return JSONResponse({"llm_calls": len(batch)})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/replay", replay, methods=["POST"]), Route("/health", health)])
    settle_heap()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))

    async def serve() -> None:
        dispatch.install()
        await server.serve()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve())


def format_table(run: Run) -> str:
    header = ["mode", "req", "calls/req", "gateway ms/req", "bare ms/req", "minimal ms/req", "overhead ms/call",
              "gateway/bare", "gateway/minimal"]
    rows = []
    for mode, g in run["gateway"].items():
        b, m = run["bare"][mode], run["minimal"][mode]
        rows.append([mode, str(g.requests), f"{g.llm_calls / g.requests:.1f}", f"{g.ms_per_request:.1f}",
                     f"{b.ms_per_request:.1f}", f"{m.ms_per_request:.1f}", f"{overhead_per_call(g, b):.2f}",
                     f"{ratio(g, b):.2f}x", f"{ratio(g, m):.2f}x"])
    return report.table(header, rows)


def ratio(a: Measurement, b: Measurement) -> float:
    """CPU per request of `a` over `b`; NaN when `b` used less than a clock tick (tiny smoke runs)."""
    return a.ms_per_request / b.ms_per_request if b.cpu_seconds else math.nan


def overhead_per_call(gateway: Measurement, bare: Measurement) -> float:
    """The gateway's CPU outside LiteLLM per LLM call: all it does besides the same calls, per call."""
    return (gateway.cpu_seconds / gateway.requests - bare.cpu_seconds / bare.requests) * 1000 * gateway.requests \
        / max(gateway.llm_calls, 1)


def spreads(runs: list[Run]) -> dict[str, dict[str, report.Spread]]:
    """Per mode, min / median / max over the runs of what the table reports per run."""
    out = {}
    for mode in runs[0]["gateway"]:
        out[mode] = {f"{side}_ms_per_request": report.spread(r[side][mode].ms_per_request for r in runs)
                     for side in SIDES}
        out[mode]["overhead_ms_per_call"] = report.spread(overhead_per_call(r["gateway"][mode], r["bare"][mode])
                                                          for r in runs)
        out[mode]["gateway_over_bare"] = report.spread(ratio(r["gateway"][mode], r["bare"][mode]) for r in runs)
        out[mode]["gateway_over_minimal"] = report.spread(ratio(r["gateway"][mode], r["minimal"][mode])
                                                          for r in runs)
    return out


def format_spreads(runs: list[Run]) -> str:
    rows = [[mode, s["gateway_ms_per_request"].format(), s["bare_ms_per_request"].format(),
             s["minimal_ms_per_request"].format(), s["overhead_ms_per_call"].format(".2f"),
             s["gateway_over_bare"].format(".2f"), s["gateway_over_minimal"].format(".2f")]
            for mode, s in spreads(runs).items()]
    return (f"over {len(runs)} runs, min / median / max\n"
            + report.table(["mode", "gateway ms/req", "bare ms/req", "minimal ms/req", "overhead ms/call",
                            "gateway/bare", "gateway/minimal"], rows))


def targets(runs: list[Run]) -> list[tuple[str, bool]]:
    checks = []
    for mode, s in spreads(runs).items():
        checks.append((f"{mode}: overhead outside LiteLLM {s['overhead_ms_per_call'].median:.2f} ms per LLM call "
                       "(<= 0.5)", s["overhead_ms_per_call"].median <= 0.5))
        if mode == "listwise":
            checks.append((f"listwise: gateway CPU {s['gateway_over_minimal'].median:.2f}x the minimal pipeline's "
                           "(<= 1.0)", s["gateway_over_minimal"].median <= 1.0))
    return checks


def write_plot(runs: list[Run], path: Path) -> Path:
    data = spreads(runs)
    labels = [f"{mode}: {side}" for mode in data for side in SIDES]
    values = [data[mode][f"{side}_ms_per_request"] for mode in data for side in SIDES]
    return plot.bars(path, "CPU per 100-document miss: gateway, its own calls made bare, the minimal pipeline",
                     labels, [("CPU ms per request", values)])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--requests", type=int, default=10, help="measured requests per mode (>= 10 advised)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured requests per mode first")
    parser.add_argument("--modes", default="listwise,pointwise")
    parser.add_argument("--documents", type=int, default=100)
    cli.add_repeat(parser, default=3)
    cli.add_smoke(parser)
    cli.add_output(parser, "cpu_per_request")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for each side of the run")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.warmup, args.documents, args.repeat = 2, 1, 20, 1
    args.modes = cli.comma_list(parser, args.modes, "mode", harness.ALIASES)
    if args.requests < 1 or args.warmup < 0 or args.repeat < 1:
        parser.error("--requests and --repeat must be positive and --warmup not negative")
    return args


def measure(servers: dict[str, harness.Server], args: argparse.Namespace, queries: list[Query], number: int) -> Run:
    """Run `number` (from 0): the warm-up queries, then measured queries no other run asks."""
    run: Run = {side: {} for side in SIDES}
    first = args.warmup + number * args.requests
    for mode in args.modes:
        measured = measure_servers(servers, mode, queries, args.warmup, args.documents, min(args.timeout, 300.0),
                                   range(first, first + args.requests))
        for side, measurement in measured.items():
            run[side][mode] = measurement
    return run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server:
        bare_server(args.config, args.modes, args.warmup + args.requests, args.documents, args.bare_server)
        return 0
    queries = benchmark_queries(args.warmup + args.requests * args.repeat)
    with harness.workdir() as workdir:
        with upstream.running(None, workdir) as up:
            target = up.target("instant")
            aliases = {harness.ALIASES[kind]: choice for kind, choice in harness.baseline_aliases(target).items()}
            config = harness.write_gateway_config(workdir / "config.toml", aliases, request_timeout=300)
            port, minimal_port = harness.free_port(), harness.free_port()
            servers = {"gateway": harness.start_gateway(config, workdir, log_level="warning"),
                       "bare": harness.Server("bare", harness.spawn(
                           bare_server_args(config, port, args.modes, args.requests * args.repeat, args.warmup,
                                            args.documents),
                           workdir / "bare.log"), port, workdir / "bare.log"),
                       "minimal": harness.Server("minimal", harness.spawn(
                           minimal_server_args(target, minimal_port), workdir / "minimal.log"), minimal_port,
                           workdir / "minimal.log")}
            bar = plot.progress(args.repeat, "cpu_per_request")
            try:
                for server in servers.values():
                    server.wait_ready("/health", timeout=300)  # the bare server builds every prompt first
                runs = []
                for number in range(args.repeat):
                    bar.set_postfix_str(f"run {number + 1}")
                    runs.append(measure(servers, args, queries, number))
                    bar.update()
            finally:
                bar.close()
                for server in servers.values():
                    server.stop()
    print(f"CPU time per {args.documents}-document miss (mean of {args.requests} after {args.warmup} warm-up): "
          "the gateway, its own LLM calls made by bare litellm.acompletion, the minimal pipeline; same upstream")
    for number, run in enumerate(runs, 1):
        print(f"run {number}/{args.repeat}")
        print(format_table(run))
    print(format_spreads(runs))
    print("\n".join(report.verdicts(targets(runs))))
    report.write_json(args.json, {"args": cli.as_json(args), "upstream": up.kind, "runs": runs,
                                  "spread": spreads(runs)})
    print(f"wrote {args.json} and {write_plot(runs, args.json.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    harness.run_main(main)
