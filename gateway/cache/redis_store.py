"""The gateway's one connection to Redis: tight timeouts, no hidden retries, a circuit breaker.

Redis is optional infrastructure. Every command runs under the store's timeout
(tens of milliseconds, connect included) and fails at once while the breaker is
open, so a frozen or dead Redis costs a request at most a few timeouts before
the breaker opens, then nothing: callers treat `StoreUnavailable` as a cache
miss or fall back to their local limiter. The breaker probes again after its
cooldown, so recovery needs no one.

The result cache (`gateway.cache.redis`) and the per-key limits
(`gateway.ops.ratelimit`) share one store per config; a reload that changes
the Redis settings retires the old store, which closes its pool once the
requests holding it have finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from gateway.breaker import CircuitBreaker
from gateway.config import REDIS_URL_ENV, CacheSettings, ConfigError

logger = logging.getLogger("gateway.redis")
R = TypeVar("R")
MAX_BREAKER_COOLDOWN = 30.0

# (operation, seconds, failure kind or None) for each command; the breaker's state when it may have changed.
Observer = Callable[[str, float, "str | None"], None]
StateObserver = Callable[[str], None]


class StoreUnavailable(Exception):
    """Redis did not answer usefully (down, slow, breaker open, retired): do without it."""


def redacted(url: str) -> str:
    """The URL without its credentials, for logs and status pages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisStore:
    def __init__(self, url: str, *, timeout: float, max_connections: int, breaker_failures: int,
                 breaker_cooldown: float, observe: Observer | None = None,
                 on_state: StateObserver | None = None) -> None:
        self.url = url
        self.params: tuple[object, ...] = (url, timeout, max_connections, breaker_failures, breaker_cooldown)
        self.timeout = timeout
        self.client: Redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
            max_connections=max_connections, health_check_interval=0,
        )
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown, MAX_BREAKER_COOLDOWN)
        self.observe = observe
        self.on_state = on_state
        self.failing = False  # the last command failed
        self.last_error: str | None = None
        self._state = "closed"
        self._holds = 0
        self._ops = 0
        self._retired = False
        self._closed = False
        self._closing: asyncio.Task[None] | None = None

    def status(self) -> dict[str, object]:
        """For /ready: "ok", or "degraded" while Redis is failing (requests are served without it)."""
        state = self.breaker.state
        degraded = self.failing or state != "closed"
        body: dict[str, object] = {"backend": "redis", "url": redacted(self.url),
                                   "state": "degraded" if degraded else "ok", "breaker": state}
        if degraded and self.last_error:
            body["error"] = self.last_error
        return body

    async def run(self, op: str, call: Callable[[Redis], Awaitable[R]]) -> R:
        """`call(client)` under the timeout and the breaker; any Redis trouble is `StoreUnavailable`."""
        if self._closed or not self.breaker.allow():
            raise StoreUnavailable(f"redis {op}: skipped ({'closed' if self._closed else 'circuit open'})")
        self._ops += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                result = await call(self.client)
        except ResponseError as exc:
            # Redis is up and said no (out of memory, a wrong type): not a reason to stop asking.
            self._failed(op, started, "response", exc, counts=False)
            raise StoreUnavailable(f"redis {op}: {exc}") from None
        except (RedisError, OSError, TimeoutError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__ else "connection"
            self._failed(op, started, kind, exc, counts=True)
            raise StoreUnavailable(f"redis {op}: {kind}") from None
        except BaseException:
            self.breaker.release_probe()  # cancelled: no verdict on Redis
            raise
        else:
            self.breaker.record_success()
            self.failing = False
            if self.observe:
                self.observe(op, time.monotonic() - started, None)
            return result
        finally:
            self._ops -= 1
            self._report_state()
            self._close_if_idle()

    async def connect(self) -> bool:
        """Open a first connection before traffic arrives (start-up), so no request pays for it."""
        try:
            return bool(await self.run("ping", lambda r: r.ping()))
        except StoreUnavailable:
            return False

    def _failed(self, op: str, started: float, kind: str, exc: BaseException, counts: bool) -> None:
        if counts:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        if not self.failing:
            logger.warning("redis %s failed (%s: %s); serving without it until it answers", op, kind,
                           type(exc).__name__)
        self.failing = True
        self.last_error = f"{op}: {kind}"
        if self.observe:
            self.observe(op, time.monotonic() - started, kind)

    def _report_state(self) -> None:
        state = self.breaker.state
        if state != self._state:
            if state == "closed":
                logger.info("redis answers again")
            self._state = state
            if self.on_state:
                self.on_state(state)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the pool open for a request, even if a reload retires this store meanwhile."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            self._close_if_idle()

    def retire(self) -> None:
        """A newer config uses another store: close this one once nothing holds it."""
        self._retired = True
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if not self._retired or self._closed or self._holds or self._ops:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError):  # no running loop: the process is exiting anyway
            self._closing = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()

    async def aclose(self) -> None:
        """Close now (process shutdown)."""
        self._retired = self._closed = True
        await self._close()

    @property
    def closed(self) -> bool:
        return self._closed


def store_for(cache: CacheSettings, previous: RedisStore | None, observe: Observer | None = None,
              on_state: StateObserver | None = None) -> RedisStore | None:
    """The store a config's [cache] asks for: `previous` while its settings are unchanged, None without Redis."""
    url = cache.resolved_redis_url()
    if url is None:
        return None
    if not url:
        raise ConfigError(f'cache.backend = "redis" needs cache.redis_url or {REDIS_URL_ENV}')
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("the Redis URL must start with redis://, rediss:// or unix://")
    timeout = cache.redis_timeout_ms / 1000
    params = (url, timeout, cache.redis_max_connections, cache.redis_breaker_failures,
              cache.redis_breaker_cooldown_seconds)
    if previous is not None and previous.params == params and not previous.closed:
        return previous
    try:
        return RedisStore(url, timeout=timeout, max_connections=cache.redis_max_connections,
                          breaker_failures=cache.redis_breaker_failures,
                          breaker_cooldown=cache.redis_breaker_cooldown_seconds, observe=observe, on_state=on_state)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {redacted(url)}: {exc}") from None
