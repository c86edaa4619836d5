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
import contextlib
import json
import math
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench import harness
from gateway.auth import hash_key

ADMIN_KEY = "rg-bench-reload-admin-key"
AUTH = f'[auth]\nadmin_keys = [{{name = "bench", sha256 = "{hash_key(ADMIN_KEY)}"}}]'
DEFAULT_ALIAS = harness.ALIASES["listwise"]
LOAD_DOCS = 10
PROBE_DOCS = 30
# (window, step) for valid configs, in turn: each is one call for LOAD_DOCS documents,
# and a different number of calls for PROBE_DOCS.
WINDOWS = [(20, 10), (12, 9), (15, 7), (10, 5)]
UNSET_KEY_ENV = "RERANK_BENCH_SURELY_UNSET_KEY"
WORDS = ("flea cycle insect egg larva pupa adult host blood cat dog month week year warm humid "
         "paris france capital river bridge museum train ticket winter summer coffee bean roast").split()
RELOADS_RE = re.compile(
    r'^rerank_gateway_config_reloads_total\{result="(\w+)",trigger="(\w+)"\} (\S+)$', re.M)
LAST_OK_RE = re.compile(r"^rerank_gateway_config_last_reload_successful (\S+)$", re.M)
INFO_RE = re.compile(r'^rerank_gateway_config_info\{hash="(\w+)",version="(\d+)"\} 1\.0$', re.M)


def window_spans(n: int, window: int, step: int) -> int:
    """How many listwise calls n documents take (gateway.listwise.window_spans, counted)."""
    calls, end = 0, n
    while True:
        calls += 1
        if end - window <= 0:
            return calls
        end -= step


# --- config files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One config file: valid, or broken in a named way (with the message it must be rejected with)."""

    label: str
    window: tuple[int, int]
    alias: str | None  # an extra alias (answered by the fake "reverse" model)
    broken: str | None = None
    expect_message: str = ""


INVALID: list[tuple[str, str]] = [  # (how, substring of the rejection)
    ("toml-syntax", "invalid TOML"),
    ("step>=window", "step must be smaller than window"),
    ("unknown-key", "Extra inputs are not permitted"),
    ("ghost-default", "default_model 'ghost' is not one of"),
    ("no-prompts", "no prompt files"),
    ("uncallable-default", f"{UNSET_KEY_ENV} is not set"),
]


def config_text(upstream_port: int, variant: Variant, base: str, scratch: Path) -> str:
    """The file for `variant`, built with harness.write_config and then broken if asked."""
    tables = [base]
    window = (5, 9) if variant.broken == "step>=window" else variant.window
    tables.append(f"[listwise]\nwindow = {window[0]}\nstep = {window[1]}")
    if variant.alias:
        tables.append(f'[models."{variant.alias}"]\nlitellm_model = "openai/reverse"\n'
                      f'api_base = "http://127.0.0.1:{upstream_port}/v1"\napi_key_env = "{harness.KEY_ENV}"\n'
                      'mode = "listwise"\ncontext_window = 128000')
    if variant.broken == "unknown-key":
        tables.append("[limits]\nmax_documentz = 5")
    if variant.broken == "uncallable-default":
        tables.append(f'[models."needs-key"]\nlitellm_model = "openai/gpt-4o"\n'
                      f'api_key_env = "{UNSET_KEY_ENV}"')
    harness.write_config(scratch, upstream_port, cache=False, extra="\n\n".join(tables))
    text = scratch.read_text()
    default_line = f'default_model = "{DEFAULT_ALIAS}"'
    if variant.broken == "toml-syntax":
        text += "\n[unterminated-table\nkey = 1\n"
    elif variant.broken == "ghost-default":
        text = text.replace(default_line, 'default_model = "ghost"')
    elif variant.broken == "no-prompts":
        text = 'prompts_dir = "/nonexistent/rerank-bench-prompts"\n' + text
    elif variant.broken == "uncallable-default":
        text = text.replace(default_line, 'default_model = "needs-key"')
    return text


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- load -----------------------------------------------------------------------------------


@dataclass
class Sample:
    start: float  # monotonic
    latency: float
    status: int | None  # None: transport error
    error: str | None = None
    version: int | None = None  # x-config-version


class Load:
    """`concurrency` keep-alive clients, each sending the next request as soon as one is answered."""

    def __init__(self, url: str, concurrency: int, timeout: float) -> None:
        self.http = httpx.AsyncClient(
            base_url=url, trust_env=False, timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.concurrency = concurrency
        self.samples: list[Sample] = []
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._worker(i)) for i in range(self.concurrency)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
        await self.http.aclose()

    async def _worker(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            body = {"query": " ".join(rng.sample(WORDS, 3)), "model": DEFAULT_ALIAS,
                    "documents": [" ".join(rng.sample(WORDS, rng.randint(4, 9))) for _ in range(LOAD_DOCS)]}
            t0 = time.monotonic()
            try:
                response = await self.http.post("/v1/rerank", json=body)
            except httpx.TransportError as exc:
                self.samples.append(Sample(t0, time.monotonic() - t0, None, f"{type(exc).__name__}: {exc}"))
                await asyncio.sleep(0.05)  # do not spin if the gateway is gone
                continue
            latency = time.monotonic() - t0
            version = int(response.headers.get("x-config-version", "0")) or None
            error = None
            if response.status_code == 200:
                error = _check_answer(response)
            else:
                error = response.text[:300]
            self.samples.append(Sample(t0, latency, response.status_code, error, version))


def _check_answer(response: httpx.Response) -> str | None:
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


# --- reloads --------------------------------------------------------------------------------


@dataclass
class Reload:
    index: int
    trigger: str  # sighup | admin | watch
    variant: str
    expect_ok: bool
    ok: bool | None = None  # what the gateway said; None: no outcome seen
    version: int | None = None  # active version after it
    seconds: float = 0.0  # trigger -> outcome known
    verified: bool = False  # the outcome matched, and the running config is what it should be
    detail: str = ""


def metric_state(text: str) -> tuple[dict[tuple[str, str], float], float | None, int | None]:
    counts = {(m[1], m[2]): float(m[3]) for m in RELOADS_RE.finditer(text)}
    last = LAST_OK_RE.search(text)
    info = INFO_RE.search(text)
    return counts, float(last[1]) if last else None, int(info[2]) if info else None


class Driver:
    """Writes config files, triggers reloads, and checks each outcome against the running gateway."""

    def __init__(self, stack: harness.Stack, base: str, timeout: float = 15.0) -> None:
        self.stack = stack
        self.base = base
        self.timeout = timeout
        self.http = httpx.AsyncClient(base_url=stack.gateway.url, trust_env=False, timeout=timeout)
        self.admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        self.scratch = stack.workdir / "scratch.toml.txt"
        self.version = 1
        self.current = Variant("initial", WINDOWS[0], None)
        self.valid_count = 0
        self.invalid_count = 0
        self.reloads: list[Reload] = []

    async def close(self) -> None:
        await self.http.aclose()

    def next_variant(self, valid: bool) -> Variant:
        if valid:
            self.valid_count += 1
            k = self.valid_count
            window = WINDOWS[k % len(WINDOWS)]
            alias = f"bench-extra-{k}" if k % 2 else None  # odd: add an alias; even: remove it
            label = f"window {window[0]}/{window[1]}, " + (f"+alias {alias}" if alias else "no extra alias")
            return Variant(label, window, alias)
        how, message = INVALID[self.invalid_count % len(INVALID)]
        self.invalid_count += 1
        return Variant(f"invalid: {how}", self.current.window, self.current.alias, how, message)

    async def reload(self, index: int, trigger: str, valid: bool) -> Reload:
        variant = self.next_variant(valid)
        record = Reload(index, trigger, variant.label, valid)
        self.reloads.append(record)
        text = config_text(self.stack.upstream.port, variant, self.base, self.scratch)
        before_metrics = metric_state(await self._metrics())
        log_offset = self.stack.gateway.log.stat().st_size
        write_atomically(self.stack.config, text)
        t0 = time.monotonic()
        try:
            if trigger == "admin":
                message = await self._admin(record)
            else:
                if trigger == "sighup":
                    self.stack.gateway.process.send_signal(signal.SIGHUP)
                message = await self._await_metrics(record, trigger, before_metrics)
                if record.ok is False:
                    message = self._log_rejection(log_offset, trigger) or message
            record.seconds = time.monotonic() - t0
            problems = await self._verify(record, variant, message)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            record.seconds = time.monotonic() - t0
            problems = [f"check failed: {type(exc).__name__}: {exc}"]
        if self.stack.gateway.process.poll() is not None:
            problems.append(f"gateway process exited with code {self.stack.gateway.process.returncode}")
        record.verified = not problems
        reason = message.split(f"{self.stack.config}: ", 1)[-1]
        record.detail = "; ".join(problems) if problems else (reason if record.ok is False else "")
        return record

    async def _admin(self, record: Reload) -> str:
        response = await self.http.post("/admin/reload", headers=self.admin)
        body = response.json()
        record.ok, record.version = body.get("ok"), body.get("version")
        if response.status_code == 200 and body.get("ok") is True:
            return ""
        if response.status_code == 400 and body.get("ok") is False and \
                body.get("error", {}).get("code") == "invalid_config":
            return body["error"]["message"]
        record.ok = None
        return f"unexpected answer {response.status_code}: {response.text[:200]}"

    async def _await_metrics(self, record: Reload, trigger: str,
                             before: tuple[dict[tuple[str, str], float], float | None, int | None]) -> str:
        """Wait for the reload counter of `trigger` to move; read the outcome from the metrics."""
        deadline = time.monotonic() + self.timeout
        counts_before = before[0]
        while time.monotonic() < deadline:
            counts, last_ok, version = metric_state(await self._metrics())
            moved = {result: counts.get((result, trigger), 0) - counts_before.get((result, trigger), 0)
                     for result in ("success", "failure")}
            if sum(moved.values()) > 0:
                if sum(moved.values()) != 1:
                    record.ok = None
                    return f"{trigger}: {moved} reloads for one trigger"
                record.ok = moved["success"] == 1
                record.version = version
                if last_ok != (1.0 if record.ok else 0.0):
                    record.ok = None
                    return f"last_reload_successful={last_ok} disagrees with the counter ({moved})"
                return ""
            await asyncio.sleep(0.05)
        return f"no {trigger} reload seen in /metrics within {self.timeout:g}s"

    def _log_rejection(self, offset: int, trigger: str) -> str:
        with contextlib.suppress(OSError), self.stack.gateway.log.open("rb") as f:
            f.seek(offset)
            for line in f.read().decode(errors="replace").splitlines():
                if f"config reload ({trigger}) rejected" in line:
                    return line
        return ""

    async def _verify(self, record: Reload, variant: Variant, message: str) -> list[str]:
        problems = []
        if record.ok is None:
            return [message or "no outcome"]
        if record.ok != record.expect_ok:
            said = "accepted" if record.ok else "rejected"
            problems.append(f"{said}, expected the opposite: {message[:200]}")
        expected_version = self.version + 1 if record.expect_ok else self.version
        if record.version != expected_version:
            problems.append(f"version {record.version}, expected {expected_version}")
        if not record.expect_ok and variant.expect_message not in message:
            problems.append(f"rejection does not say {variant.expect_message!r}: {message[:200]}")
        if record.ok:
            self.version, self.current = record.version or self.version, variant
        # What is running now must be self.current at self.version, whatever happened.
        problems += await self._probe()
        return problems

    async def _probe(self) -> list[str]:
        problems = []
        window, step = self.current.window
        expected_calls = window_spans(PROBE_DOCS, window, step)
        body = {"query": "flea cycle", "documents": [f"passage {i} about {WORDS[i % len(WORDS)]}"
                                                      for i in range(PROBE_DOCS)]}
        response = await self.http.post("/v1/rerank", json=body)
        served = response.headers.get("x-config-version")
        if response.status_code != 200:
            problems.append(f"probe answered {response.status_code}")
        elif response.json()["meta"]["llm_calls"] != expected_calls or served != str(self.version):
            problems.append(f"probe: {response.json()['meta']['llm_calls']} calls at version {served}, "
                            f"expected {expected_calls} at {self.version} (window {window}/{step})")
        models = {m["id"] for m in (await self.http.get("/v1/models")).json()["data"]}
        expected_models = set(harness.ALIASES.values())
        if self.current.alias:
            expected_models.add(self.current.alias)
        if models != expected_models:
            problems.append(f"/v1/models lists {sorted(models)}, expected {sorted(expected_models)}")
        if self.current.alias:
            extra = await self.http.post("/v1/rerank", json={**body, "model": self.current.alias})
            if extra.status_code != 200:
                problems.append(f"alias {self.current.alias} answered {extra.status_code}")
        health = await self.http.get("/health")
        if health.status_code != 200:
            problems.append(f"/health answered {health.status_code}")
        return problems

    async def _metrics(self) -> str:
        response = await self.http.get("/metrics")
        response.raise_for_status()
        return response.text

    async def final_version(self) -> int | None:
        response = await self.http.get("/admin/config", headers=self.admin)
        return response.json().get("version") if response.status_code == 200 else None


# --- one run: baseline, then reloads --------------------------------------------------------


@dataclass
class PhaseReport:
    run: str
    phase: str
    seconds: float
    sent: int
    ok_2xx: int
    non_2xx: dict[str, int]
    transport_errors: int
    bad_answers: int  # 200s that are not a full ranking
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    reloads_attempted: int
    reloads_succeeded: int
    reloads_rejected: int
    reloads_unverified: int
    config_version: int | None
    versions_served: list[int]
    log_errors: dict[str, int] = field(default_factory=dict)  # gateway ERROR lines by message, not rejections
    failures: list[str] = field(default_factory=list)  # up to 5 examples

    @property
    def failed(self) -> int:
        return sum(self.non_2xx.values()) + self.transport_errors + self.bad_answers


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def log_errors(log: Path, start: int, end: int) -> dict[str, int]:
    """ERROR lines the gateway logged between two offsets, by message; expected rejections left out."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read(max(0, end - start)).decode(errors="replace")
    found: Counter[str] = Counter()
    for line in text.splitlines():
        head, sep, message = line.partition(" ERROR ")
        if sep and "rejected, still serving version" not in message:
            found[message[:80]] += 1
    return dict(found)


def phase_report(run: str, phase: str, samples: list[Sample], t0: float, t1: float, reloads: list[Reload],
                 version: int | None, errors: dict[str, int]) -> PhaseReport:
    mine = [s for s in samples if t0 <= s.start < t1]
    ok = [s for s in mine if s.status is not None and 200 <= s.status < 300 and s.error is None]
    non_2xx = Counter(str(s.status) for s in mine if s.status is not None and not 200 <= s.status < 300)
    transport = [s for s in mine if s.status is None]
    bad = [s for s in mine if s.status is not None and 200 <= s.status < 300 and s.error is not None]
    latencies = [s.latency * 1000 for s in mine if s.status is not None]
    failures = [f"{s.status}: {s.error}" for s in mine if s.error is not None][:5]
    return PhaseReport(
        run, phase, round(t1 - t0, 1), len(mine), len(ok), dict(non_2xx), len(transport), len(bad),
        round(len(mine) / (t1 - t0), 1) if t1 > t0 else 0.0,
        round(percentile(latencies, 0.50), 1), round(percentile(latencies, 0.99), 1),
        round(max(latencies, default=math.nan), 1),
        len(reloads), sum(r.ok is True for r in reloads), sum(r.ok is False for r in reloads),
        sum(not r.verified for r in reloads), version,
        sorted({s.version for s in mine if s.version is not None}), errors, failures,
    )


async def run_phases(
    stack: harness.Stack, run: str, base: str, triggers: list[str], args: argparse.Namespace,
    baseline: float, reload_seconds: float, reloads: int,
) -> tuple[list[PhaseReport], list[Reload]]:
    load = Load(stack.gateway.url, args.concurrency, args.request_timeout)
    driver = Driver(stack, base)
    log = stack.gateway.log
    load.start()
    try:
        await asyncio.sleep(args.warmup)
        b0, log_b0 = time.monotonic(), log.stat().st_size
        await asyncio.sleep(baseline)
        r0, log_r0 = time.monotonic(), log.stat().st_size
        baseline_version = driver.version
        spacing = reload_seconds / reloads
        for i in range(reloads):
            await asyncio.sleep(max(0.0, r0 + (i + 0.5) * spacing - time.monotonic()))
            valid = i % 2 == 0  # valid, invalid, valid, invalid, ...
            # Two triggers go sighup, admin, admin, sighup, ...: each sees valid and invalid files.
            trigger = triggers[(i + i // 2) % len(triggers)]
            record = await driver.reload(i + 1, trigger, valid)
            mark = "ok " if record.verified else "BAD"
            print(f"  [{run}] reload {record.index:2d} {record.trigger:6s} {record.variant:38s} -> "
                  f"{'accepted' if record.ok else 'rejected' if record.ok is False else 'no outcome'}"
                  f" v{record.version} in {record.seconds * 1000:5.0f} ms  {mark} {record.detail[:100]}",
                  flush=True)
            if stack.gateway.process.poll() is not None:
                break
        await asyncio.sleep(max(0.0, r0 + reload_seconds - time.monotonic()))
        r1, log_r1 = time.monotonic(), log.stat().st_size
        final = await driver.final_version() if stack.gateway.process.poll() is None else None
    finally:
        await load.finish()
        await driver.close()
    phases = [
        phase_report(run, "baseline", load.samples, b0, r0, [], baseline_version,
                     log_errors(log, log_b0, log_r0)),
        phase_report(run, "reloading", load.samples, r0, r1, driver.reloads, final,
                     log_errors(log, log_r0, log_r1)),
    ]
    return phases, driver.reloads


# --- output ---------------------------------------------------------------------------------


def table(phases: list[PhaseReport]) -> str:
    header = ["run", "phase", "secs", "sent", "2xx", "non-2xx", "transport", "bad 200", "req/s",
              "p50 ms", "p99 ms", "max ms", "reloads", "ok", "rejected", "unverified", "config v", "v served",
              "log ERRORs"]
    rows = [[p.run, p.phase, f"{p.seconds:.1f}", str(p.sent), str(p.ok_2xx),
             ", ".join(f"{k}:{v}" for k, v in sorted(p.non_2xx.items())) or "0", str(p.transport_errors),
             str(p.bad_answers), f"{p.rps:.1f}", f"{p.p50_ms:.1f}", f"{p.p99_ms:.1f}", f"{p.max_ms:.1f}",
             str(p.reloads_attempted), str(p.reloads_succeeded), str(p.reloads_rejected),
             str(p.reloads_unverified), str(p.config_version), _span(p.versions_served),
             str(sum(p.log_errors.values()))] for p in phases]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = enumerate(zip(row, widths, strict=True))
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in cells)

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def _span(versions: list[int]) -> str:
    if not versions:
        return "-"
    return str(versions[0]) if len(versions) == 1 else f"{versions[0]}..{versions[-1]} ({len(versions)})"


def acceptance(phases: list[PhaseReport], reloads: dict[str, list[Reload]], alive: dict[str, bool],
               min_reloads: int) -> list[tuple[str, bool]]:
    main = reloads.get("signal+admin", [])
    checks = [
        (f"main run: >= {min_reloads} reloads, half invalid ({len(main)} made, "
         f"{sum(not r.expect_ok for r in main)} invalid)",
         len(main) >= min_reloads and sum(not r.expect_ok for r in main) * 2 >= len(main)),
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
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of load without reloads")
    parser.add_argument("--reload-seconds", type=float, default=30.0, help="seconds of load with reloads")
    parser.add_argument("--reloads", type=int, default=24, help="reloads in the main run (>= 20)")
    parser.add_argument("--no-watch", action="store_true", help="skip the watch_config run")
    parser.add_argument("--watch-baseline", type=float, default=10.0)
    parser.add_argument("--watch-seconds", type=float, default=20.0)
    parser.add_argument("--watch-reloads", type=int, default=10)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=175.0, help="hard bound on the whole benchmark")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    if args.reloads < 2:
        parser.error("--reloads must be at least 2")

    runs = [("signal+admin", ["sighup", "admin"], args.baseline, args.reload_seconds, args.reloads, "")]
    if not args.no_watch:
        runs.append(("watch", ["watch"], args.watch_baseline, args.watch_seconds, args.watch_reloads,
                     "[server]\nwatch_config = true"))
    phases: list[PhaseReport] = []
    reloads: dict[str, list[Reload]] = {}
    alive: dict[str, bool] = {}
    started = time.monotonic()

    def watchdog(signum: int, frame: object) -> None:
        raise SystemExit(f"reload_under_load: over --max-seconds {args.max_seconds:g}, giving up")

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(max(1, int(args.max_seconds)))
    try:
        for name, triggers, baseline, seconds, count, server in runs:
            base = "\n\n".join(t for t in (AUTH, server) if t)
            initial = Variant("initial", WINDOWS[0], None)
            print(f"run {name}: starting fake upstream + gateway ...", flush=True)
            with harness.running_stack(log_level="info", keep_logs=args.keep_logs,
                                       config_extra=_extra_of(initial, base)) as stack:
                if args.keep_logs:
                    print(f"  logs in {stack.workdir}")
                print(f"run {name}: {args.concurrency} clients, {args.warmup:g}s warm-up, "
                      f"{baseline:g}s baseline, {count} reloads in {seconds:g}s ({'/'.join(triggers)})",
                      flush=True)
                got, records = asyncio.run(
                    run_phases(stack, name, base, triggers, args, baseline, seconds, count))
                alive[name] = stack.gateway.process.poll() is None
                if not alive[name]:
                    code = stack.gateway.process.returncode
                    print(f"  gateway died (code {code}):\n{stack.gateway.log_tail()}")
                phases += got
                reloads[name] = records
    finally:
        signal.alarm(0)

    print()
    print(table(phases))
    checks = acceptance(phases, reloads, alive, 20)
    print()
    for text, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
    for p in phases:
        for example in p.failures:
            print(f"  {p.run}/{p.phase} failure: {example}")
    for p in phases:
        for message, count in p.log_errors.items():
            print(f"NOTE  {p.run}/{p.phase}: the gateway logged {count} x ERROR {message}")
    print(f"\n(total {time.monotonic() - started:.0f}s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "phases": [asdict(p) for p in phases],
            "reloads": {k: [asdict(r) for r in v] for k, v in reloads.items()},
            "alive": alive,
            "acceptance": [{"check": text, "passed": passed} for text, passed in checks],
        }, indent=2))
    return 0 if all(passed for _, passed in checks) else 1


def _extra_of(variant: Variant, base: str) -> str:
    """The extra tables of the initial config: what config_text writes for `variant`, before harness's own."""
    return f"{base}\n\n[listwise]\nwindow = {variant.window[0]}\nstep = {variant.window[1]}"


if __name__ == "__main__":
    sys.exit(main())
