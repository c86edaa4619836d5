"""Run every benchmark, one after the other; `--smoke` runs each in a tiny configuration.

The smoke run is CI's (tests/bench/test_smoke.py calls it): it proves that every
benchmark still starts its servers, drives its load, prints its table and writes
its files, and says nothing about speed. A benchmark passes when it exits 0, or 1
with its verdict lines printed (a target missed at toy sizes is no rot); a crash,
a traceback or no output at all fails the suite.

    ./dev.sh bench --smoke                  # what CI runs, a few minutes
    ./dev.sh bench [--only latency,cost]    # the real thing, one benchmark after another (long)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench import cli, harness, report

# name -> (its options for a smoke run, a minute or less each)
BENCHMARKS: dict[str, list[str]] = {
    "latency": ["--smoke"],
    "quality": ["--smoke"],
    "cost": ["--smoke"],
    "strategies": ["--smoke"],
    "profile": ["--smoke"],
    "cpu_per_request": ["--smoke"],
    "instructions": ["--smoke"],
    "outage": ["--faults", "status", "--concurrency", "4", "--healthy", "2", "--outage", "3",
               "--recovery-max", "15", "--steady", "1"],
    "reload_under_load": ["--concurrency", "4", "--warmup", "1", "--baseline", "2", "--reload-seconds", "4",
                          "--reloads", "4", "--no-watch", "--max-seconds", "60"],
    "local_quality": ["--queries", "1", "--modes", "pointwise", "--depth", "3", "--alphas", "0.5"],
    "simulated_latency": ["--repeat", "1", "--scale", "0.001", "--fan-out", "10"],
    "probe_under_cpu_load": ["--concurrency", "1", "--documents", "5"],
}

# Smoke runs longer than the default limit: the gateway under valgrind starts in ~2 minutes (~4 in all on 2 cores).
SMOKE_SECONDS = {"instructions": 900.0}


def run_one(name: str, options: list[str], out: Path, timeout: float) -> tuple[bool, float, str]:
    command = [sys.executable, "-m", f"bench.{name}", *options, "--json", str(out / f"{name}.json")]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=harness.ROOT, env=harness.child_env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - started, f"timed out after {timeout:g}s"
    output = done.stdout + done.stderr
    crashed = "Traceback (most recent call last)" in output or not done.stdout.strip()
    ok = not crashed and (done.returncode == 0 or (done.returncode == 1 and "FAIL" in done.stdout))
    return ok, time.monotonic() - started, output


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    cli.add_smoke(parser)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks")
    parser.add_argument("--out", type=Path, default=report.RESULTS, help="where their JSON and PNG files go")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per benchmark (smoke: 240, more for some)")
    args = parser.parse_args(argv)
    args.only = cli.comma_list(parser, args.only, "benchmark", BENCHMARKS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    timeout = args.timeout or (240.0 if args.smoke else 4 * 3600.0)
    rows, failed = [], []
    for name in args.only:
        print(f"{name} ...", file=sys.stderr, flush=True)
        limit = SMOKE_SECONDS.get(name, timeout) if args.smoke and not args.timeout else timeout
        ok, seconds, output = run_one(name, BENCHMARKS[name] if args.smoke else [], args.out, limit)
        rows.append([name, "ok" if ok else "FAILED", f"{seconds:.0f}"])
        if not ok:
            failed.append(name)
            print(f"--- {name} ---\n{output[-4000:]}", file=sys.stderr)
        elif not args.smoke:
            print(output)
    print(report.table(["benchmark", "outcome", "seconds"], rows))
    return 1 if failed else 0


if __name__ == "__main__":
    harness.run_main(main)
