"""The HTTP face: OpenAI's `POST /v1/chat/completions`, plus what tests and benchmarks read.

    POST [/knobs/<spec>][/v1]/chat/completions   a chat completion (knobs: simulator.knobs)
    GET  /v1/models                              the presets, as sim-<preset>
    GET  /stats                                  totals since the last reset
    GET  /calls                                  one record per call since the last reset (timeline.CallRecord)
    POST /reset                                  forget calls and totals
    GET  /health                                 200 once serving
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections import Counter, deque
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator import model, reading, tokens
from simulator.judgments import Judgments
from simulator.knobs import KnobError, Knobs, resolve
from simulator.speed import PRESETS
from simulator.timeline import CallRecord, rounds

MAX_RECORDS = 200_000  # calls kept for GET /calls; older ones drop off
MAX_TOP_LOGPROBS = 20  # OpenAI's limit
DEFAULT_MAX_TOKENS = 4096
# Longer than any client keeps an idle connection (LiteLLM's aiohttp: 120 s), so the client always
# closes first: a server closing one the client is reusing is a "Server disconnected" error.
KEEP_ALIVE_SECONDS = 300


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class Simulator:
    """One simulated upstream: server defaults, the judgments, and what it has seen."""

    def __init__(self, defaults: Knobs | None = None, judgments: Judgments | None = None) -> None:
        self.defaults = defaults or Knobs()
        self.judgments = judgments if judgments is not None else Judgments.load()
        tokens.encoding()  # loaded now (~0.3 s), not by the first call
        self.records: deque[CallRecord] = deque(maxlen=MAX_RECORDS)
        self.totals: Counter[str] = Counter()
        self.in_flight = self.peak = 0
        self._latency_streams: dict[int, random.Random] = {}
        chat = ["/chat/completions", "/v1/chat/completions", "/knobs/{knobs}/chat/completions",
                "/knobs/{knobs}/v1/chat/completions"]
        self.app = Starlette(routes=[
            *(Route(path, self.chat, methods=["POST"]) for path in chat),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/stats", self.stats, methods=["GET"]),
            Route("/calls", self.calls, methods=["GET"]),
            Route("/reset", self.reset, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
        ])

    async def chat(self, request: Request) -> JSONResponse:
        arrived = time.monotonic()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            body = await _json_body(request)
            knobs = resolve(self.defaults, str(body.get("model") or ""), request.path_params.get("knobs", ""))
            return await self._complete(body, knobs, arrived)
        except (BadRequest, KnobError) as exc:
            return error(400, str(exc), "invalid_request_error", getattr(exc, "param", None))
        finally:
            self.in_flight -= 1

    async def _complete(self, body: dict[str, Any], knobs: Knobs, arrived: float) -> JSONResponse:
        messages = _messages(body)
        max_tokens = _int(body, "max_completion_tokens", 1)
        max_tokens = _int(body, "max_tokens", 1) if max_tokens is None else max_tokens
        top = min(_int(body, "top_logprobs", 0) or 0, MAX_TOP_LOGPROBS) if body.get("logprobs") else 0
        task = reading.read(messages)
        grades = [self.judgments.grade(task.query, p.text) for p in task.passages]
        prompt = json.dumps([[m.get("role"), reading.content_text(m)] for m in messages]).encode()
        latents = model.latent_scores(task, [g.value for g in grades], knobs, prompt)
        answer = model.answer(task, latents, knobs)
        pieces = tokens.split(answer.text)
        limit = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
        finish = "length" if len(pieces) > limit else "stop"
        pieces = pieces[:limit]
        prompt_tokens = tokens.count_messages(
            [{"role": str(m.get("role", "")), "content": reading.content_text(m)} for m in messages])
        speed = knobs.speed()
        ttft = speed.draw_ttft(self._latency_stream(knobs.seed))
        failed = self._latency_stream(knobs.seed).random() < knobs.errors
        wait = speed.duration(ttft, prompt_tokens, 0 if failed else len(pieces))
        await sleep_until(arrived + wait)

        if failed:
            response = error(500, "simulated upstream failure (knob errors)", "server_error")
        else:
            response = JSONResponse(_completion(body, knobs, pieces, answer, top, finish, prompt_tokens))
        self._record(CallRecord(
            start=arrived, end=time.monotonic(), planned=wait, model=str(body.get("model") or ""), preset=knobs.preset,
            kind=task.kind, passages=len(task.passages), judged=sum(g.judged for g in grades),
            prompt_tokens=prompt_tokens, completion_tokens=0 if failed else len(pieces), max_tokens=max_tokens,
            top_logprobs=top, finish_reason="error" if failed else finish, status=response.status_code,
            knobs=knobs.spec(),
        ))
        return response

    def _latency_stream(self, seed: int) -> random.Random:
        # Per seed, one stream for the whole server: calls draw in arrival order, so identical
        # prompts (a hedged duplicate) still get their own latencies.
        return self._latency_streams.setdefault(seed, random.Random(seed))

    def _record(self, record: CallRecord) -> None:
        self.records.append(record)
        self.totals["calls"] += 1
        self.totals["prompt_tokens"] += record.prompt_tokens
        self.totals["completion_tokens"] += record.completion_tokens
        self.totals[f"kind:{record.kind}"] += 1
        if record.status != 200:
            self.totals["errors"] += 1

    async def stats(self, request: Request) -> JSONResponse:
        totals = self.totals
        return JSONResponse({
            "calls": totals["calls"], "errors": totals["errors"],
            "prompt_tokens": totals["prompt_tokens"], "completion_tokens": totals["completion_tokens"],
            "by_kind": {k.removeprefix("kind:"): v for k, v in totals.items() if k.startswith("kind:")},
            "in_flight": self.in_flight, "max_concurrency": self.peak, "rounds": rounds(self.records),
            "judged_queries": self.judgments.queries,
        })

    async def calls(self, request: Request) -> JSONResponse:
        return JSONResponse([dataclasses.asdict(r) for r in self.records])

    async def reset(self, request: Request) -> JSONResponse:
        self.records.clear()
        self.totals.clear()
        self.peak = self.in_flight
        return JSONResponse({"ok": True})

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": f"sim-{name}", "object": "model", "created": 0, "owned_by": "simulator"} for name in PRESETS
        ]})

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})


def _completion(body: dict[str, Any], knobs: Knobs, pieces: list[str], answer: model.Answer, top: int,
                finish: str, prompt_tokens: int) -> dict[str, Any]:
    text = "".join(pieces)
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": finish, "logprobs": None}
    if body.get("logprobs") and knobs.logprobs:
        choice["logprobs"] = {"content": model.token_logprobs(pieces, answer, top), "refusal": None}
    result: dict[str, Any] = {
        "id": f"chatcmpl-sim-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": str(body.get("model") or ""), "choices": [choice], "system_fingerprint": "simulator",
    }
    if knobs.usage:
        result["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces),
                           "total_tokens": prompt_tokens + len(pieces)}
    return result


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if body.get("stream"):
        raise BadRequest("the simulator does not stream: send stream=false", "stream")
    return body


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages must be a non-empty list of message objects", "messages")
    return messages


def _int(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"{name} must be an integer >= {minimum}", name)
    return value


def error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}},
                        status_code=status)


async def sleep_until(when: float) -> None:
    """Wait until `time.monotonic()` reaches `when`. uvloop's timers tick in whole milliseconds and
    may fire up to one early, so a single `asyncio.sleep` could end a call before its planned time."""
    while (remaining := when - time.monotonic()) > 0:
        await asyncio.sleep(remaining)
