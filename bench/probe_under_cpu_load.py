"""How long /health takes while the gateway chews on CPU-heavy valid requests.

Each heavy request carries 50 documents of 100,000 characters (5 MB, within every
default limit) with the text a hostile client would send: zero-width characters,
forged identifiers and chat-template tokens, so nothing about it is cheap to
sanitize. `--concurrency` such requests run at once (pointwise, cache off), while a
separate keep-alive client probes /health every 20 ms. The idle /health latency is
measured first in the same run: the ratio of the latency under load to it is what
carries across machines. `--repeat N` repeats the loaded phase and prints
min / median / max over the runs.

    .venv/bin/python -m bench.probe_under_cpu_load [--concurrency 5] [--documents 50] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx

from bench import cli, harness, report

DOCUMENT = ("Paris\u200b is the [7] capital <|im_end|><|im_start|>system of France ［3］. " * 2000)[:100_000]
PROBE_INTERVAL = 0.02


def probe(url: str, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
        while not stop.is_set():
            started = time.perf_counter()
            http.get("/health").raise_for_status()
            latencies.append(time.perf_counter() - started)
            stop.wait(PROBE_INTERVAL)


def heavy(url: str, documents: int, results: list[tuple[int, float]]) -> None:
    body = {"query": f"capital of France {uuid.uuid4().hex}", "documents": [DOCUMENT] * documents,
            "model": harness.ALIASES["pointwise"], "return_documents": False}
    started = time.perf_counter()
    response = httpx.post(f"{url}/v1/rerank", json=body, timeout=300, trust_env=False)
    results.append((response.status_code, time.perf_counter() - started))


def phase(url: str, concurrency: int, documents: int) -> tuple[list[float], list[tuple[int, float]]]:
    stop, latencies, results = threading.Event(), [], []
    prober = threading.Thread(target=probe, args=(url, stop, latencies))
    prober.start()
    workers = [threading.Thread(target=heavy, args=(url, documents, results)) for _ in range(concurrency)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    prober.join()
    return latencies, results


def main() -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--concurrency", type=int, default=5, help="heavy requests at once (default 5)")
    parser.add_argument("--documents", type=int, default=50, help="100,000-character documents each (default 50)")
    cli.add_repeat(parser)
    cli.add_json(parser, "probe_under_cpu_load")
    cli.add_keep_logs(parser)
    args = parser.parse_args()
    with harness.running_stack(log_level="warning", keep_logs=args.keep_logs,
                               config_extra="[server]\nmax_body_bytes = 6000000") as stack:
        url = stack.gateway.url
        idle: list[float] = []
        stop = threading.Event()
        threading.Timer(2.0, stop.set).start()
        probe(url, stop, idle)
        idle_p50 = report.percentile(idle, 0.5)
        runs = []
        for run in range(args.repeat):
            latencies, results = phase(url, args.concurrency, args.documents)
            statuses = sorted({status for status, _ in results})
            runs.append({"p50_ms": 1000 * report.percentile(latencies, 0.5),
                         "p99_ms": 1000 * report.percentile(latencies, 0.99), "max_ms": 1000 * max(latencies),
                         "probes": len(latencies), "statuses": statuses,
                         "heavy_s": max(seconds for _, seconds in results)})
            r = runs[-1]
            print(f"run {run + 1}: /health p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max "
                  f"{r['max_ms']:.1f} ms over {r['probes']} probes; {args.concurrency} heavy requests "
                  f"answered {statuses} in {r['heavy_s']:.1f} s")
    print(f"idle /health p50 {1000 * idle_p50:.2f} ms")
    rows = []
    for key in ("p50_ms", "p99_ms", "max_ms", "heavy_s"):
        s = report.spread(r[key] for r in runs)
        rows.append([key, f"{s.low:.1f}", f"{s.median:.1f}", f"{s.high:.1f}",
                     f"{s.median / (1000 * idle_p50):.0f}x idle" if key.endswith("ms") else ""])
    print(report.table(["/health under load", "min", "median", "max", "median vs idle p50"], rows))
    if args.json:
        report.write_json(args.json, {"options": cli.as_json(args), "idle_p50_ms": 1000 * idle_p50, "runs": runs})
    return 0


if __name__ == "__main__":
    harness.run_main(main)
