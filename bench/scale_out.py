"""Scale-out: three gateway replicas on this machine sharing one Redis, against the in-process backend.

Measures, per run:
  - hit ratio of a repeated workload (30 distinct requests, each sent 10 times round-robin over 3 replicas),
    Redis backend vs memory backend (each replica its own cache);
  - upstream calls for a cold stampede of 100 identical concurrent requests over the 3 replicas
    (the upstream answers after 1 s), with Redis healthy, with Redis frozen (SIGSTOP), and with memory;
  - latency of cache misses (every request new: each one reads, locks and writes Redis) under a closed loop
    of 6 clients, memory backend (the baseline), Redis healthy and Redis frozen: the added p50/p99;
  - requests/s on cache hits for `serve --workers 1, 2, 3` (one port, 16 clients).

    .venv/bin/python -m bench.scale_out [--repeat 3] [--seconds 8] [--json PATH]

Needs redis-server (Debian's package; ./dev.sh test installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import cli, harness, report
from bench.load import WORDS, ClosedLoop, Request
from tests.support.redis_server import RedisServer

SLOW_MODEL = "stampede"  # a fake model name the upstream delays, for the stampede
EXTRA = f"""[models."slow"]
litellm_model = "openai/{SLOW_MODEL}"
api_base_env = "BENCH_UPSTREAM_BASE"
api_key_env = "{harness.KEY_ENV}"
logprobs = true
context_window = 128000"""
DOCS = [f"passage {i}: " + " ".join(WORDS[i:i + 8]) for i in range(10)]


def body(query: str, model: str = harness.ALIASES["listwise"]) -> dict[str, Any]:
    return {"query": query, "documents": DOCS, "model": model}


@contextlib.contextmanager
def replicas(upstream: harness.Server, workdir: Path, backend: str, redis: RedisServer | None,
             count: int = 3, workers: int = 1) -> Iterator[list[harness.Server]]:
    """`count` gateways (cache on), each in its own directory, stopped on exit."""
    cache = f'[cache]\nenabled = true\nbackend = "{backend}"' + (f'\nredis_url = "{redis.url}"' if redis else "")
    servers = []
    try:
        for n in range(count):
            home = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{backend}-{workers}w-{n}-"))
            config = harness.write_config(home / "config.toml", upstream.port, cache=True, extra=EXTRA)
            config.write_text(config.read_text().replace("[cache]\nenabled = true", cache))
            port = harness.free_port()
            args = ["-m", "gateway", "serve", "--config", str(config), "--port", str(port), "--log-level", "warning",
                    "--workers", str(workers)]
            env = harness.child_env(BENCH_UPSTREAM_BASE=f"{upstream.url}/v1")
            server = harness.Server(f"gateway {n}", harness.spawn(args, home / "gateway.log", env), port,
                                    home / "gateway.log")
            servers.append(server)
        for server in servers:
            server.wait_ready("/health", timeout=180)
        yield servers
    finally:
        for server in servers:
            server.stop()


async def hit_ratio(gateways: list[harness.Server]) -> float:
    hits = total = 0
    async with httpx.AsyncClient(trust_env=False, timeout=60) as http:
        for round_ in range(10):
            for n in range(30):
                gateway = gateways[(round_ + n) % len(gateways)]
                answer = await http.post(f"{gateway.url}/v1/rerank", json=body(f"repeated {n}"))
                answer.raise_for_status()
                hits += answer.headers["x-cache"] == "HIT"
                total += 1
    return hits / total


async def stampede(gateways: list[harness.Server], upstream: harness.Server, label: str) -> int:
    async with httpx.AsyncClient(trust_env=False, timeout=60, limits=httpx.Limits(max_connections=200)) as http:
        await http.post(f"{upstream.url}/faults", json={"model": SLOW_MODEL, "always": {"kind": "delay",
                                                                                       "seconds": 1.0}})
        before = (await http.get(f"{upstream.url}/stats")).json()["by_model"].get(SLOW_MODEL, 0)
        answers = await asyncio.gather(*(http.post(f"{gateways[n % len(gateways)].url}/v1/rerank",
                                                   json=body(f"stampede {label}", "slow")) for n in range(100)))
        after = (await http.get(f"{upstream.url}/stats")).json()["by_model"].get(SLOW_MODEL, 0)
    assert all(a.status_code == 200 for a in answers), {a.status_code for a in answers}
    return int(after - before)


async def miss_latency(gateways: list[harness.Server], seconds: float, redis: RedisServer | None = None,
                       freeze: bool = False) -> dict[str, float]:
    counter = iter(range(10**9))
    label = random.random()

    def request(rng: random.Random) -> Request:
        return Request(body(f"miss {label} {next(counter)}"))

    # A closed loop per replica, 2 clients each.
    loops = [ClosedLoop(g.url, 2, 30, request) for g in gateways]
    async with contextlib.AsyncExitStack() as stack:
        for loop in loops:
            await stack.enter_async_context(loop)
        await asyncio.sleep(1.0)  # warm-up, not measured
        if freeze and redis is not None:
            redis.freeze()
        for loop in loops:
            loop.phase = "measured"
        try:
            await asyncio.sleep(seconds)
        finally:
            for loop in loops:
                loop.phase = "after"
            if freeze and redis is not None:
                redis.thaw()
    samples = [s for loop in loops for s in loop.samples if s.phase == "measured"]
    latencies = [s.latency for s in samples]
    return {"requests": len(samples), "failed": sum(not s.good for s in samples),
            "p50_ms": 1000 * report.percentile(latencies, 0.5), "p99_ms": 1000 * report.percentile(latencies, 0.99)}


async def hits_per_second(gateway: harness.Server, seconds: float) -> float:
    async with httpx.AsyncClient(trust_env=False, timeout=60) as http:
        for n in range(8):
            (await http.post(f"{gateway.url}/v1/rerank", json=body(f"hot {n}"))).raise_for_status()

    def request(rng: random.Random) -> Request:
        return Request(body(f"hot {rng.randrange(8)}"))

    async with ClosedLoop(gateway.url, 16, 30, request) as loop:
        await asyncio.sleep(1.0)
        loop.phase = "measured"
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        loop.phase = "after"
    good = [s for s in loop.samples if s.phase == "measured" and s.good]
    return len(good) / elapsed


def one_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    upstream = harness.start_fake_upstream(workdir)
    redis = RedisServer(workdir)
    try:
        upstream.wait_ready("/stats")
        redis.start()
        with replicas(upstream, workdir, "memory", None) as memory:
            result["hit_ratio_memory"] = asyncio.run(hit_ratio(memory))
            result["stampede_calls_memory"] = asyncio.run(stampede(memory, upstream, "memory"))
            result["miss_memory"] = asyncio.run(miss_latency(memory, args.seconds))
        with replicas(upstream, workdir, "redis", redis) as shared:
            result["hit_ratio_redis"] = asyncio.run(hit_ratio(shared))
            result["stampede_calls_redis"] = asyncio.run(stampede(shared, upstream, "redis"))
            result["miss_redis"] = asyncio.run(miss_latency(shared, args.seconds))
            result["miss_redis_frozen"] = asyncio.run(miss_latency(shared, args.seconds, redis, freeze=True))
            redis.freeze()
            try:
                result["stampede_calls_redis_frozen"] = asyncio.run(stampede(shared, upstream, "frozen"))
            finally:
                redis.thaw()
        for workers in (1, 2, 3):
            with replicas(upstream, workdir, "memory", None, count=1, workers=workers) as [gateway]:
                result[f"hits_rps_{workers}_workers"] = asyncio.run(hits_per_second(gateway, args.seconds))
    finally:
        redis.stop()
        upstream.stop()
    return result


def main() -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured phase")
    cli.add_repeat(parser)
    cli.add_json(parser, "scale_out")
    cli.add_keep_logs(parser)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not installed (apt-get install redis-server)")
    runs = []
    with harness.sigterm_as_exit():
        for n in range(args.repeat):
            workdir = Path(tempfile.mkdtemp(prefix="rerank-bench-scale-"))
            try:
                runs.append(one_run(args, workdir))
            finally:
                if not args.keep_logs:
                    shutil.rmtree(workdir, ignore_errors=True)
            print(f"run {n + 1}/{args.repeat}: {runs[-1]}", flush=True)
    rows = [
        ("hit ratio, repeated workload, memory", [r["hit_ratio_memory"] for r in runs], ".3f"),
        ("hit ratio, repeated workload, redis", [r["hit_ratio_redis"] for r in runs], ".3f"),
        ("upstream calls, 100-request stampede, memory", [r["stampede_calls_memory"] for r in runs], ".0f"),
        ("upstream calls, 100-request stampede, redis", [r["stampede_calls_redis"] for r in runs], ".0f"),
        ("upstream calls, 100-request stampede, redis frozen", [r["stampede_calls_redis_frozen"] for r in runs],
         ".0f"),
    ]
    for phase in ("memory", "redis", "redis_frozen"):
        for q in ("p50_ms", "p99_ms"):
            rows.append((f"miss latency {q[:3]} ms, {phase}", [r[f"miss_{phase}"][q] for r in runs], ".1f"))
    for phase in ("redis", "redis_frozen"):
        for q in ("p50_ms", "p99_ms"):
            rows.append((f"added {q[:3]} ms vs memory, {phase}",
                         [r[f"miss_{phase}"][q] - r["miss_memory"][q] for r in runs], ".1f"))
    rows.append(("failed requests (all phases)", [sum(r[k]["failed"] for k in r if k.startswith("miss_"))
                                                  for r in runs], ".0f"))
    for workers in (1, 2, 3):
        rows.append((f"cache hits/s, --workers {workers}", [r[f"hits_rps_{workers}_workers"] for r in runs], ".0f"))
    print(report.table(["measure", "min / median / max"], [(name, report.spread(v).format(spec))
                                                          for name, v, spec in rows]))
    if args.json:
        report.write_json(args.json, {"options": cli.as_json(args), "runs": runs})
    return 0


if __name__ == "__main__":
    harness.run_main(main)
