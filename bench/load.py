"""Closed-loop HTTP load: `concurrency` keep-alive clients, each sending its next request as soon as one is answered.

A closed loop offers as much as the gateway can take and no more, so a slow
gateway shows up as latency and fewer requests, never as a client-side backlog.
Every request becomes a `Sample`; what a sample means is the benchmark's to decide.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

# Short words the request bodies are drawn from: rerank requests with a little text each.
WORDS = ("flea cycle insect egg larva pupa adult host blood cat dog month week year warm humid "
         "paris france capital river bridge museum train ticket winter summer coffee bean roast").split()


@dataclass(frozen=True)
class LoadResult:
    """What a load run measured (wrk's or `fixed_count`'s): counts, rate, latency percentiles."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    bytes: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


async def fixed_count(url: str, bodies: Callable[[int], bytes], *, connections: int, requests: int,
                      timeout: float) -> LoadResult:
    """`requests` POSTs over `connections` keep-alive clients, closed loop; `bodies(n)` is the n-th body.

    For slow requests (misses), where a fixed count says more than a fixed duration and
    the client's own CPU is small beside the server's.
    """
    latencies: list[float] = []
    failures = {"status": 0, "transport": 0, "bytes": 0}
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(trust_env=False, timeout=timeout, limits=limits) as http:
        async def client() -> None:
            for n in counter:
                start = time.perf_counter()
                try:
                    response = await http.post(url, content=bodies(n), headers={"content-type": "application/json"})
                except httpx.HTTPError:
                    failures["transport"] += 1
                    continue
                latencies.append(time.perf_counter() - start)
                failures["bytes"] += len(response.content)
                failures["status"] += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        seconds = time.perf_counter() - started
    ms = sorted(1000 * latency for latency in latencies) or [math.nan]

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, max(0, math.ceil(q * len(ms)) - 1))]

    return LoadResult(len(latencies), seconds, failures["status"], failures["transport"], pct(0.5), pct(0.9),
                      pct(0.99), ms[-1], sum(ms) / len(ms), failures["bytes"])


@dataclass(frozen=True)
class Request:
    body: dict[str, Any]
    kind: str = ""  # what the benchmark tells requests apart by, e.g. the mode


@dataclass
class Sample:
    phase: str  # the phase the request was *sent* in
    kind: str
    start: float  # monotonic
    end: float
    status: int | None  # None: no HTTP answer (transport error, client timeout)
    error: str | None = None  # no answer: the exception; non-200: the body; 200: what the check found wrong
    code: str = ""  # the error body's code: tells a breaker's 503 from a cut call's 504
    retry_after: bool = False
    version: int | None = None  # x-config-version: the config that answered

    @property
    def latency(self) -> float:
        return self.end - self.start

    @property
    def is_2xx(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def good(self) -> bool:
        """A 2xx whose answer passed the benchmark's check."""
        return self.is_2xx and self.error is None


class ClosedLoop:
    """The load, as an async context manager: clients start on entry and finish their last request on exit.

    `request` builds each body from the client's own seeded RNG, so every run sends the same mix;
    `check` says why a 200 is not a good answer (or None when it is).
    """

    def __init__(
        self, url: str, concurrency: int, timeout: float, request: Callable[[random.Random], Request],
        check: Callable[[httpx.Response], str | None] | None = None, path: str = "/v1/rerank",
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=url, trust_env=False, timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.concurrency, self.request, self.check, self.path = concurrency, request, check, path
        self.phase = "warmup"  # set by the benchmark; stamped on every request sent from then on
        self.samples: list[Sample] = []
        self._stopping = asyncio.Event()
        self._clients: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ClosedLoop:
        self._clients = [asyncio.create_task(self._client(n)) for n in range(self.concurrency)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        outcomes = await asyncio.gather(*self._clients, return_exceptions=True)
        await self.http.aclose()
        # A client that crashed sent no more load: the numbers would be wrong, so say so.
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome

    async def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stopping.is_set():
            request = self.request(rng)
            phase, start = self.phase, time.monotonic()
            try:
                response = await self.http.post(self.path, json=request.body)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                self.samples.append(Sample(phase, request.kind, start, time.monotonic(), None, error))
                await asyncio.sleep(0.05)  # do not spin if the gateway is gone
                continue
            self.samples.append(self._sample(phase, request.kind, start, time.monotonic(), response))

    def _sample(self, phase: str, kind: str, start: float, end: float, response: httpx.Response) -> Sample:
        status, error, code = response.status_code, None, ""
        if status == 200:
            error = self.check(response) if self.check else None
        else:
            error, code = response.text[:300], error_code(response)
        version = int(response.headers.get("x-config-version", "0")) or None
        return Sample(phase, kind, start, end, status, error, code, "retry-after" in response.headers, version)


def error_code(response: httpx.Response) -> str:
    """`error.code` of an error body; "?" when the body has none or is not JSON."""
    try:
        return str(response.json().get("error", {}).get("code", "?"))
    except (ValueError, AttributeError):
        return "?"
