"""Every error the gateway answers with, and the HTTP status it carries.

    GatewayError
    ├── InvalidRequest         400  bad JSON, bad fields, too many documents
    ├── Unauthorized           401  missing or unknown API key (auth on)
    ├── Forbidden              403  a key that may not do this (admin endpoints)
    ├── RequestTimeout         408  the body did not arrive within server.body_read_timeout_seconds
    ├── PayloadTooLarge        413  body over server.max_body_bytes
    ├── RateLimited            429  the key's request or token rate is used up
    ├── Overloaded             503  too many requests in flight; shed, not queued
    ├── ShuttingDown           503  cut by the end of the shutdown grace period
    ├── ModelNotFound          404  a model name that no alias matches
    ├── ModelUnavailable       503  the alias is configured but cannot be used (missing key)
    ├── DeadlineExceeded       504  the request's own deadline passed
    └── UpstreamError          502  the LLM failed or answered nothing usable
        ├── UpstreamTimeout    504  the LLM did not answer in time
        │   └── CallCut        504  a call cut (or never made) because the request's deadline came
        └── UpstreamUnavailable 503 every upstream for the model is cooling down (circuit open)

Errors with a `retry_after` answer with a `Retry-After` header. A message
that quotes client input quotes it through `echo`, so an error is never much
larger than its explanation.

The body is OpenAI's error object, with `message` and `detail` repeated at the
top level because Cohere clients read `message` and Jina/Voyage clients read
`detail`.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any


class GatewayError(Exception):
    status_code = 500
    error_type = "api_error"
    code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.log_message = message  # what the server's log says of it (never text an upstream sent)
        self.param = param
        self.retry_after = retry_after
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, Any]:
        return error_body(public_message(self.message), self.error_type, self.code, self.param)

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


ECHO_CHARS = 100
MAX_MESSAGE_CHARS = 4000

# What a client never reads in an error: a traceback, a path on this server, text that is not text.
_TRACEBACK = re.compile(r"\s*Traceback \(most recent call last\).*", re.DOTALL)
_SOURCE_LINE = re.compile(r'File "[^"]*", line \d+(, in \S+)?')
_ROOTS = ("home", "root", "usr", "opt", "work", "tmp", "var", "etc", "srv", "app", "proc", "sys", "Users", "nix",
          "private", "mnt", "data", "lib", "lib64", "run", "snap", "workspace", "models")
_PATH = re.compile(rf"(?<![\w:/.\-])(?:/(?:{'|'.join(_ROOTS)})|~)(?:/[^\s'\"()<>,;]+)+")


def _server_prefixes() -> list[str]:
    here = Path(__file__).resolve().parents[1]
    prefixes = {sys.prefix, sys.base_prefix, str(here), str(Path.home())}
    return sorted((p for p in prefixes if len(p) > 1), key=len, reverse=True)


_PREFIXES = _server_prefixes()


def public_message(message: str) -> str:
    """`message` as a client may read it: no traceback, no server path, valid Unicode, bounded."""
    message = _TRACEBACK.sub("", message)
    message = _SOURCE_LINE.sub("<source>", message)
    for prefix in _PREFIXES:
        message = message.replace(prefix, "<path>")
    message = _PATH.sub("<path>", message).replace("<path><path>", "<path>")
    message = message.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become "?"
    return clip(message, MAX_MESSAGE_CHARS)


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` for an error message, cut to about `limit` characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr(value)` for an error message, cut to about `limit` characters."""
    return clip(repr(value), limit)


def error_body(message: str, error_type: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": error_type, "code": code, "param": param},
        "message": message,
        "detail": message,
    }


class InvalidRequest(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(GatewayError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="rerank-gateway"'}


class Forbidden(GatewayError):
    status_code = 403
    error_type = "permission_error"
    code = "forbidden"


class RateLimited(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, extra_headers: dict[str, str]) -> None:
        super().__init__(message, retry_after=retry_after)
        self.extra_headers = extra_headers

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, **super().headers()}


class Overloaded(GatewayError):
    status_code = 503
    error_type = "api_error"
    code = "overloaded"


class RequestTimeout(GatewayError):
    status_code = 408
    error_type = "invalid_request_error"
    code = "request_timeout"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}  # the rest of a late body is not worth reading


class ShuttingDown(GatewayError):
    status_code = 503
    error_type = "api_error"
    code = "shutting_down"


class PayloadTooLarge(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "payload_too_large"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class ModelNotFound(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class ModelUnavailable(GatewayError):
    status_code = 503
    error_type = "api_error"
    code = "model_unavailable"


class DeadlineExceeded(GatewayError):
    status_code = 504
    error_type = "api_error"
    code = "deadline_exceeded"


class UpstreamError(GatewayError):
    status_code = 502
    error_type = "api_error"
    code = "upstream_error"
    # Whether trying the same upstream again may help (429, 5xx, timeouts, connection errors).
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retryable: bool | None = None,
                 retry_after: float | None = None, code: str | None = None, quoted: str | None = None) -> None:
        """`message` is the gateway's own words; `quoted` what the upstream said (already scrubbed of
        keys), which the client reads after them but the log leaves out: upstreams quote prompts."""
        super().__init__(f"{message}: {quoted}" if quoted else message, code=code, retry_after=retry_after)
        self.log_message = message
        self.quoted = quoted
        self.status = status
        if retryable is not None:
            self.retryable = retryable


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"
    retryable = True


class CallCut(UpstreamTimeout):
    """One LLM call that the request's own deadline cut, or that it left no time to make.

    Strategies count these apart from failures: what finished before the
    deadline can still be answered (`meta.partial`).
    """

    code = "deadline_exceeded"
    retryable = False


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    code = "upstream_unavailable"
