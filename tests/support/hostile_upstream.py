"""A hostile OpenAI-compatible upstream: what a compromised or broken model server can send.

The requested model name picks the attack (answers are otherwise a valid ranking
"[1] > [2] > ..." for listwise prompts, "2" for pointwise ones):

    huge-declared      a 10 MB completion with its Content-Length
    huge-chunked       the same, chunked (no Content-Length), sent as fast as it goes
    gzip-bomb          a small gzip body that inflates to 50 MB
    huge-text          a 900 kB completion text (under the byte cap) without usage
    usage-<kind>       a valid answer whose usage is hostile: negative, fractional, huge, string,
                       infinite, boolean, list, nested
    echo-key-<enc>     HTTP 401 quoting the Authorization key it received: raw, upper, lower,
                       url, base64, base64-bearer, hex, tail
    quote-prompt       HTTP 400 quoting the whole prompt (user text) back
    traceback          HTTP 500 whose message is a Python traceback with server paths
    surrogate-error    HTTP 500 whose message holds a lone surrogate escape
    empty              HTTP 200 with an empty message
    empty-once         one empty answer, then valid ones (per prompt)
    no-choices         HTTP 200 with "choices": []

`calls` counts requests per model; `prompts` keeps the last request body per model.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_PASSAGE = re.compile(r"^\[(\d+)\] ", re.MULTILINE)
HUGE = 10_000_000

USAGE = {
    "negative": {"prompt_tokens": -50, "completion_tokens": -7, "total_tokens": -57},
    "fractional": {"prompt_tokens": 12.5, "completion_tokens": 3.7, "total_tokens": 16.2},
    "huge": {"prompt_tokens": 10**30, "completion_tokens": 1_250_005, "total_tokens": 10**30},
    "string": {"prompt_tokens": "many", "completion_tokens": "few", "total_tokens": "?"},
    "infinite": "INFINITE",  # written as raw JSON: Infinity / NaN
    "boolean": {"prompt_tokens": True, "completion_tokens": False, "total_tokens": True},
    "list": [1, 2, 3],
    "nested": {"prompt_tokens": {"n": 1}, "completion_tokens": [5], "total_tokens": None},
}


def key_forms(key: str) -> dict[str, str]:
    """The encodings an upstream may echo a key in."""
    return {
        "raw": key, "upper": key.upper(), "lower": key.lower(), "url": quote(key, safe=""),
        "base64": base64.b64encode(key.encode()).decode(),
        "base64-bearer": base64.b64encode(f"Bearer {key}".encode()).decode(),
        "hex": key.encode().hex(), "tail": "..." + quote(key[-14:], safe=""),
    }


class HostileUpstream:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.prompts: dict[str, dict[str, Any]] = {}
        self._empty_seen: set[str] = set()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model: str = body["model"]
        self.calls[model] += 1
        self.prompts[model] = body
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        prompt = "\n".join(m["content"] for m in body["messages"])
        answer = _answer(prompt)
        if model == "huge-declared":
            return Response(json.dumps(_completion(model, "x " * (HUGE // 2))), media_type="application/json")
        if model == "huge-chunked":
            return StreamingResponse(_chunks(model), media_type="application/json")
        if model == "gzip-bomb":
            return Response(_bomb(), media_type="application/json", headers={"content-encoding": "gzip"})
        if model == "huge-text":
            return JSONResponse(_completion(model, answer + " " + "y" * 900_000, usage=False))
        if model.startswith("usage-"):
            usage = USAGE[model.removeprefix("usage-")]
            if usage == "INFINITE":
                raw = json.dumps(_completion(model, answer, usage=False))[:-1]
                raw += ', "usage": {"prompt_tokens": Infinity, "completion_tokens": NaN, "total_tokens": 1e999}}'
                return Response(raw, media_type="application/json")
            return JSONResponse({**_completion(model, answer, usage=False), "usage": usage})
        if model.startswith("echo-key-"):
            form = key_forms(key)[model.removeprefix("echo-key-")]
            return _error(401, f"Incorrect API key provided: {form}. Find your key at https://example.invalid")
        if model == "quote-prompt":
            return _error(400, f"This model's maximum context length was exceeded by your messages: {prompt}")
        if model == "traceback":
            return _error(500, 'Traceback (most recent call last):\n  File "/srv/model-server/app.py", line 12, '
                               "in handle\n    raise RuntimeError\nRuntimeError: /home/ops/secrets/config.yaml")
        if model == "surrogate-error":
            raw = '{"error": {"message": "bad \\udfff thing", "type": "server_error", "param": null, "code": null}}'
            return Response(raw, status_code=500, media_type="application/json")
        if model == "empty":
            return JSONResponse(_completion(model, ""))
        if model == "empty-once":
            if prompt not in self._empty_seen:
                self._empty_seen.add(prompt)
                return JSONResponse(_completion(model, ""))
            return JSONResponse(_completion(model, answer))
        if model == "no-choices":
            return JSONResponse({**_completion(model, answer), "choices": []})
        return JSONResponse(_completion(model, answer))


@functools.cache
def _bomb() -> bytes:
    return gzip.compress(json.dumps(_completion("gzip-bomb", "0" * 50_000_000)).encode(), 9)


def _answer(prompt: str) -> str:
    """A valid answer: every listwise passage in order, or a pointwise label."""
    ids = _PASSAGE.findall(prompt)
    return " > ".join(f"[{i}]" for i in ids) if ids else "2"


def _completion(model: str, text: str, usage: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
    }
    if usage:
        result["usage"] = {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23}
    return result


async def _chunks(model: str):  # noqa: ANN202
    head, tail = json.dumps(_completion(model, "@")).split("@")
    yield head.encode()
    for _ in range(HUGE // 65536):
        yield b"z" * 65536
    yield tail.encode()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": None}}, status_code=status)
