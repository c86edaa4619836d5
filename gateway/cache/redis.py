"""The shared tier of the result cache, in Redis: values every replica reads, and single flight across replicas.

Keys are versioned and namespaced, `<prefix>:v1:<sha256>`, and always carry a
TTL. Values are bytes from a `Codec` (the service's compact JSON, never
pickle) and are validated on read: a corrupt or foreign value is a miss, and
is overwritten by the recomputed one.

A cold key is computed by one replica: the first takes a short lock
(`SET NX PX`, kept alive by a heartbeat while it computes); the others poll
for the value, with a bounded interval, and compute themselves when the lock
disappears without a value (its holder died or failed), when their deadline
nears, or when Redis stops answering. Whatever Redis does, `fill` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Generic, Protocol, TypeVar

from gateway.cache.base import Compute, Deadline
from gateway.cache.redis_store import RedisStore, StoreUnavailable

logger = logging.getLogger("gateway.redis")
T = TypeVar("T")

LOCK_TTL_MS = 2000  # a dead holder is noticed within this; a live one renews it
HEARTBEAT_SECONDS = 0.5
POLL_FIRST, POLL_MAX = 0.01, 0.1  # seconds between polls: doubling from the first up to the max
# A waiter stops waiting for another replica and computes itself when only this share
# of its time is left, so it can still answer (a partial answer, at worst) in time.
SELF_COMPUTE_SHARE = 0.25
MAX_LOCK_TRIES = 3

_PUBLISH = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
# The value if there is one, else the lock if it is free: one atomic step, so a replica that missed just
# before another published cannot take the freed lock and compute the key again.
_CLAIM = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {0, ''}
"""
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


class Codec(Protocol[T]):
    def encode(self, value: T) -> bytes: ...

    def decode(self, raw: bytes) -> T:
        """The value, or ValueError for anything that is not one this codec wrote."""
        ...


class RedisTier(Generic[T]):
    def __init__(self, store: RedisStore, codec: Codec[T], *, prefix: str, ttl_seconds: float) -> None:
        self.store = store
        self.codec = codec
        self.prefix = f"{prefix}:v1:"
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self._publish = store.client.register_script(_PUBLISH)
        self._unlock = store.client.register_script(_UNLOCK)
        self._renew = store.client.register_script(_RENEW)
        self._claim = store.client.register_script(_CLAIM)
        self._background: set[asyncio.Task[None]] = set()

    def value_key(self, key: str) -> str:
        return self.prefix + key

    def lock_key(self, key: str) -> str:
        return f"{self.prefix}lock:{key}"

    async def get(self, key: str) -> T | None:
        try:
            raw = await self.store.run("get", lambda r: r.get(self.value_key(key)))
        except StoreUnavailable:
            return None
        return self._decode(key, raw)

    def _decode(self, key: str, raw: bytes | None) -> T | None:
        if raw is None:
            return None
        try:
            return self.codec.decode(raw)
        except (ValueError, TypeError, KeyError, RecursionError):
            logger.warning("ignoring an invalid cached value under %s (%d bytes)", self.value_key(key)[:80],
                           len(raw))
            if self.store.observe:
                self.store.observe("decode", 0.0, "invalid_value")
            return None

    async def put(self, key: str, value: T) -> None:
        data = self.codec.encode(value)
        with contextlib.suppress(StoreUnavailable):
            await self.store.run("set", lambda r: r.set(self.value_key(key), data, px=self.ttl_ms))

    async def fill(self, key: str, compute: Compute[T], deadline: Deadline, write: bool) -> tuple[T, bool, bool]:
        token = secrets.token_hex(16)
        keys, args = [self.value_key(key), self.lock_key(key)], [token, LOCK_TTL_MS]
        for _ in range(MAX_LOCK_TRIES):
            try:
                outcome, raw = await self.store.run("claim", lambda r: self._claim(keys=keys, args=args, client=r))
            except StoreUnavailable:
                break
            if outcome == 1:
                found = self._decode(key, raw)
                if found is not None:
                    return found, True, True
                # A bad value: overwrite it with a computation of our own (unlocked, like a miss without Redis).
                break
            if outcome == 2:
                return await self._compute_locked(key, compute, deadline, write, token)
            found, lock_gone = await self._wait(key, deadline)
            if found is not None:
                return found, True, True
            if not lock_gone:
                break  # out of patience, or Redis stopped answering
        value, cacheable = await compute(deadline)
        if cacheable and write:
            await self.put(key, value)
        return value, cacheable, False

    async def _compute_locked(self, key: str, compute: Compute[T], deadline: Deadline, write: bool,
                              token: str) -> tuple[T, bool, bool]:
        heartbeat = asyncio.create_task(self._keep_lock(key, token))
        try:
            value, cacheable = await compute(deadline)
        except BaseException:
            self._spawn(self._release(key, token))  # even when cancelled: waiters should not wait for the TTL
            raise
        finally:
            heartbeat.cancel()
        if cacheable and write:
            data = self.codec.encode(value)
            keys, args = [self.value_key(key), self.lock_key(key)], [data, self.ttl_ms, token]
            try:
                await self.store.run("publish", lambda r: self._publish(keys=keys, args=args, client=r))
            except StoreUnavailable:
                self._spawn(self._release(key, token))
        else:
            await self._release(key, token)
        return value, cacheable, False

    async def _wait(self, key: str, deadline: Deadline) -> tuple[T | None, bool]:
        """Poll for another replica's value: (value, False), or (None, lock_gone)."""
        started, interval = time.monotonic(), POLL_FIRST
        value_key, lock_key = self.value_key(key), self.lock_key(key)

        async def poll(r: object) -> list[object]:
            async with r.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
                return await pipe.get(value_key).pttl(lock_key).execute()  # type: ignore[no-any-return]

        while True:
            give_up = deadline.at - SELF_COMPUTE_SHARE * (deadline.at - started)
            now = time.monotonic()
            if now + interval >= give_up:
                return None, False
            await asyncio.sleep(interval)
            interval = min(POLL_MAX, interval * 2)
            try:
                raw, lock_ttl = await self.store.run("poll", poll)
            except StoreUnavailable:
                return None, False
            if raw is not None:
                found = self._decode(key, raw)  # type: ignore[arg-type]
                return found, found is None
            if lock_ttl == -2:  # the holder finished without a value, or died
                return None, True

    async def _keep_lock(self, key: str, token: str) -> None:
        args = [token, LOCK_TTL_MS]
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(StoreUnavailable):
                await self.store.run("renew", lambda r: self._renew(keys=[self.lock_key(key)], args=args, client=r))

    async def _release(self, key: str, token: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self.store.run("unlock", lambda r: self._unlock(keys=[self.lock_key(key)], args=[token], client=r))

    def _spawn(self, work: object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)
