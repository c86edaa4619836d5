"""Process management shared by the benchmarks: the fake upstream, the gateway and helper children.

Everything binds 127.0.0.1. Children are started with a parent-death signal and
stopped in `finally`, so neither an error, Ctrl-C, SIGTERM nor a time limit leaves
servers behind. The configs written here give one alias per mode, both calling the
fake "judge" model, with the cache off so every request makes real LiteLLM calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "BENCH_UPSTREAM_KEY"
FAKE_KEY = "sk-bench-fake-upstream-0000000000"
ALIASES = {"listwise": "judge-listwise", "pointwise": "judge-pointwise"}
# What the benchmarks' two kinds run in the gateway: "listwise" is RankGPT's sliding window with one call
# per window and rank scores, the calls their baselines (bench/minimal.py, the bare child) make.
STRATEGIES = {"listwise": "sliding", "pointwise": "pointwise"}
# What each alias runs: the listwise one is the sliding window without logprobs (the same calls,
# one per window, as before calibrated scores and single-token ranking existed).
_ALIAS_MODE = {"listwise": ("sliding", "false"), "pointwise": ("pointwise", "true")}
FAKE_UPSTREAM = "tests.support.fake_upstream"  # the tests' fake OpenAI-compatible server, run as a module
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, KEY_ENV: FAKE_KEY, **extra}
    # A proxy in the environment must not capture loopback traffic.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def write_config(path: Path, upstream_port: int, *, cache: bool = False, extra: str = "") -> Path:
    """One alias per mode, all pointing at the fake "judge" model; `extra` is appended TOML (whole tables)."""
    target = Target(f"http://127.0.0.1:{upstream_port}/v1", "judge")
    return write_gateway_config(path, {ALIASES[kind]: choice for kind, choice in baseline_aliases(target).items()},
                                cache=cache, extra=extra)


def baseline_aliases(target: Target) -> dict[str, tuple[Target, str]]:
    """kind ("listwise", "pointwise") -> (target, strategy) as `STRATEGIES` says: the listwise one
    without logprobs, so it neither grades nor ranks by single tokens."""
    return {kind: (replace(target, logprobs=False) if kind == "listwise" else target, strategy)
            for kind, strategy in STRATEGIES.items()}


@dataclass(frozen=True)
class Target:
    """An OpenAI-compatible upstream as the gateway is told of it."""

    api_base: str
    model: str  # the name the upstream serves, without LiteLLM's provider prefix
    key_env: str = KEY_ENV
    logprobs: bool = True
    context_window: int = 128_000


def write_gateway_config(path: Path, aliases: dict[str, tuple[Target, str]], *, cache: bool = False,
                         extra: str = "", request_timeout: float | None = None,
                         reliability: dict[str, Any] | None = None,
                         model_settings: dict[str, dict[str, Any]] | None = None) -> Path:
    """A config with one alias per (target, mode); the first alias is the default. `model_settings`
    adds keys to an alias's table (prices, hedging, ...: what a benchmark copies from a shipped model)."""
    parts = [f'default_model = "{next(iter(aliases))}"', f"[cache]\nenabled = {str(cache).lower()}"]
    table = dict(reliability or {})
    if request_timeout is not None:
        table.update(request_timeout_seconds=request_timeout, max_request_timeout_seconds=max(request_timeout, 120))
    if table:
        parts.append("[reliability]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items()))
    for alias, (target, mode) in aliases.items():
        parts.append(
            f'[models."{alias}"]\nlitellm_model = "openai/{target.model}"\n'
            f'api_base = "{target.api_base}"\napi_key_env = "{target.key_env}"\n'
            f'mode = "{mode}"\nlogprobs = {str(target.logprobs).lower()}\n'
            f"context_window = {target.context_window}\ntimeout_seconds = 120"
            + "".join(f"\n{key} = {json.dumps(value)}" for key, value in (model_settings or {}).get(alias, {}).items())
        )
    if extra:
        parts.append(extra.strip())
    path.write_text("\n\n".join(parts) + "\n")
    return path


def reliability_table(overrides: list[str], request_timeout: float) -> tuple[str, float]:
    """config.toml's [reliability], with overrides; returns the TOML table and the effective deadline."""
    values: dict[str, Any] = tomllib.loads((ROOT / "config.toml").read_text())["reliability"]
    values["request_timeout_seconds"] = request_timeout
    for item in overrides:
        key, _, raw = item.partition("=")
        values[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]  # TOML syntax for the value
    deadline = min(values["request_timeout_seconds"], values["max_request_timeout_seconds"])
    return "[reliability]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items()), deadline


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the benchmark is SIGKILLed,
    # the kernel still terminates its servers.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`python <args>` from the repo root, in its own session so Ctrl-C reaches only us."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env or child_env(), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent,
        )


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early (code {self.process.returncode}):\n"
                                       f"{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(self.url + path).status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:g}s:\n{self.log_tail()}")

    def log_size(self) -> int:
        """An offset into the log, for `log_between` later."""
        return self.log.stat().st_size

    def log_between(self, start: int, end: int | None = None) -> str:
        """What the server logged between two `log_size` offsets (to the end without `end`)."""
        with self.log.open("rb") as f:
            f.seek(start)
            data = f.read() if end is None else f.read(max(0, end - start))
        return data.decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_fake_upstream(workdir: Path) -> Server:
    port, log = free_port(), workdir / "fake_upstream.log"
    return Server("fake upstream", spawn(["-m", FAKE_UPSTREAM, "--port", str(port)], log), port, log)


def start_module(name: str, module: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Server:
    """`python -m module --port P args...` on a free port; its output goes to <workdir>/<name>.log."""
    port = free_port()
    log = workdir / f"{name}.log"
    return Server(name, spawn(["-m", module, "--port", str(port), *args], log, env), port, log)


def start_simulator(workdir: Path, **knobs: object) -> Server:
    """The simulated hosted model (simulator/) in its own process; `knobs` are its defaults (--noise 0.2, ...)."""
    flags = [arg for name, value in knobs.items() for arg in (f"--{name}", str(value))]
    return start_module("simulator", "simulator", flags, workdir)


def gateway_args(config: Path, port: int, log_level: str = "info") -> list[str]:
    """The arguments to `python` that serve the gateway on loopback."""
    return ["-m", "gateway", "serve", "--config", str(config), "--port", str(port), "--host", "127.0.0.1",
            "--log-level", log_level]


def start_gateway(config: Path, workdir: Path, log_level: str = "info") -> Server:
    port = free_port()
    log = workdir / "gateway.log"
    return Server("gateway", spawn(gateway_args(config, port, log_level), log), port, log)


@dataclass
class Stack:
    upstream: Server
    gateway: Server
    config: Path
    workdir: Path


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so `finally` blocks stop the children."""
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A scratch directory for a benchmark's servers, removed at the end; SIGTERM unwinds through it."""
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="rerank-bench-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def running_stack(log_level: str = "info", keep_logs: bool = False, config_extra: str = "") -> Iterator[Stack]:
    """Fake upstream + gateway (cache disabled), both healthy; stopped on exit whatever happens."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_as_exit())
        workdir = Path(tempfile.mkdtemp(prefix="rerank-bench-"))
        if not keep_logs:
            stack.callback(_remove_dir, workdir)
        upstream = start_fake_upstream(workdir)
        stack.callback(upstream.stop)
        upstream.wait_ready("/stats")
        config = write_config(workdir / "config.toml", upstream.port, cache=False, extra=config_extra)
        gateway = start_gateway(config, workdir, log_level)
        stack.callback(gateway.stop)
        gateway.wait_ready("/health")
        yield Stack(upstream, gateway, config, workdir)


def _remove_dir(path: Path) -> None:
    for child in path.iterdir():
        child.unlink(missing_ok=True)
    path.rmdir()


def run_child(args: list[str], log: Path, timeout: float, name: str) -> str:
    """Run `python <args>` to completion and return its output; killed, and an error, past `timeout`."""
    child = spawn(args, log)
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{name} did not finish in {timeout:g}s") from None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    output = log.read_text(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"{name} failed ({child.returncode}):\n{output[-3000:]}")
    return output


@contextlib.contextmanager
def time_limit(seconds: float, message: str) -> Iterator[None]:
    """Exit with `message` after `seconds`, wherever the main thread is (an event loop included);
    the SystemExit unwinds through `running_stack`, which stops the servers."""
    def expired(signum: int, frame: object) -> None:
        raise SystemExit(message)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(max(1, int(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_main(main: Callable[[], int | None]) -> NoReturn:
    """Exit with `main()`'s status; Ctrl-C exits 130 (the servers were already stopped on the way out)."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
