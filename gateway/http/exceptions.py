"""Exception handlers: every error leaves as a JSON error object in OpenAI's shape."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, clip, error_body
from gateway.http.jsonio import JSONResponse

logger = logging.getLogger("gateway")


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if exc.status_code >= 500:
        gateway = getattr(request.app.state, "gateway", None)
        verbose = gateway is not None and gateway.holder.current.settings.server.log_upstream_messages
        logger.warning("%s %s -> %d %s: %s", request.method, clip(request.url.path), exc.status_code, exc.code,
                       exc.message if verbose else exc.log_message)
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers())


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = error_body(f"{request.method} {clip(request.url.path)}: {exc.detail}", "invalid_request_error", code)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, clip(request.url.path))
    body = error_body("internal error", "api_error", "internal_error")
    return JSONResponse(body, status_code=500)
