"""The gateway's own CPU time per 100-document rerank request, as a ratio to bare LiteLLM.

Both sides talk to the same fake upstream in the same run: the gateway process
(cache disabled, distinct TREC DL queries) is measured from /proc/<pid>/stat;
the baseline is a separate child process making the same LLM calls (same
prompts, same arguments, max_retries=0) with `litellm.acompletion` directly.
The ratio, not the absolute milliseconds, is what carries across machines.

    .venv/bin/python -m bench.cpu_per_request [--requests 10] [--warmup 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import harness
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
        cpu, wall = harness.process_cpu_seconds(stack.gateway.pid), time.perf_counter()
        calls = sum(send(http, query) for query in queries[warmup:])
        cpu, wall = harness.process_cpu_seconds(stack.gateway.pid) - cpu, time.perf_counter() - wall
    return Measurement(len(queries) - warmup, calls, cpu, wall)


def measure_bare(stack: harness.Stack, modes: list[str], count: int, warmup: int,
                 timeout: float) -> dict[str, Measurement]:
    args = ["-m", "bench.cpu_per_request", "--bare-child", "--config", str(stack.config),
            "--requests", str(count - warmup), "--warmup", str(warmup), "--modes", ",".join(modes)]
    log = stack.workdir / "bare.log"
    child = harness.spawn(args, log)
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"bare LiteLLM child did not finish in {timeout:g}s") from None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    output = log.read_text(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"bare LiteLLM child failed ({child.returncode}):\n{output[-3000:]}")
    result = json.loads(output.strip().splitlines()[-1])
    return {mode: Measurement(**values) for mode, values in result.items()}


# --- the baseline child: imports gateway (offline switches) before litellm ---

def bare_child(config: Path, modes: list[str], requests: int, warmup: int) -> dict[str, dict[str, Any]]:
    # Order matters: gateway sets LITELLM_LOCAL_MODEL_COST_MAP etc. before litellm loads.
    import gateway  # noqa: F401, I001
    from gateway import listwise, pointwise
    from gateway.config import load_settings
    from gateway.prompts import default_prompts_dir, load_prompts
    from gateway.tokens import get_encoding

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
            job = listwise.prepare(enc, prompts[s.prompt], query.query, texts, s, model.context_window)
            # Windows over BM25 order: the gateway's windows hold reordered passages,
            # but the same number of calls of the same sizes.
            return [{"messages": listwise.build_messages(prompts[s.prompt], job.query, job.passages[a:b]),
                     "max_tokens": listwise.output_tokens(b - a)}
                    for a, b in listwise.window_spans(len(texts), s.window, s.step)]
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
            cpu, wall = harness.process_cpu_seconds(), time.perf_counter()
            for calls in batches[warmup:]:
                await one_request(mode, calls)
            cpu, wall = harness.process_cpu_seconds() - cpu, time.perf_counter() - wall
            results[mode] = asdict(Measurement(requests, sum(len(b) for b in batches[warmup:]), cpu, wall))
        return results

    return asyncio.run(run())


def format_table(gateway: dict[str, Measurement], bare: dict[str, Measurement]) -> str:
    header = (f"{'mode':<10} {'req':>4} {'calls/req':>9} {'gateway ms/req':>14} {'bare ms/req':>11} "
              f"{'gateway ms/call':>15} {'bare ms/call':>12} {'gateway/bare':>12}")
    lines = [header, "-" * len(header)]
    for mode, g in gateway.items():
        b = bare[mode]
        lines.append(f"{mode:<10} {g.requests:>4} {g.llm_calls / g.requests:>9.1f} {g.ms_per_request:>14.1f} "
                     f"{b.ms_per_request:>11.1f} {g.ms_per_call:>15.2f} {b.ms_per_call:>12.2f} "
                     f"{g.ms_per_request / b.ms_per_request:>11.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10, help="measured requests per mode (>= 10 advised)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured requests per mode first")
    parser.add_argument("--modes", default="listwise,pointwise")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for each side of the run")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if bad := [m for m in modes if m not in harness.ALIASES]:
        parser.error(f"unknown mode(s) {bad}")
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be positive and --warmup not negative")
    if args.bare_child:
        print(json.dumps(bare_child(args.config, modes, args.requests, args.warmup)))
        return 0

    queries = benchmark_queries(args.warmup + args.requests)
    print("starting fake upstream and gateway ...", file=sys.stderr, flush=True)
    with harness.running_stack(keep_logs=args.keep_logs) as stack:
        deadline = time.monotonic() + args.timeout
        gateway: dict[str, Measurement] = {}
        for mode in modes:
            gateway[mode] = measure_gateway(stack, mode, queries, args.warmup, min(args.timeout, 120.0))
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway side took over {args.timeout:g}s")
        print("gateway measured; running the bare LiteLLM baseline ...", file=sys.stderr, flush=True)
        bare = measure_bare(stack, modes, len(queries), args.warmup, args.timeout)
    print(f"CPU time per 100-document request (mean of {args.requests} after {args.warmup} warm-up), "
          "gateway process vs bare litellm.acompletion in a child process, same fake upstream")
    print(format_table(gateway, bare))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            mode: {"gateway": asdict(gateway[mode]), "bare_litellm": asdict(bare[mode]),
                   "ratio": gateway[mode].ms_per_request / bare[mode].ms_per_request}
            for mode in modes
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    harness.run_main(main)
