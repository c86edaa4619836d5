"""Request context: an id on every response, request metrics, one JSON log line per request.

Also the two answers no handler can give: a path written with a trailing or doubled slash is
served as its canonical path (never redirected: a `Location` would be built from the client's
`Host` header), and a request cut by the end of the shutdown grace period answers a JSON 503.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ShuttingDown
from gateway.http.jsonio import encode
from gateway.ops.metrics import Metrics

access_log = logging.getLogger("gateway.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Probes would drown the log; they still count in the metrics.
_QUIET = {"/health", "/ready", "/metrics"}
_SLASHES = re.compile(r"/{2,}")


def canonical_path(path: str) -> str:
    """`path` without doubled or trailing slashes ("/v1//rerank/" -> "/v1/rerank")."""
    return _SLASHES.sub("/", path).rstrip("/") or "/"


def route_label(path: str, known: set[str]) -> str:
    """A bounded label: the app's own paths, everything else "other"."""
    return path if path in known else "other"


class RequestContextMiddleware:
    """Pure ASGI: handlers add fields to `scope["state"]["log"]`; this writes them out."""

    def __init__(self, app: ASGIApp, metrics: Metrics, known_paths: set[str], config_version: Any,
                 log_requests: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.known_paths = known_paths
        self.config_version = config_version  # callables: read per request, so reloads show
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["path"] = canonical_path(scope["path"])
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        log: dict[str, Any] = {}
        started, status, responded = time.monotonic(), 500, False
        # Deadlines count from here, not from when a handler gets to run.
        scope.setdefault("state", {}).update(request_id=request_id, log=log, arrived=started)

        written = False

        def finish() -> None:
            nonlocal written
            if written:
                return
            written = True
            latency = time.monotonic() - started
            route = route_label(scope["path"], self.known_paths)
            self.metrics.labelled(self.metrics.requests, route, str(status), log.get("model", "-")).inc()
            self.metrics.labelled(self.metrics.request_latency, route).observe(latency)
            if self.log_requests() and scope["path"] not in _QUIET:
                access_log.info(encode({
                    "request_id": request_id, "method": scope["method"], "route": route, "status": status,
                    "latency_ms": round(latency * 1000, 1), **log,
                }).decode())

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                headers["x-config-version"] = str(log.get("config_version", self.config_version()))
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Logged before the last byte leaves, so a client that got its answer finds the line.
                finish()
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            # Only the server cancels a request's own task: its shutdown grace period is over.
            if responded:
                raise
            await shutdown_answer(send_with_headers)
        finally:
            finish()


async def shutdown_answer(send: Send) -> None:
    """A JSON 503 for a request the shutdown cut short, closing the connection."""
    error = ShuttingDown("the server is shutting down; this request was cut at the end of its grace period; "
                         "retry it on another replica", retry_after=1)
    body = encode(error.to_body())
    await send({"type": "http.response.start", "status": error.status_code, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body})
