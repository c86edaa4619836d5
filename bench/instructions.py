"""The gateway's own instructions per 100-document miss, counted by valgrind: CPU time without the noise.

`bench.cpu_per_request` measures CPU time, which drifts by ±10% on a shared
machine, more than the overhead it looks for. This counts instructions instead
(valgrind's cachegrind, `--cache-sim=no`; Debian's `valgrind`, which `./dev.sh
bench` installs), which do not depend on the machine's load: the same code gives
the same count to a fraction of a percent, so a change of 1% is seen in one run.

The three processes are the ones `bench.cpu_per_request` compares, each run under
valgrind, asked the same queries in turn against the simulator at ~0 ms:

    gateway   the gateway (cache off), its HTTP edge, service and LiteLLM calls
    bare      a server replaying exactly the gateway's LLM calls for each query
              with `litellm.acompletion` (prompts built before anything is counted)
    minimal   `bench.minimal`, the ~150-line pipeline: no sanitizing, no token
              counting, LiteLLM's defaults (its collector, its own HTTP session)

Each side is run twice, after the same warm-up: once with no measured request and
once with `--requests`; the difference, over the requests, is what one request
costs, start-up and warm-up cancelled out. gateway - bare, per LLM call, is the
gateway's work outside LiteLLM; "of a call" relates it to what LiteLLM's own
call costs in the same count; gateway/minimal is the work the gateway does against
the pipeline anyone would write first. Cache misses and the kernel are not counted:
code that reads large tables (the word table that bounds passages) costs more time
per instruction than code that streams over strings, so CPU time
(`bench.cpu_per_request`) stays the measure of record.

    .venv/bin/python -m bench.instructions [--requests 4] [--modes listwise,pointwise] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import cli, cpu_per_request, harness, plot, report, upstream
from bench.trec import Query

_TOTAL = re.compile(r"I\s+refs:\s+([\d,]+)")
SIDES = ("gateway", "bare", "minimal")


@dataclass
class Count:
    """Instructions of one side for `requests` requests beyond the same run without them."""

    requests: int
    llm_calls: int
    instructions: int

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests

    @property
    def per_call(self) -> float:
        return self.instructions / max(self.llm_calls, 1)


def valgrind_command(args: list[str]) -> list[str]:
    return ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            sys.executable, *args]


def start(name: str, args: list[str], port: int, workdir: Path) -> harness.Server:
    log = workdir / f"{name}.log"
    # A fixed hash seed lays dicts out the same way each run, so the counts repeat exactly.
    env = {**harness.child_env(), "PYTHONHASHSEED": "0"}
    with log.open("wb") as out:
        process = subprocess.Popen(valgrind_command(args), cwd=harness.ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return harness.Server(name, process, port, log)


def total_instructions(server: harness.Server, timeout: float) -> int:
    """Stop `server` (valgrind reports on exit) and read its count."""
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise RuntimeError(f"{server.name} did not stop within {timeout:g}s under valgrind") from None
    found = _TOTAL.findall(server.log.read_text(errors="replace"))
    if not found:
        raise RuntimeError(f"{server.name}: no instruction count in its log:\n{server.log_tail()}")
    return int(found[-1].replace(",", ""))


def count_run(config: Path, target: harness.Target, mode: str, queries: list[Query], warmup: int, measured: int,
              documents: int, workdir: Path, timeout: float) -> tuple[dict[str, int], int]:
    """Every side under valgrind: `warmup` requests, then `measured` more; their totals, and the gateway's calls."""
    workdir.mkdir(parents=True, exist_ok=True)
    gateway_port, bare_port, minimal_port = harness.free_port(), harness.free_port(), harness.free_port()
    servers = {
        "gateway": start("gateway", harness.gateway_args(config, gateway_port, "warning"), gateway_port, workdir),
        "bare": start("bare", cpu_per_request.bare_server_args(config, bare_port, [mode], len(queries) - warmup,
                                                               warmup, documents), bare_port, workdir),
        "minimal": start("minimal", cpu_per_request.minimal_server_args(target, minimal_port), minimal_port, workdir),
    }
    try:
        for server in servers.values():
            server.wait_ready("/health", timeout=timeout)
        measured_ = cpu_per_request.measure_servers(servers, mode, queries[:warmup + measured], warmup, documents,
                                                    timeout)
        return {name: total_instructions(server, timeout) for name, server in servers.items()}, \
            measured_["gateway"].llm_calls
    finally:
        for server in servers.values():
            server.stop()


def measure(config: Path, target: harness.Target, mode: str, queries: list[Query], args: argparse.Namespace,
            workdir: Path) -> dict[str, Count]:
    """The run with requests less the run without, both at once (valgrind runs one core per process)."""
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda k: count_run(config, target, mode, queries, args.warmup, k, args.documents,
                                                 workdir / f"{mode}-{k}", args.timeout), (0, args.requests)))
    (idle, _), (busy, calls) = runs
    return {side: Count(args.requests, calls, busy[side] - idle[side]) for side in SIDES}


def overhead_per_call(counts: dict[str, Count]) -> float:
    gateway, bare = counts["gateway"], counts["bare"]
    return (gateway.per_request - bare.per_request) * gateway.requests / max(gateway.llm_calls, 1)


def format_table(result: dict[str, dict[str, Count]]) -> str:
    rows = []
    for mode, counts in result.items():
        gateway, bare, minimal = counts["gateway"], counts["bare"], counts["minimal"]
        gap = overhead_per_call(counts)
        rows.append([mode, str(gateway.requests), f"{gateway.llm_calls / gateway.requests:.1f}",
                     f"{gateway.per_request / 1e6:.1f}", f"{bare.per_request / 1e6:.1f}",
                     f"{minimal.per_request / 1e6:.1f}", f"{(gateway.per_request - bare.per_request) / 1e6:.2f}",
                     f"{gap / 1e6:.3f}", f"{100 * gap / bare.per_call:.1f}%",
                     f"{gateway.per_request / bare.per_request:.3f}x", f"{gateway_over_minimal(counts):.3f}x"])
    return report.table(["mode", "req", "calls/req", "gateway M/req", "bare M/req", "minimal M/req", "overhead M/req",
                         "overhead M/call", "of a call", "gateway/bare", "gateway/minimal"], rows)


def gateway_over_minimal(counts: dict[str, Count]) -> float:
    return counts["gateway"].per_request / counts["minimal"].per_request


def write_plot(result: dict[str, dict[str, Count]], path: Path) -> Path:
    labels = [f"{mode}: {side}" for mode in result for side in SIDES]
    values = [report.spread([result[mode][side].per_call / 1e6]) for mode in result for side in SIDES]
    return plot.bars(path, "Instructions per LLM call of a 100-document miss",
                     labels, [("million instructions per call", values)])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--requests", type=int, default=4, help="measured requests per mode")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured requests per mode first")
    parser.add_argument("--modes", default="listwise,pointwise")
    parser.add_argument("--documents", type=int, default=100)
    cli.add_smoke(parser)
    cli.add_output(parser, "instructions")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for each step under valgrind")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.warmup, args.documents, args.modes = 1, 1, 20, "listwise"
    args.modes = cli.comma_list(parser, args.modes, "mode", harness.ALIASES)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be positive and --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind; `./dev.sh bench` installs it)",
              file=sys.stderr)
        return 2
    queries = cpu_per_request.benchmark_queries(args.warmup + args.requests)
    result: dict[str, dict[str, Count]] = {}
    with harness.workdir() as workdir:
        with upstream.running(None, workdir) as up:
            target = up.target("instant")
            aliases = {harness.ALIASES[kind]: choice for kind, choice in harness.baseline_aliases(target).items()}
            config = harness.write_gateway_config(workdir / "config.toml", aliases, request_timeout=args.timeout)
            bar = plot.progress(len(args.modes), "instructions")
            try:
                for mode in args.modes:
                    bar.set_postfix_str(mode)
                    result[mode] = measure(config, target, mode, queries, args, workdir)
                    bar.update()
            finally:
                bar.close()
    print(f"instructions per {args.documents}-document miss (valgrind, {args.requests} requests after "
          f"{args.warmup} warm-up, less the same run without them): the gateway, its own LLM calls made bare, "
          "the minimal pipeline")
    print(format_table(result))
    report.write_json(args.json, {"args": cli.as_json(args), "counts": result,
                                  "overhead_per_call": {m: overhead_per_call(c) for m, c in result.items()},
                                  "gateway_over_minimal": {m: gateway_over_minimal(c) for m, c in result.items()},
                                  "cpus": os.cpu_count()})
    print(f"wrote {args.json} and {write_plot(result, args.json.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    harness.run_main(main)
