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
import json
import os
import random
import time
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from bench import harness

UPSTREAM_MODEL = "judge"  # the fake model both harness aliases call: one fault hits both, one breaker
FAULTS: dict[str, dict[str, Any]] = {
    "status": {"kind": "status", "status": 503},
    "hang": {"kind": "hang", "seconds": 3600},  # longer than any deadline: only the gateway ends it
}
SLACK = 0.1  # seconds allowed past the deadline
WARMUP = 2.0
MAX_CALLS_PER_REQUEST = 1.2
WORDS = "flea cycle insect egg larva pupa adult host blood cat dog month week year warm humid".split()


@dataclass
class Sample:
    phase: str  # the phase the request was *sent* in
    start: float
    end: float
    status: int  # -1: no HTTP answer (client timeout, connection error)
    code: str  # the error body's code ("" for a 200): tells a breaker 503 and a cut call's 504 apart
    retry_after: bool
    pointwise: bool


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


def host_busy_seconds() -> float:  # CPU seconds the whole machine spent busy (not idle or iowait)
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


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


class Load:
    """`concurrency` closed-loop clients; each sends its next request as soon as one answers."""

    def __init__(self, http: httpx.AsyncClient, docs: int, pointwise_share: float) -> None:
        self.http, self.docs, self.pointwise_share = http, docs, pointwise_share
        self.phase = "warmup"
        self.samples: list[Sample] = []
        self.stopping = False

    async def client(self, n: int) -> None:
        rng = random.Random(n)  # same request mix every run
        while not self.stopping:
            pointwise = rng.random() < self.pointwise_share
            # A fresh query each time, though the cache is off anyway.
            docs = [" ".join(rng.sample(WORDS, 6)) for _ in range(self.docs)]
            body = {"query": " ".join(rng.sample(WORDS, 3)), "documents": docs,
                    "model": harness.ALIASES["pointwise" if pointwise else "listwise"]}
            phase, start = self.phase, time.monotonic()
            try:
                response = await self.http.post("/v1/rerank", json=body)
                end, status = time.monotonic(), response.status_code
                code = "" if status == 200 else str(response.json().get("error", {}).get("code", "?"))
                sample = Sample(phase, start, end, status, code, "retry-after" in response.headers, pointwise)
            except (httpx.HTTPError, ValueError):
                sample = Sample(phase, start, time.monotonic(), -1, "", False, pointwise)
            self.samples.append(sample)


def phase_report(phase: str, samples: list[Sample], seconds: float, calls: int, cpu: float,
                 deadline: float, docs: int) -> PhaseReport:
    mine = [s for s in samples if s.phase == phase]
    latencies = sorted(s.end - s.start for s in mine) or [0.0]
    rank = lambda q: latencies[min(len(latencies) - 1, max(0, round(q * len(latencies)) - 1))]  # noqa: E731
    statuses = Counter("no-answer" if s.status < 0 else " ".join(filter(None, [str(s.status), s.code]))
                       + ("+RA" if s.retry_after else "") for s in mine)
    needed = sum(docs if s.pointwise else 1 for s in mine)  # listwise: up to 20 docs are one window
    return PhaseReport(
        phase, round(seconds, 1), len(mine), dict(sorted(statuses.items())),
        round(1000 * rank(0.5), 1), round(1000 * rank(0.99), 1),
        round(1000 * latencies[-1], 1), round(1000 * (latencies[-1] - deadline), 1),
        calls, round(calls / max(len(mine), 1), 3), round(calls / max(needed, 1), 3),
        round(cpu / seconds, 2),
    )


async def run_fault(stack: harness.Stack, fault: str, args: argparse.Namespace, deadline: float) -> RunReport:
    # The client waits well past the deadline, so a late gateway shows up as latency, not as -1.
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=stack.gateway.url, trust_env=False, timeout=deadline + 10,
                                 limits=limits) as http, \
            httpx.AsyncClient(base_url=stack.upstream.url, trust_env=False, timeout=5) as fake:
        load = Load(http, args.docs, args.pointwise_share)
        clients = [asyncio.create_task(load.client(n)) for n in range(args.concurrency)]
        marks: list[Mark] = []
        pids = (stack.gateway.pid, stack.upstream.pid, os.getpid())

        async def enter(phase: str) -> None:
            load.phase = phase
            calls = int((await fake.get("/stats")).json()["by_model"].get(UPSTREAM_MODEL, 0))
            cpu = [harness.process_cpu_seconds(pid) for pid in pids]
            marks.append(Mark(phase, time.monotonic(), calls, cpu[0], sum(cpu), host_busy_seconds()))

        try:
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
        finally:
            load.stopping = True
            await asyncio.gather(*clients, return_exceptions=True)

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
    report = RunReport(fault, deadline, phases, round(min(fast) - fault_on, 2) if fast else None,
                       round(min(oks) - cleared, 2) if oks else None,
                       round(steady, 2) if steady is not None else None, round(max(0.0, other_cores), 2))
    healthy, outage = phases[0], phases[1]
    report.checks = {
        "healthy baseline: every request 200": set(healthy.statuses) == {"200"},
        f"outage upstream calls per request <= {MAX_CALLS_PER_REQUEST}":
            outage.amplification <= MAX_CALLS_PER_REQUEST,
        f"every answer within deadline + {SLACK * 1000:.0f} ms": all(
            p.max_over_deadline_ms <= SLACK * 1000 for p in phases),
        "every request got an HTTP answer": all("no-answer" not in p.statuses for p in phases),
        "recovered by itself (steady 100% 200)": steady is not None,
    }
    return report


def render(report: RunReport) -> str:
    head = (f"{'phase':<9} {'secs':>5} {'reqs':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'max-dl':>7} "
            f"{'calls':>6} {'calls/req':>9} {'amp':>6} {'gw cpu':>6}  statuses")
    lines = [f"== fault: {report.fault}  (deadline {report.deadline_s:g} s; +RA = with Retry-After)", head]
    for p in report.phases:
        statuses = " ".join(f"{k}:{v}" for k, v in p.statuses.items())
        lines.append(f"{p.phase:<9} {p.seconds:>5.1f} {p.requests:>6} {p.p50_ms:>7.1f} {p.p99_ms:>7.1f} "
                     f"{p.max_ms:>7.1f} {p.max_over_deadline_ms:>+7.0f} {p.upstream_calls:>6} "
                     f"{p.calls_per_request:>9.3f} {p.amplification:>6.3f} {p.gateway_cpu:>6.2f}  {statuses}")
    fmt = lambda v: "never" if v is None else f"{v:.2f} s"  # noqa: E731
    lines += [f"circuit: first fail-fast 503 {fmt(report.fail_fast_after_s)} after the fault began",
              f"recovery: first 200 {fmt(report.first_200_s)} after clearing; "
              f"steady 100% 200 from {fmt(report.steady_s)}",
              f"host: other processes used {report.other_cores:.2f} of {os.cpu_count()} cores meanwhile"]
    lines += [f"  [{'PASS' if ok else 'FAIL'}] {name}" for name, ok in report.checks.items()]
    return "\n".join(lines)


def reliability_section(overrides: list[str], request_timeout: float) -> tuple[str, float]:
    """config.toml's [reliability], with overrides; returns the TOML table and the effective deadline."""
    values: dict[str, Any] = tomllib.loads((harness.ROOT / "config.toml").read_text())["reliability"]
    values["request_timeout_seconds"] = request_timeout
    for item in overrides:
        key, _, raw = item.partition("=")
        values[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]  # TOML syntax for the value
    deadline = min(values["request_timeout_seconds"], values["max_request_timeout_seconds"])
    return "[reliability]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items()), deadline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    parser.add_argument("--json", metavar="PATH", help="also write the reports as JSON")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs in /tmp")
    args = parser.parse_args()
    if unknown := set(args.faults.split(",")) - set(FAULTS):
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    section, deadline = reliability_section(args.reliability, args.request_timeout)
    reports: list[RunReport] = []
    for fault in args.faults.split(","):
        # A fresh stack per fault: breaker state and retry budget start the same for each.
        with harness.running_stack("warning", args.keep_logs, config_extra=section) as stack:
            report = asyncio.run(run_fault(stack, fault, args, deadline))
        reports.append(report)
        print(render(report), "\n", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"reliability": section, "runs": [asdict(r) for r in reports]}, out, indent=2)
    raise SystemExit(0 if all(all(r.checks.values()) for r in reports) else 1)


if __name__ == "__main__":
    main()
