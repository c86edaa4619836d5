"""Config reloads under sustained load: zero failed requests, before and during reloads.

Acceptance: "Under sustained load with at least 20 reloads (half invalid), zero
requests fail." A fake upstream and the gateway (cache off, so every request
makes a real LiteLLM call) run as processes on 127.0.0.1; `--concurrency`
keep-alive clients send listwise rerank requests (10 short documents, one LLM
call each) without pause for the whole run, which has two phases:

    baseline    no reloads
    reloading   `--reloads` reloads, evenly spread; valid and invalid files
                alternate, triggered by SIGHUP and POST /admin/reload in turn

Every file is written atomically (temp file + rename). Valid files really
change something: `[listwise] window/step` cycle (20/10, 12/9, 15/7, 10/5; all
one call for the load's 10 documents, but 2/3/4/5 calls for a 30-document
probe) and an extra alias is added or removed. Invalid files cycle through six
ways to be rejected: TOML syntax, a validation error, an unknown key, a
default_model that names no alias, a prompts_dir without prompts, and a default
model that cannot be called (its key variable unset).

Each reload is checked: the admin endpoint's JSON (`ok`, `version`, the
rejection reason), for SIGHUP the gateway's /metrics
(`rerank_gateway_config_reloads_total`, `..._last_reload_successful`,
`..._config_info`) and its log line; then a valid reload is confirmed by a
30-document probe (LLM calls and `x-config-version`) and /v1/models, an invalid
one by the version staying put. After every reload the gateway process must
still be alive. A second run (skip with `--no-watch`) does the same with
`[server] watch_config = true` and only the file watcher triggering.

    .venv/bin/python -m bench.reload_under_load [--baseline 20] [--reload-seconds 30] [--reloads 24]
        [--concurrency 16] [--no-watch] [--json PATH]

Exit status 0 when the acceptance holds, 1 otherwise. Bounded by `--max-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import asdict

import httpx

from bench import cli, harness, report
from bench.load import WORDS, ClosedLoop, Request
from bench.reload_configs import DEFAULT_ALIAS, initial_extra
from bench.reload_driver import Driver, Reload
from bench.reload_report import PhaseReport, log_errors, phase_report, table
from gateway.ops.auth import hash_key

ADMIN_KEY = "rg-bench-reload-admin-key"
AUTH = f'[auth]\nadmin_keys = [{{name = "bench", sha256 = "{hash_key(ADMIN_KEY)}"}}]'
LOAD_DOCS = 10
MIN_RELOADS = 20  # the acceptance's "at least 20 reloads"


def request(rng: random.Random) -> Request:
    return Request({"query": " ".join(rng.sample(WORDS, 3)), "model": DEFAULT_ALIAS,
                    "documents": [" ".join(rng.sample(WORDS, rng.randint(4, 9))) for _ in range(LOAD_DOCS)]})


def check_answer(response: httpx.Response) -> str | None:
    """Why a 200 is not a good answer, or None."""
    try:
        data = response.json()
        results, calls = data["results"], data["meta"]["llm_calls"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable 200: {exc!r}"
    if len(results) != LOAD_DOCS:
        return f"200 with {len(results)} results for {LOAD_DOCS} documents"
    if calls != 1:
        return f"200 after {calls} LLM calls (expected 1)"
    return None


async def run_phases(
    stack: harness.Stack, run: str, base: str, triggers: list[str], args: argparse.Namespace,
    baseline: float, reload_seconds: float, reloads: int,
) -> tuple[list[PhaseReport], list[Reload]]:
    driver = Driver(stack, base, ADMIN_KEY)
    gateway = stack.gateway
    try:
        async with ClosedLoop(gateway.url, args.concurrency, args.request_timeout, request, check_answer) as load:
            await asyncio.sleep(args.warmup)
            b0, log_b0 = time.monotonic(), gateway.log_size()
            await asyncio.sleep(baseline)
            r0, log_r0 = time.monotonic(), gateway.log_size()
            baseline_version = driver.version
            spacing = reload_seconds / reloads
            for i in range(reloads):
                await asyncio.sleep(max(0.0, r0 + (i + 0.5) * spacing - time.monotonic()))
                valid = i % 2 == 0  # valid, invalid, valid, invalid, ...
                # Two triggers go sighup, admin, admin, sighup, ...: each sees valid and invalid files.
                trigger = triggers[(i + i // 2) % len(triggers)]
                record = await driver.reload(i + 1, trigger, valid)
                mark = "ok " if record.verified else "BAD"
                outcome = "accepted" if record.ok else "rejected" if record.ok is False else "no outcome"
                print(f"  [{run}] reload {record.index:2d} {record.trigger:6s} {record.variant:38s} -> {outcome}"
                      f" v{record.version} in {record.seconds * 1000:5.0f} ms  {mark} {record.detail[:100]}",
                      flush=True)
                if gateway.process.poll() is not None:
                    break
            await asyncio.sleep(max(0.0, r0 + reload_seconds - time.monotonic()))
            r1, log_r1 = time.monotonic(), gateway.log_size()
            final = await driver.final_version() if gateway.process.poll() is None else None
    finally:
        await driver.close()
    phases = [
        phase_report(run, "baseline", load.samples, b0, r0, [], baseline_version,
                     log_errors(gateway.log_between(log_b0, log_r0))),
        phase_report(run, "reloading", load.samples, r0, r1, driver.reloads, final,
                     log_errors(gateway.log_between(log_r0, log_r1))),
    ]
    return phases, driver.reloads


def acceptance(phases: list[PhaseReport], reloads: dict[str, list[Reload]],
               alive: dict[str, bool]) -> list[tuple[str, bool]]:
    main = reloads.get("signal+admin", [])
    invalid = sum(not r.expect_ok for r in main)
    return [
        (f"main run: >= {MIN_RELOADS} reloads, half invalid ({len(main)} made, {invalid} invalid)",
         len(main) >= MIN_RELOADS and invalid * 2 >= len(main)),
        ("every trigger used with valid and invalid files",
         all({(r.trigger, r.expect_ok) for r in rs} >= {(r.trigger, v) for r in rs for v in (True, False)}
             for rs in reloads.values())),
        ("every reload had the expected outcome and the running config matched it",
         all(r.verified for rs in reloads.values() for r in rs)),
        ("zero failed requests during reloads (non-2xx, transport errors, bad 200s)",
         all(p.failed == 0 for p in phases if p.phase == "reloading")),
        ("zero failed requests in the baseline", all(p.failed == 0 for p in phases if p.phase == "baseline")),
        ("the gateway process stayed alive", all(alive.values())),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of load without reloads")
    parser.add_argument("--reload-seconds", type=float, default=30.0, help="seconds of load with reloads")
    parser.add_argument("--reloads", type=int, default=24, help=f"reloads in the main run (>= {MIN_RELOADS})")
    parser.add_argument("--no-watch", action="store_true", help="skip the watch_config run")
    parser.add_argument("--watch-baseline", type=float, default=10.0)
    parser.add_argument("--watch-seconds", type=float, default=20.0)
    parser.add_argument("--watch-reloads", type=int, default=10)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=175.0, help="hard bound on the whole benchmark")
    cli.add_json(parser, "reload_under_load")
    cli.add_keep_logs(parser)
    args = parser.parse_args(argv)
    if args.reloads < 2:
        parser.error("--reloads must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = [("signal+admin", ["sighup", "admin"], args.baseline, args.reload_seconds, args.reloads, "")]
    if not args.no_watch:
        runs.append(("watch", ["watch"], args.watch_baseline, args.watch_seconds, args.watch_reloads,
                     "[server]\nwatch_config = true"))
    phases: list[PhaseReport] = []
    reloads: dict[str, list[Reload]] = {}
    alive: dict[str, bool] = {}
    started = time.monotonic()
    limit = f"reload_under_load: over --max-seconds {args.max_seconds:g}, giving up"
    with harness.time_limit(args.max_seconds, limit):
        for name, triggers, baseline, seconds, count, server in runs:
            base = "\n\n".join(t for t in (AUTH, server) if t)
            print(f"run {name}: starting fake upstream + gateway ...", flush=True)
            with harness.running_stack(log_level="info", keep_logs=args.keep_logs,
                                       config_extra=initial_extra(base)) as stack:
                if args.keep_logs:
                    print(f"  logs in {stack.workdir}")
                print(f"run {name}: {args.concurrency} clients, {args.warmup:g}s warm-up, "
                      f"{baseline:g}s baseline, {count} reloads in {seconds:g}s ({'/'.join(triggers)})",
                      flush=True)
                got, reloads[name] = asyncio.run(
                    run_phases(stack, name, base, triggers, args, baseline, seconds, count))
                alive[name] = stack.gateway.process.poll() is None
                if not alive[name]:
                    print(f"  gateway died (code {stack.gateway.process.returncode}):\n{stack.gateway.log_tail()}")
                phases += got

    print()
    print(table(phases))
    checks = acceptance(phases, reloads, alive)
    print()
    print("\n".join(report.verdicts(checks)))
    for p in phases:
        for example in p.failures:
            print(f"  {p.run}/{p.phase} failure: {example}")
    for p in phases:
        for message, n in p.log_errors.items():
            print(f"NOTE  {p.run}/{p.phase}: the gateway logged {n} x ERROR {message}")
    print(f"\n(total {time.monotonic() - started:.0f}s)")
    if args.json:
        report.write_json(args.json, {
            "config": cli.as_json(args), "phases": [asdict(p) for p in phases],
            "reloads": {k: [asdict(r) for r in v] for k, v in reloads.items()}, "alive": alive,
            "acceptance": [{"check": text, "passed": passed} for text, passed in checks],
        })
    return 0 if all(passed for _, passed in checks) else 1


if __name__ == "__main__":
    harness.run_main(main)
