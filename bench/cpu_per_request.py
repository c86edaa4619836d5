"""The gateway's own CPU time per 100-document rerank request, as a ratio to bare LiteLLM.

Both sides talk to the same fake upstream in the same run: the gateway process
(cache disabled, distinct TREC DL queries) is measured from /proc/<pid>/stat;
the baseline is a separate child process making the same LLM calls (same
prompts, same arguments, max_retries=0) with `litellm.acompletion` directly.
The ratio, not the absolute milliseconds, is what carries across machines;
`--repeat N` measures N times and adds min / median / max over the runs.

    .venv/bin/python -m bench.cpu_per_request [--requests 10] [--warmup 2] [--repeat 1] [--json PATH]
"""


from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import cli, counters, harness, report
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


Run = tuple[dict[str, Measurement], dict[str, Measurement]]  # gateway, bare LiteLLM; by mode


def benchmark_queries(count: int) -> list[Query]:
    # Distinct queries, so nothing could be answered from any cache.
    queries = load_queries("dl19") + load_queries("dl20")
    if count > len(queries):
        raise SystemExit(f"only {len(queries)} distinct queries; ask for fewer requests")
    return queries[:count]


def measure_gateway(stack: harness.Stack, mode: str, queries: list[Query], warmup: int,
                    timeout: float) -> Measurement:
    import httpx

    def send(http: httpx.Client, query: Query) -> int:
        body = {"query": query.query, "documents": [c.text for c in query.candidates],
                "model": harness.ALIASES[mode], "mode": mode, "top_n": len(query.candidates)}
        response = http.post("/v1/rerank", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{mode}: HTTP {response.status_code}: {response.text[:300]}")
        data = response.json()
        if data["meta"]["cached"] or data["meta"]["failed_calls"]:
            raise RuntimeError(f"{mode}: unexpected meta {data['meta']}")
        return int(data["meta"]["llm_calls"])

    with httpx.Client(base_url=stack.gateway.url, timeout=timeout, trust_env=False) as http:
        for query in queries[:warmup]:
            send(http, query)
        # Sequential requests: CPU per request does not depend on overlap, and
        # sequential keeps the fake upstream from starving the gateway of a core.
        cpu, wall = counters.process_cpu_seconds(stack.gateway.pid), time.perf_counter()
        calls = sum(send(http, query) for query in queries[warmup:])
        cpu, wall = counters.process_cpu_seconds(stack.gateway.pid) - cpu, time.perf_counter() - wall
    return Measurement(len(queries) - warmup, calls, cpu, wall)


def measure_bare(stack: harness.Stack, modes: list[str], count: int, warmup: int,
                 timeout: float) -> dict[str, Measurement]:
    args = ["-m", "bench.cpu_per_request", "--bare-child", "--config", str(stack.config),
            "--requests", str(count - warmup), "--warmup", str(warmup), "--modes", ",".join(modes)]
    output = harness.run_child(args, stack.workdir / "bare.log", timeout, "bare LiteLLM child")
    result = json.loads(output.strip().splitlines()[-1])
    return {mode: Measurement(**values) for mode, values in result.items()}


# --- the baseline child: imports gateway (offline switches) before litellm ---

def bare_child(config: Path, modes: list[str], requests: int, warmup: int) -> dict[str, dict[str, Any]]:
    # Order matters: gateway sets LITELLM_LOCAL_MODEL_COST_MAP etc. before litellm loads.
    import gateway  # noqa: F401, I001
    from gateway.strategies import sliding, window
    from gateway.strategies import pointwise
    from gateway.config import load_settings
    from gateway.strategies.prompts import default_prompts_dir, load_prompts
    from gateway.strategies.tokens import get_encoding

    import litellm

    settings = load_settings(config)
    model = settings.models[harness.ALIASES["listwise"]]
    prompts = load_prompts(Path(settings.prompts_dir) if settings.prompts_dir else default_prompts_dir())
    enc = get_encoding("cl100k_base")
    base = {"model": model.litellm_model, "temperature": 0, "timeout": model.timeout_seconds,
            "max_retries": 0, "api_base": model.resolved_api_base(), "api_key": model.resolved_api_key()}

    def calls_for(mode: str, query: Query) -> list[dict[str, Any]]:
        """The gateway's prompts for one request, built before timing starts."""
        texts = [c.text for c in query.candidates]
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

    async def one_request(mode: str, calls: list[dict[str, Any]]) -> None:
        if mode == "listwise":  # the sliding window is sequential
            for call in calls:
                (await litellm.acompletion(**base, **call)).choices[0].message.content  # noqa: B018
            return
        limit = asyncio.Semaphore(settings.pointwise.concurrency)

        async def judge(call: dict[str, Any]) -> None:
            async with limit:
                (await litellm.acompletion(**base, **call)).choices[0].message.content  # noqa: B018

        await asyncio.gather(*(judge(call) for call in calls))

    async def run() -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        queries = benchmark_queries(warmup + requests)
        for mode in modes:
            batches = [calls_for(mode, q) for q in queries]
            for calls in batches[:warmup]:
                await one_request(mode, calls)
            cpu, wall = counters.process_cpu_seconds(), time.perf_counter()
            for calls in batches[warmup:]:
                await one_request(mode, calls)
            cpu, wall = counters.process_cpu_seconds() - cpu, time.perf_counter() - wall
            results[mode] = asdict(Measurement(requests, sum(len(b) for b in batches[warmup:]), cpu, wall))
        return results

    return asyncio.run(run())


def format_table(gateway: dict[str, Measurement], bare: dict[str, Measurement]) -> str:
    header = ["mode", "req", "calls/req", "gateway ms/req", "bare ms/req", "gateway ms/call", "bare ms/call",
              "gateway/bare"]
    rows = [[mode, str(g.requests), f"{g.llm_calls / g.requests:.1f}", f"{g.ms_per_request:.1f}",
             f"{bare[mode].ms_per_request:.1f}", f"{g.ms_per_call:.2f}", f"{bare[mode].ms_per_call:.2f}",
             f"{g.ms_per_request / bare[mode].ms_per_request:.2f}x"] for mode, g in gateway.items()]
    return report.table(header, rows)


def spreads(runs: list[Run]) -> dict[str, dict[str, report.Spread]]:
    """Per mode, min / median / max over the runs of what the table reports per run."""
    return {mode: {
        "gateway_ms_per_request": report.spread(g[mode].ms_per_request for g, _ in runs),
        "bare_ms_per_request": report.spread(b[mode].ms_per_request for _, b in runs),
        "ratio": report.spread(g[mode].ms_per_request / b[mode].ms_per_request for g, b in runs),
    } for mode in runs[0][0]}


def format_spreads(runs: list[Run]) -> str:
    rows = [[mode, s["gateway_ms_per_request"].format(), s["bare_ms_per_request"].format(),
             s["ratio"].format(".2f")] for mode, s in spreads(runs).items()]
    return (f"over {len(runs)} runs, min / median / max\n"
            + report.table(["mode", "gateway ms/req", "bare ms/req", "gateway/bare"], rows))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--requests", type=int, default=10, help="measured requests per mode (>= 10 advised)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured requests per mode first")
    parser.add_argument("--modes", default="listwise,pointwise")
    cli.add_repeat(parser)
    cli.add_json(parser, "cpu_per_request")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for each side of the run")
    cli.add_keep_logs(parser)
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.modes = cli.comma_list(parser, args.modes, "mode", harness.ALIASES)
    if args.requests < 1 or args.warmup < 0 or args.repeat < 1:
        parser.error("--requests and --repeat must be positive and --warmup not negative")
    return args


def measure(stack: harness.Stack, args: argparse.Namespace, queries: list[Query]) -> Run:
    deadline = time.monotonic() + args.timeout
    gateway: dict[str, Measurement] = {}
    for mode in args.modes:
        gateway[mode] = measure_gateway(stack, mode, queries, args.warmup, min(args.timeout, 120.0))
        if time.monotonic() > deadline:
            raise RuntimeError(f"gateway side took over {args.timeout:g}s")
    print("gateway measured; running the bare LiteLLM baseline ...", file=sys.stderr, flush=True)
    return gateway, measure_bare(stack, args.modes, len(queries), args.warmup, args.timeout)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_child:
        print(json.dumps(bare_child(args.config, args.modes, args.requests, args.warmup)))
        return 0

    queries = benchmark_queries(args.warmup + args.requests)
    print("starting fake upstream and gateway ...", file=sys.stderr, flush=True)
    with harness.running_stack(keep_logs=args.keep_logs) as stack:
        runs = [measure(stack, args, queries) for _ in range(args.repeat)]
    print(f"CPU time per 100-document request (mean of {args.requests} after {args.warmup} warm-up), "
          "gateway process vs bare litellm.acompletion in a child process, same fake upstream")
    for number, (gateway, bare) in enumerate(runs, 1):
        if args.repeat > 1:
            print(f"run {number}/{args.repeat}")
        print(format_table(gateway, bare))
    if args.repeat > 1:
        print(format_spreads(runs))
    if args.json:
        payloads = [{mode: {"gateway": asdict(g[mode]), "bare_litellm": asdict(b[mode]),
                            "ratio": g[mode].ms_per_request / b[mode].ms_per_request} for mode in args.modes}
                    for g, b in runs]
        # One run keeps the file's old shape; repeats add the list and the spread.
        report.write_json(args.json, payloads[0] if len(runs) == 1 else {
            "runs": payloads, "spread": {mode: {k: asdict(v) for k, v in s.items()}
                                         for mode, s in spreads(runs).items()}})
    return 0


if __name__ == "__main__":
    harness.run_main(main)
