"""Shared fixtures: a fake OpenAI-compatible upstream, and the gateway in a real uvicorn process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from tests.support.fake_upstream import FakeUpstream, Judge, ServerThread
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis fails an example that takes over 200 ms by default: on a shared 2-core CI machine that is a timed
# assertion, which this suite does not make. Each test's own @settings inherits this.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

FAKE_KEY = "sk-fake-upstream-key-0123456789"

# The plain sliding window without logprobs: one call per window, rank scores. Most tests of
# other behaviour (caching, errors, reliability) use it, so each request is one predictable call.
SLIDING = "logprobs = false"

# (alias, fake model name, mode, extra TOML lines)
ALIASES = [
    ("judge", "judge", "sliding", SLIDING),
    ("judge-pointwise", "judge", "pointwise", ""),
    ("judge-nologprobs", "judge", "pointwise", "logprobs = false"),
    ("judge-nousage", "judge-nousage", "sliding", SLIDING),
    ("judge-listwise", "judge", "listwise", ""),  # tdpart-first with calibrated scores
    ("judge-batched", "judge", "batched", ""),
    ("reverse", "reverse", "sliding", SLIDING),
    ("garbage", "garbage", "sliding", SLIDING),
    ("garbage-pointwise", "garbage", "pointwise", ""),
    ("chatty", "chatty", "sliding", SLIDING),
    ("fail500", "fail500", "sliding", SLIDING),
    ("fail401", "fail401", "sliding", SLIDING),
    ("partial", "partial", "pointwise", ""),
    ("slow", "slow", "sliding", "timeout_seconds = 0.5\n" + SLIDING),
    ("sluggish", "sluggish", "pointwise", ""),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The shared gateway makes one attempt per call and never opens a circuit, so
# tests of other behaviour see each upstream failure exactly once;
# tests/test_reliability.py runs its own gateway with the retry loop on.
NO_RETRIES = "[reliability]\nmax_attempts = 1\nbreaker_failure_threshold = 100000"


def write_config(path: Path, upstream_port: int, extra: str = NO_RETRIES,
                 aliases: list[tuple[str, str, str, str]] = ALIASES, server: str = "", cache: str = "") -> Path:
    """A config whose aliases call the fake upstream (unless their extra lines set api_base).

    `extra` holds whole tables; `server` and `cache` hold lines for the [server] and [cache] tables."""
    lines = [
        'default_model = "judge"',
        f"[server]\n{'' if 'max_body_bytes' in server else 'max_body_bytes = 200000'}\n{server}",
        f"[cache]\nenabled = true\n{cache}",
        extra,
    ]
    for alias, fake_model, mode, more in aliases:
        api_base = "" if "api_base" in more else f'api_base = "http://127.0.0.1:{upstream_port}/v1"\n'
        lines.append(
            f'[models."{alias}"]\nlitellm_model = "openai/{fake_model}"\n'
            f'{api_base}api_key_env = "FAKE_UPSTREAM_KEY"\n'
            f'mode = "{mode}"\ninput_cost_per_million = 10.0\n'
            f"output_cost_per_million = 30.0\ncontext_window = 16000\n"
            f"{more if 'logprobs' in more else more + chr(10) + 'logprobs = true'}"
        )
    path.write_text("\n\n".join(lines))
    return path


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream(Judge())
    with ServerThread(fake.app, free_port()) as server:
        fake.port = server.port  # type: ignore[attr-defined]
        yield fake


class GatewayProcess:
    """`python -m gateway serve` on a free port; `config=None` passes no --config (serve picks), from `cwd`."""

    def __init__(self, config: Path | None, log: Path, env: dict[str, str] | None = None,
                 cwd: Path = ROOT, args: tuple[str, ...] = (), start_seconds: float = 120) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.config = config
        env = {**os.environ, "FAKE_UPSTREAM_KEY": FAKE_KEY, "NO_PROXY": "127.0.0.1,localhost", **(env or {})}
        env.setdefault("PYTHONPATH", str(ROOT))
        config_args = ["--config", str(config)] if config is not None else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", *config_args, "--port", str(self.port), *args],
            cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        self._wait_healthy(start_seconds)

    def _wait_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds  # importing LiteLLM on a busy 2-core machine can take a while
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.process.kill()  # not left running for the rest of the session
        raise RuntimeError(f"gateway did not become healthy:\n{self.log.read_text()}")

    def stop(self) -> int | None:
        self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None


@pytest.fixture
def start_gateway(upstream: FakeUpstream, tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start a gateway of its own, with extra TOML (and aliases) in its config; stopped after the test."""
    started: list[GatewayProcess] = []

    def start(extra: str = NO_RETRIES, aliases: list[tuple[str, str, str, str]] = ALIASES,
              env: dict[str, str] | None = None, server: str = "", cache: str = "") -> GatewayProcess:
        n = len(started)
        config = write_config(tmp_path / f"config{n}.toml", upstream.port, extra, aliases,  # type: ignore[attr-defined]
                              server, cache)
        process = GatewayProcess(config, tmp_path / f"gateway{n}.log", env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()


@pytest.fixture(scope="session")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gateway")
    config = write_config(tmp / "config.toml", upstream.port)  # type: ignore[attr-defined]
    process = GatewayProcess(config, tmp / "gateway.log")
    yield process
    process.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        yield http


@pytest.fixture
def upstream_calls(upstream: FakeUpstream):  # noqa: ANN201
    """Reads how many chat calls the fake upstream received since the test started."""
    start = sum(upstream.calls.values())
    return lambda: sum(upstream.calls.values()) - start


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server of this test's own on a free loopback port; killed after the test."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
