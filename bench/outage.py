"""A full upstream outage under sustained load: healthy, outage, recovery.

Targets: during the outage the gateway makes at most ~1.2 upstream calls per
client request (retries, probes and fallbacks included), answers every request
within its deadline + 100 ms, and recovers by itself once the upstream is back.

Faults: "status" (every call answers 503) and "hang" (no call ever answers, so
the deadline must cut it). Reliability settings are config.toml's unless overridden.

    .venv/bin/python -m bench.outage [--faults status,hang] [--request-timeout 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import httpx

from bench import cli, counters, harness, report
from bench.load import WORDS, ClosedLoop, Request, Sample

UPSTREAM_MODEL = "judge"  # the fake model both harness aliases call: one fault hits both, one breaker
FAULTS: dict[str, dict[str, Any]] = {
    "status": {"kind": "status", "status": 503},
    "hang": {"kind": "hang", "seconds": 3600},  # longer than any deadline: only the gateway ends it
}
SLACK = 0.1  # seconds allowed past the deadline
WARMUP = 2.0
MAX_CALLS_PER_REQUEST = 1.2
VOCABULARY = WORDS[:16]  # the request mix the README's outage figures were measured with


@dataclass
class PhaseReport:
    phase: str
    seconds: float
    requests: int
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    max_over_deadline_ms: float  # max latency minus the deadline; the target is <= 100
    upstream_calls: int
    calls_per_request: float
    amplification: float  # calls / calls the same requests need when healthy (== calls/req for listwise)
    gateway_cpu: float  # share of one core the gateway used: near 1.0 means requests queue in it


class Mark(NamedTuple):
    phase: str
    at: float
    upstream_calls: int
    gateway_cpu: float  # CPU seconds so far
    our_cpu: float  # gateway + fake upstream + this benchmark
    host_busy: float  # every process on the machine


@dataclass
class RunReport:
    fault: str
    deadline_s: float
    phases: list[PhaseReport]
    fail_fast_after_s: float | None  # from the fault to the first open-circuit answer (503 + Retry-After)
    first_200_s: float | None  # from clearing the fault, for requests sent after it
    steady_s: float | None  # from clearing to the last failed answer; None: never steady
    other_cores: float  # other processes' CPU meanwhile: they delay the gateway's scheduling too
    checks: dict[str, bool] = field(default_factory=dict)


def requests(docs: int, pointwise_share: float) -> Callable[[random.Random], Request]:
    def request(rng: random.Random) -> Request:
        pointwise = rng.random() < pointwise_share
        # A fresh query each time, though the cache is off anyway.
        documents = [" ".join(rng.sample(VOCABULARY, 6)) for _ in range(docs)]
        body = {"query": " ".join(rng.sample(VOCABULARY, 3)), "documents": documents,
                "model": harness.ALIASES["pointwise" if pointwise else "listwise"]}
        return Request(body, "pointwise" if pointwise else "listwise")

    return request


def phase_report(phase: str, samples: list[Sample], seconds: float, calls: int, cpu: float,
                 deadline: float, docs: int) -> PhaseReport:
    mine = [s for s in samples if s.phase == phase]
    latencies = [s.latency for s in mine] or [0.0]
    statuses = Counter("no-answer" if s.status is None else " ".join(filter(None, [str(s.status), s.code]))
                       + ("+RA" if s.retry_after else "") for s in mine)
    needed = sum(docs if s.kind == "pointwise" else 1 for s in mine)  # listwise: up to 20 docs are one window
    return PhaseReport(
        phase, round(seconds, 1), len(mine), dict(sorted(statuses.items())),
        round(1000 * report.percentile(latencies, 0.5), 1), round(1000 * report.percentile(latencies, 0.99), 1),
        round(1000 * max(latencies), 1), round(1000 * (max(latencies) - deadline), 1),
        calls, round(calls / max(len(mine), 1), 3), round(calls / max(needed, 1), 3),
        round(cpu / seconds, 2),
    )


async def run_fault(stack: harness.Stack, fault: str, args: argparse.Namespace, deadline: float) -> RunReport:
    marks: list[Mark] = []
    pids = (stack.gateway.pid, stack.upstream.pid, os.getpid())
    # The client waits well past the deadline, so a late gateway shows up as latency, not as no answer.
    async with httpx.AsyncClient(base_url=stack.upstream.url, trust_env=False, timeout=5) as fake, \
            ClosedLoop(stack.gateway.url, args.concurrency, deadline + 10,
                       requests(args.docs, args.pointwise_share)) as load:

        async def enter(phase: str) -> None:
            load.phase = phase
            calls = int((await fake.get("/stats")).json()["by_model"].get(UPSTREAM_MODEL, 0))
            cpu = [counters.process_cpu_seconds(pid) for pid in pids]
            marks.append(Mark(phase, time.monotonic(), calls, cpu[0], sum(cpu), counters.host_busy_seconds()))

        await asyncio.sleep(WARMUP)  # the first LiteLLM calls are slow; not measured
        await enter("healthy")
        await asyncio.sleep(args.healthy)
        fault_on = time.monotonic()
        await fake.post("/faults", json={"model": UPSTREAM_MODEL, "always": FAULTS[fault]})
        await enter("outage")
        await asyncio.sleep(args.outage)
        await fake.post("/faults", json={"model": UPSTREAM_MODEL, "clear": True})
        await enter("recovery")
        cleared = marks[-1].at
        # Recovery ends once every answer for `steady` seconds was a 200, or at the bound.
        while time.monotonic() - cleared < args.recovery_max:
            await asyncio.sleep(0.1)
            after = [s for s in load.samples if s.phase == "recovery"]
            last_bad = max((s.end for s in after if s.status != 200), default=cleared)
            if any(s.status == 200 and s.end > last_bad for s in after) and \
                    time.monotonic() - last_bad >= args.steady:
                break
        await enter("end")

    # Healthy requests still in flight when the fault began were hit by it: they count as outage.
    for s in load.samples:
        if s.phase == "healthy" and s.end > fault_on:
            s.phase = "outage"
    phases = [phase_report(a.phase, load.samples, b.at - a.at, b.upstream_calls - a.upstream_calls,
                           b.gateway_cpu - a.gateway_cpu, deadline, args.docs)
              for a, b in zip(marks, marks[1:], strict=False)]
    first, last = marks[0], marks[-1]
    other_cores = (last.host_busy - first.host_busy - (last.our_cpu - first.our_cpu)) / (last.at - first.at)
    recovered = [s for s in load.samples if s.phase == "recovery"]
    oks = [s.end for s in recovered if s.status == 200]
    last_bad = max((s.end for s in recovered if s.status != 200), default=cleared)
    steady = last_bad - cleared if any(t > last_bad for t in oks) else None
    fast = [s.end for s in load.samples if s.phase == "outage" and s.status == 503 and s.retry_after]
    run = RunReport(fault, deadline, phases, round(min(fast) - fault_on, 2) if fast else None,
                    round(min(oks) - cleared, 2) if oks else None,
                    round(steady, 2) if steady is not None else None, round(max(0.0, other_cores), 2))
    healthy, outage = phases[0], phases[1]
    run.checks = {
        "healthy baseline: every request 200": set(healthy.statuses) == {"200"},
        f"outage upstream calls per request <= {MAX_CALLS_PER_REQUEST}":
            outage.amplification <= MAX_CALLS_PER_REQUEST,
        f"every answer within deadline + {SLACK * 1000:.0f} ms": all(
            p.max_over_deadline_ms <= SLACK * 1000 for p in phases),
        "every request got an HTTP answer": all("no-answer" not in p.statuses for p in phases),
        "recovered by itself (steady 100% 200)": steady is not None,
    }
    return run


def render(run: RunReport) -> str:
    header = ["phase", "secs", "reqs", "p50 ms", "p99 ms", "max ms", "max-dl", "calls", "calls/req", "amp",
              "gw cpu", "statuses"]
    rows = [[p.phase, f"{p.seconds:.1f}", str(p.requests), f"{p.p50_ms:.1f}", f"{p.p99_ms:.1f}", f"{p.max_ms:.1f}",
             f"{p.max_over_deadline_ms:+.0f}", str(p.upstream_calls), f"{p.calls_per_request:.3f}",
             f"{p.amplification:.3f}", f"{p.gateway_cpu:.2f}", " ".join(f"{k}:{v}" for k, v in p.statuses.items())]
            for p in run.phases]
    fmt = lambda v: "never" if v is None else f"{v:.2f} s"  # noqa: E731
    return "\n".join([
        f"== fault: {run.fault}  (deadline {run.deadline_s:g} s; +RA = with Retry-After)",
        report.table(header, rows, align="<" + ">" * 10 + "<"),
        f"circuit: first fail-fast 503 {fmt(run.fail_fast_after_s)} after the fault began",
        f"recovery: first 200 {fmt(run.first_200_s)} after clearing; steady 100% 200 from {fmt(run.steady_s)}",
        f"host: other processes used {run.other_cores:.2f} of {os.cpu_count()} cores meanwhile",
        *report.verdicts(run.checks.items(), indent="  "),
    ])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--faults", default="status,hang", help="comma-separated: " + ",".join(FAULTS))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--docs", type=int, default=10, help="documents per request")
    parser.add_argument("--pointwise-share", type=float, default=0.0, help="share of requests sent pointwise")
    parser.add_argument("--healthy", type=float, default=8.0)
    parser.add_argument("--outage", type=float, default=12.0)
    parser.add_argument("--recovery-max", type=float, default=40.0, help="give up on recovery after this")
    parser.add_argument("--steady", type=float, default=3.0, help="seconds of only 200s that mean recovered")
    parser.add_argument("--request-timeout", type=float, default=2.0,
                        help="reliability.request_timeout_seconds (the deadline)")
    parser.add_argument("--reliability", action="append", default=[], metavar="KEY=VALUE",
                        help="override a [reliability] key, e.g. breaker_cooldown_seconds=2")
    cli.add_json(parser, "outage")
    cli.add_keep_logs(parser)
    args = parser.parse_args(argv)
    args.faults = cli.comma_list(parser, args.faults, "fault", FAULTS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    section, deadline = harness.reliability_table(args.reliability, args.request_timeout)
    runs: list[RunReport] = []
    for fault in args.faults:
        # A fresh stack per fault: breaker state and retry budget start the same for each.
        with harness.running_stack("warning", args.keep_logs, config_extra=section) as stack:
            run = asyncio.run(run_fault(stack, fault, args, deadline))
        runs.append(run)
        print(render(run), "\n", flush=True)
    if args.json:
        report.write_json(args.json, {"reliability": section, "runs": [asdict(r) for r in runs]})
    return 0 if all(all(r.checks.values()) for r in runs) else 1


if __name__ == "__main__":
    harness.run_main(main)
