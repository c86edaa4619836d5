"""Who may call and how often: API keys and per-key rates, read from the request's headers."""

from __future__ import annotations

from starlette.requests import Request

from gateway.config import AuthSettings
from gateway.errors import Forbidden, RateLimited, Unauthorized
from gateway.ops.auth import bearer_token, identify
from gateway.ops.metrics import Metrics
from gateway.ops.ratelimit import KeyLimits, RateLimiter


def authenticate(request: Request, auth: AuthSettings, limiter: RateLimiter, metrics: Metrics) -> KeyLimits | None:
    """The caller's limits when auth is on (after taking one request from them); None when off."""
    if not auth.enabled:
        return None
    key = identify(bearer_token(request.headers.get("authorization")), auth.keys)
    if key is None:
        raise Unauthorized("missing or invalid API key: send Authorization: Bearer <key>")
    request.scope["state"]["log"]["key"] = key.name
    limits = limiter.limits(key.name, key.requests_per_minute, key.tokens_per_minute)
    decision = limits.admit()
    if not decision.allowed:
        metrics.rate_limited.labels(key.name, decision.limit or "").inc()
        raise RateLimited(f"rate limit exceeded for key {key.name!r}: {decision.limit} per minute",
                          retry_after=decision.retry_after, extra_headers=decision.headers)
    return limits


def authenticate_admin(request: Request, auth: AuthSettings) -> str:
    """The admin key's name; admin endpoints need one even when auth is off."""
    if not auth.admin_keys:
        raise Forbidden("admin endpoints are disabled: no [[auth.admin_keys]] are configured")
    key = identify(bearer_token(request.headers.get("authorization")), auth.admin_keys)
    if key is None:
        raise Unauthorized("missing or invalid admin key: send Authorization: Bearer <admin key>")
    request.scope["state"]["log"]["key"] = key.name
    return key.name
