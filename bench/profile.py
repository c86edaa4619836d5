"""Where a request's CPU goes in the gateway process, by layer, sampled with py-spy under load.

py-spy (from PyPI, the `bench` extra) samples the running gateway from outside, so
the numbers include nothing of a profiler's own overhead in the measured process.
Each sample is charged to the innermost frame of a package it knows:

    gateway   gateway/ (the HTTP edge, service, strategies, upstream seam), with what it
              calls that is no layer of its own (orjson, tiktoken, pydantic, logging)
    litellm   litellm/
    SDK       openai/, aiohttp/, httpx/, httpcore/: the clients LiteLLM drives
    server    uvicorn/, starlette/, asyncio/, and the event loop's own C code
    other     the interpreter with no Python frame of those (garbage collection, imports)

and the share of samples is turned into milliseconds with the process's CPU time
per request. Scenarios: `hit` (wrk, the same 100-document body from the cache) and
`listwise`, `pointwise` (100-document misses against the simulator at ~0 ms). The
table lists each layer's ms per request, and for misses per LLM call; the hottest
functions of each layer follow. The collapsed stacks are kept beside the JSON
(`profile-<scenario>.txt`, the input of flamegraph.pl or speedscope).

    .venv/bin/python -m bench.profile [--scenarios hit,listwise,pointwise] [--requests 12] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import cli, counters, harness, plot, report, upstream
from bench.load import fixed_count
from bench.trec import load_queries
from bench.wrk import UNIQUE, run_wrk

LAYERS = ("gateway", "litellm", "SDK", "server", "other")
_PACKAGES = [("gateway/", "gateway"), ("litellm/", "litellm"), ("openai/", "SDK"), ("aiohttp/", "SDK"),
             ("httpx/", "SDK"), ("httpcore/", "SDK"), ("uvicorn/", "server"), ("starlette/", "server"),
             ("asyncio/", "server"), ("uvloop/", "server")]
SCENARIOS = ("hit", "listwise", "pointwise")


def layer_of(frame: str) -> str | None:
    """`func (path:line)` -> its layer, or None for a frame that belongs to its caller's."""
    path = frame[frame.rfind("(") + 1:]
    for marker, layer in _PACKAGES:
        if marker in path:
            return layer
    return None


def attribute(stack: str) -> tuple[str, str]:
    """(layer, the frame that decided it) for one collapsed stack, innermost known frame first."""
    frames = stack.split(";")
    for frame in reversed(frames):
        layer = layer_of(frame)
        if layer is not None:
            return layer, frame
    return "other", frames[-1] if frames else "?"


@dataclass
class Profile:
    scenario: str
    run: int
    requests: int
    llm_calls: int
    cpu_ms_per_request: float
    samples: int
    by_layer: dict[str, int]
    top: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def ms(self, layer: str) -> float:
        return self.cpu_ms_per_request * self.by_layer.get(layer, 0) / max(self.samples, 1)


def read_stacks(path: Path) -> Profile:
    by_layer: collections.Counter[str] = collections.Counter()
    top: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        layer, frame = attribute(stack)
        by_layer[layer] += n
        top[layer][frame] += n
        total += n
    return Profile("", 0, 0, 0, 0.0, total, dict(by_layer), {k: v.most_common(5) for k, v in top.items()})


def py_spy() -> str:
    path = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(path).exists():
        raise SystemExit("py-spy is not installed: `./dev.sh bench` installs the bench extra")
    return path


def profile_one(gateway: harness.Server, scenario: str, run: int, args: argparse.Namespace, out: Path) -> Profile:
    query = load_queries("dl19")[run % 10]
    documents = [c.text for c in query.candidates][: args.documents]
    mode = "listwise" if scenario == "hit" else scenario
    text = query.query if scenario == "hit" else f"{query.query} {UNIQUE.decode()}"
    body = json.dumps({"model": mode, "mode": mode, "query": text, "documents": documents}).encode()
    warm = httpx.post(gateway.url + "/v1/rerank", content=body.replace(UNIQUE, b"warm"), timeout=300,
                      trust_env=False, headers={"content-type": "application/json"})
    if warm.status_code != 200:
        raise RuntimeError(f"gateway: HTTP {warm.status_code}: {warm.text[:300]}")
    calls = int(warm.json()["meta"]["llm_calls"]) if scenario != "hit" else 0
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.parent / f"profile-{scenario}.txt"
    spy = subprocess.Popen([py_spy(), "record", "--pid", str(gateway.pid), "--rate", str(args.rate), "--format",
                            "raw", "--output", str(raw), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    cpu = counters.process_cpu_seconds(gateway.pid)
    if scenario == "hit":
        result = run_wrk(gateway.url + "/v1/rerank", body, seconds=args.seconds, connections=8)
    else:
        prefix, _, suffix = body.partition(UNIQUE)
        result = asyncio.run(fixed_count(gateway.url + "/v1/rerank",
                                         lambda n: b"%s%d-%d%s" % (prefix, run, n, suffix), connections=4,
                                         requests=args.requests, timeout=300))
    cpu = counters.process_cpu_seconds(gateway.pid) - cpu
    spy.send_signal(signal.SIGINT)
    _, err = spy.communicate(timeout=60)
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    found = read_stacks(raw)
    found.scenario, found.run, found.requests = scenario, run, result.requests
    found.llm_calls = calls * result.requests
    found.cpu_ms_per_request = 1000 * cpu / max(result.requests, 1)
    return found


def rows_of(profiles: list[Profile]) -> list[dict[str, Any]]:
    rows = []
    for scenario in dict.fromkeys(p.scenario for p in profiles):
        mine = [p for p in profiles if p.scenario == scenario]
        per_call = mine[0].llm_calls > 0
        for layer in (*LAYERS, "total"):
            ms = [p.cpu_ms_per_request if layer == "total" else p.ms(layer) for p in mine]
            row: dict[str, Any] = {"scenario": scenario, "layer": layer, "ms_per_request": report.spread(ms)}
            if per_call:
                row["ms_per_call"] = report.spread(m * p.requests / p.llm_calls for m, p in zip(ms, mine,
                                                                                               strict=True))
            row["share"] = report.spread(100 * (1 if layer == "total" else p.by_layer.get(layer, 0)
                                                / max(p.samples, 1)) for p in mine)
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ["scenario", "layer", "CPU ms/request", "ms/LLM call", "% of samples"]
    return report.table(header, [[r["scenario"], r["layer"], r["ms_per_request"].format(".2f"),
                                  r["ms_per_call"].format(".2f") if "ms_per_call" in r else "-",
                                  r["share"].format(".0f")] for r in rows], align="<<")


def format_top(profiles: list[Profile]) -> str:
    lines = []
    for p in profiles:
        if p.run:
            continue
        lines.append(f"hottest frames, {p.scenario} (run 1; the frame that decided each sample's layer):")
        for layer in LAYERS:
            for frame, n in p.top.get(layer, [])[:3]:
                lines.append(f"  {layer:8s} {100 * n / max(p.samples, 1):5.1f}%  {frame}")
    return "\n".join(lines)


def write_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    labels = [f"{s}: {layer}" for s in scenarios for layer in LAYERS]
    values = [next(r["ms_per_request"] for r in rows if r["scenario"] == s and r["layer"] == layer)
              for s in scenarios for layer in LAYERS]
    return plot.bars(path, "gateway CPU per 100-document request by layer (py-spy); whiskers: min-max",
                     labels, [("CPU ms per request", values)])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--scenarios", default="hit,listwise,pointwise")
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--requests", type=int, default=12, help="misses per profile")
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk's load for the hit profile")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    cli.add_measuring(parser, "profile", knobs=False)
    args = cli.parse(parser, argv)
    if args.smoke:
        args.scenarios, args.documents, args.requests, args.seconds, args.repeat = "hit,pointwise", 10, 2, 1.0, 1
    args.scenarios = cli.comma_list(parser, args.scenarios, "scenario", SCENARIOS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profiles: list[Profile] = []
    with harness.workdir() as workdir:
        with upstream.running(args, workdir) as up:
            aliases = {mode: (up.target("instant"), mode) for mode in ("listwise", "pointwise")}
            config = harness.write_gateway_config(workdir / "config.toml", aliases, cache=True, request_timeout=120)
            gateway = harness.start_gateway(config, workdir)
            bar = plot.progress(len(args.scenarios) * args.repeat, "profile")
            try:
                gateway.wait_ready("/health")
                for run in range(args.repeat):
                    for scenario in args.scenarios:
                        bar.set_postfix_str(f"run {run + 1}: {scenario}")
                        profiles.append(profile_one(gateway, scenario, run, args, args.json))
                        bar.update()
            finally:
                bar.close()
                gateway.stop()
    rows = rows_of(profiles)
    print(f"gateway CPU per {args.documents}-document request by layer, py-spy at {args.rate} Hz; "
          f"min / median / max over {args.repeat} runs")
    print(format_table(rows))
    print(format_top(profiles))
    report.write_json(args.json, {"args": cli.as_json(args), "rows": rows, "profiles": profiles})
    print(f"wrote {args.json} and {write_plot(rows, args.json.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    harness.run_main(main)
