"""Who may call and how often: API keys and per-key rates, read from the request's headers."""

from __future__ import annotations

from starlette.requests import Request

from gateway.config import AuthSettings
from gateway.errors import Forbidden, Unauthorized
from gateway.ops.auth import bearer_token, identify
from gateway.ops.ratelimit import KeyMeter, RateLimiter, SharedBuckets


async def authenticate(request: Request, auth: AuthSettings, limiter: RateLimiter,
                       shared: SharedBuckets | None = None, local_share: float = 1.0) -> KeyMeter | None:
    """The caller's meter when auth is on (after taking one request from its limits); None when off.

    With `shared`, the key's limits are counted in Redis, across replicas."""
    if not auth.enabled:
        return None
    key = identify(bearer_token(request.headers.get("authorization")), auth.keys)
    if key is None:
        raise Unauthorized("missing or invalid API key: send Authorization: Bearer <key>")
    request.scope["state"]["log"]["key"] = key.name
    meter = limiter.meter(key.name, key.requests_per_minute, key.tokens_per_minute, shared, local_share)
    await meter.admit()
    return meter


def authenticate_admin(request: Request, auth: AuthSettings) -> str:
    """The admin key's name; admin endpoints need one even when auth is off."""
    if not auth.admin_keys:
        raise Forbidden("admin endpoints are disabled: no [[auth.admin_keys]] are configured")
    key = identify(bearer_token(request.headers.get("authorization")), auth.admin_keys)
    if key is None:
        raise Unauthorized("missing or invalid admin key: send Authorization: Bearer <admin key>")
    request.scope["state"]["log"]["key"] = key.name
    return key.name
