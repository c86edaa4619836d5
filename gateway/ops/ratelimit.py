"""Per-key request and token rates: token buckets refilled continuously per minute, in process or in Redis.

Requests are taken one at admission. Tokens are reserved before any LLM call
(the strategy's estimate of what the request will use) and settled with the
real usage when the computation ends, however it ends (an answer, an error,
a deadline, a client gone), so concurrent requests cannot spend what the key
does not have. A cache hit uses no tokens and reserves none.

With a Redis store the buckets live in Redis, changed by one Lua script
(atomic, on Redis's clock), so a limit holds across replicas. While Redis is
unreachable each replica falls back to its own buckets, at
`cache.local_limit_share` of each limit; requests are never refused because
Redis is down.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.cache.redis_store import RedisStore, StoreUnavailable
from gateway.errors import RateLimited
from gateway.ops.metrics import Metrics

_TAKE = """
local capacity = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = capacity / 60000
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
level = math.min(capacity, level + math.max(0, now - at) * rate)
local allowed = 0
if ARGV[3] == '1' or level >= amount then
  level = math.min(capacity, level - amount)
  allowed = 1
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) / rate) + 1000)
return {allowed, tostring(level)}
"""


@dataclass
class Bucket:
    per_minute: float
    level: float = field(init=False)
    stamp: float = field(init=False)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.level = self.per_minute
        self.stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.per_minute, self.level + (now - self.stamp) * self.per_minute / 60)
        self.stamp = now

    def available(self) -> float:
        self._refill()
        return self.level

    def take(self, amount: float, force: bool = False) -> bool:
        """Debit `amount` if the bucket holds it (or anyway, with `force`: settling may overdraw it,
        and a negative amount refunds, up to full)."""
        self._refill()
        if not force and self.level < amount:
            return False
        self.level = min(self.per_minute, self.level - amount)
        return True


def wait_seconds(level: float, amount: float, per_minute: float) -> float:
    """Seconds until a bucket at `level` holds `amount`."""
    missing = amount - level
    return 0.0 if missing <= 0 else missing * 60 / per_minute


class KeyLimits:
    """The in-process buckets of one key; a limit of 0 means unlimited."""

    def __init__(self, requests_per_minute: float, tokens_per_minute: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.requests = Bucket(requests_per_minute, clock=clock) if requests_per_minute else None
        self.tokens = Bucket(tokens_per_minute, clock=clock) if tokens_per_minute else None
        self.clock = clock
        # The last level Redis reported per bucket, (level, at), for headers between calls.
        self.shared_levels: dict[str, tuple[float, float]] = {}


class SharedBuckets:
    """Token buckets in Redis, one hash per key and kind: `<prefix>:v1:rate:<kind>:<key name>`."""

    def __init__(self, store: RedisStore, prefix: str) -> None:
        self.store = store
        self.prefix = f"{prefix}:v1:rate:"
        self._script = store.client.register_script(_TAKE)

    async def take(self, name: str, kind: str, per_minute: float, amount: float, force: bool) -> tuple[bool, float]:
        """(taken, level after); StoreUnavailable when Redis cannot say."""
        keys, args = [f"{self.prefix}{kind}:{name}"], [per_minute, amount, "1" if force else "0"]
        allowed, level = await self.store.run("ratelimit", lambda r: self._script(keys=keys, args=args, client=r))
        return bool(allowed), float(level)


@dataclass
class Reservation:
    """Tokens held for one computation: claimed by the computation that spends them, or released."""

    amount: int
    shared: bool  # held in Redis (else in the local bucket)
    state: str = "held"  # held -> claimed | released

    def claim(self) -> Reservation | None:
        if self.state != "held":
            return None
        self.state = "claimed"
        return self


class KeyMeter:
    """One request's view of its key's limits: admission, token reservation and settlement, headers."""

    def __init__(self, name: str, limits: KeyLimits, shared: SharedBuckets | None, metrics: Metrics,
                 requests_per_minute: int, tokens_per_minute: int) -> None:
        self.name = name
        self.local = limits
        self.shared = shared
        self.metrics = metrics
        self._configured = {"requests": float(requests_per_minute), "tokens": float(tokens_per_minute)}
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def limits_tokens(self) -> bool:
        return self.local.tokens is not None

    async def _take(self, kind: str, bucket: Bucket, amount: float, force: bool = False) -> tuple[bool, float, bool]:
        """(taken, level, in Redis): Redis when it answers, else the local bucket."""
        if self.shared is not None:
            try:
                taken, level = await self.shared.take(self.name, kind, self._limit(kind), amount, force)
            except StoreUnavailable:
                pass
            else:
                self.local.shared_levels[kind] = (level, self.local.clock())
                return taken, level, True
        taken = bucket.take(amount, force)
        return taken, bucket.level, False

    def _limit(self, kind: str) -> float:
        """The key's configured limit (local buckets may hold only a share of it)."""
        return self._configured[kind]

    def _refuse(self, kind: str, level: float, amount: float, message: str) -> RateLimited:
        self.metrics.rate_limited.labels(self.name, kind).inc()
        retry = wait_seconds(level, amount, self._limit(kind))
        return RateLimited(message, retry_after=retry, extra_headers=self.headers())

    async def admit(self) -> None:
        """Take one request, or raise RateLimited."""
        bucket = self.local.requests
        if bucket is None:
            return
        taken, level, _ = await self._take("requests", bucket, 1)
        if not taken:
            raise self._refuse("requests", level, 1, f"rate limit exceeded for key {self.name!r}: requests per minute")

    async def reserve_tokens(self, amount: int) -> Reservation | None:
        """Hold `amount` tokens for a computation, or raise RateLimited when the balance cannot cover them."""
        bucket = self.local.tokens
        if bucket is None:
            return None
        limit = self._limit("tokens")
        if amount > limit:
            self.metrics.rate_limited.labels(self.name, "tokens").inc()
            raise RateLimited(
                f"request too large for key {self.name!r}: it needs about {amount} tokens, more than the key's "
                f"limit of {int(limit)} per minute; send fewer or shorter documents",
                retry_after=60, extra_headers=self.headers())
        taken, level, shared = await self._take("tokens", bucket, amount)
        if not taken:
            raise self._refuse("tokens", level, amount, f"rate limit exceeded for key {self.name!r}: tokens per "
                                                        f"minute (this request needs about {amount})")
        return Reservation(amount, shared)

    def settle(self, reservation: Reservation | None, used: int) -> None:
        """Charge what a computation used, less what it had reserved (which may refund)."""
        held = reservation.amount if reservation is not None else 0
        self._adjust(used - held, reservation.shared if reservation is not None else self.shared is not None)

    def release(self, reservation: Reservation | None) -> None:
        """Give back a reservation no computation claimed (a cache hit, a joined computation)."""
        if reservation is not None and reservation.state == "held":
            reservation.state = "released"
            self._adjust(-reservation.amount, reservation.shared)

    def _adjust(self, delta: float, shared: bool) -> None:
        bucket = self.local.tokens
        if bucket is None or not delta:
            return
        if shared and self.shared is not None:
            # In the background: settling must survive a cancelled request.
            task = asyncio.ensure_future(self._take("tokens", bucket, delta, force=True))
            self._pending.add(task)  # type: ignore[arg-type]
            task.add_done_callback(self._pending.discard)
        else:
            bucket.take(delta, force=True)

    def headers(self) -> dict[str, str]:
        headers = {}
        for kind, bucket in (("requests", self.local.requests), ("tokens", self.local.tokens)):
            if bucket is None:
                continue
            limit = self._limit(kind)
            seen = self.local.shared_levels.get(kind) if self.shared is not None else None
            if seen is not None:
                level, at = seen
                level = min(limit, level + (self.local.clock() - at) * limit / 60)
            else:
                level = bucket.available()
            headers[f"x-ratelimit-limit-{kind}"] = str(int(limit))
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(level)))
            headers[f"x-ratelimit-reset-{kind}"] = f"{max(0.0, (limit - level) * 60 / limit):.3f}s"
        return headers


class RateLimiter:
    """Local buckets per key, kept across config reloads while the key's limits stay the same."""

    def __init__(self, metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.metrics = metrics or Metrics()
        self._keys: dict[tuple[str, int, int, float], KeyLimits] = {}

    def meter(self, name: str, requests_per_minute: int, tokens_per_minute: int,
              shared: SharedBuckets | None = None, local_share: float = 1.0) -> KeyMeter:
        """A request's meter for key `name`; with `shared`, its local buckets hold `local_share` of each limit
        (what one replica allows on its own while Redis is unreachable)."""
        share = local_share if shared is not None else 1.0
        key = (name, requests_per_minute, tokens_per_minute, share)
        limits = self._keys.get(key)
        if limits is None:
            limits = self._keys[key] = KeyLimits(requests_per_minute * share, tokens_per_minute * share, self.clock)
        return KeyMeter(name, limits, shared, self.metrics, requests_per_minute, tokens_per_minute)
