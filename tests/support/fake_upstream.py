"""A fake OpenAI-compatible chat server for tests and benchmarks.

It speaks `POST /v1/chat/completions` like OpenAI (usage, logprobs,
top_logprobs, error bodies), so the gateway's real LiteLLM path is exercised.
What it answers depends on the requested model name:

    judge            ranks by TREC DL judgments when it knows the query, else by
                     how many query words a passage contains (graded 0-3)
    judge-nousage    the same, without a `usage` block
    reverse          listwise: the window reversed; pointwise: 3 - judge's grade
    garbage          "I cannot help with that." (no identifiers, no labels)
    chatty           prose around a ranking with duplicates and out-of-range ids
    fail500          HTTP 500 with an error body
    fail401          HTTP 401 whose message quotes an API key
    partial          pointwise: HTTP 500 for passages containing "FAIL", judge otherwise
    slow             sleeps 5 s before answering like judge
    sluggish         sleeps 5 s before answering a prompt that holds "SLOW", answers like judge otherwise

Any model answers like judge unless `faults` (tests/support/faults.py) says otherwise.

Run it alone: python -m tests.support.fake_upstream --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.strategies.sanitize import neutralize
from tests.support.faults import Fault, FaultPlan

_PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)
_PASSAGE_LINE = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)
_LISTWISE_QUERY = re.compile(r"relevance to (?:the search )?query: (.*)\.\s*$", re.MULTILINE)
_BATCH_QUERY = re.compile(r"^Query: (.*?)(?:\nInstruction: .*?)?$", re.MULTILINE)
_POINTWISE = re.compile(r"Query: (.*?)(?:\nInstruction: .*?)?\n\n<passage>\n(.*)\n</passage>", re.DOTALL)


class Judge:
    """Grades (query, passage) pairs, from TREC judgments where it has them."""

    def __init__(self, with_trec: bool = True) -> None:
        self.grades: dict[str, dict[str, int]] = {}
        if with_trec:
            self._load_trec()

    def _load_trec(self) -> None:
        from bench.trec import DATA_DIR, load_qrels, load_queries

        if not DATA_DIR.is_dir():
            return
        for name in ("dl19", "dl20"):
            qrels = load_qrels(name)
            for q in load_queries(name):
                table = self.grades.setdefault(neutralize(q.query), {})
                for c in q.candidates:
                    key = neutralize(c.text)
                    grade = qrels.get(q.qid, {}).get(c.docid, 0)
                    # Identical passages under different docids: the best grade wins.
                    table[key] = max(table.get(key, 0), grade)

    def grade(self, query: str, passage: str) -> int:
        table = self.grades.get(query)
        if table is not None:
            if passage in table:
                return table[passage]
            # A truncated passage: the best candidate it is a prefix of. Many MS MARCO
            # passages share their first sentences, so only a full match is exact.
            return max((g for text, g in table.items() if text.startswith(passage)), default=0)
        words = {w for w in re.findall(r"\w+", query.lower()) if len(w) > 2}
        found = {w for w in re.findall(r"\w+", passage.lower())} & words
        return min(3, len(found))


class FakeUpstream:
    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.faults = FaultPlan()
        self.faults.always("slow", Fault.delay(5))
        self.calls: Counter[str] = Counter()
        self.last_request: dict[str, Any] = {}
        self.last_headers: dict[str, str] = {}
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/stats", self.stats, methods=["GET"]),
            Route("/reset", self.reset, methods=["POST"]),
            Route("/last", self.last, methods=["GET"]),
            Route("/faults", self.program_faults, methods=["POST"]),
        ])

    async def stats(self, request: Request) -> JSONResponse:
        return JSONResponse({"calls": sum(self.calls.values()), "by_model": dict(self.calls)})

    async def reset(self, request: Request) -> JSONResponse:
        self.calls.clear()
        return JSONResponse({"ok": True})

    async def program_faults(self, request: Request) -> JSONResponse:
        """For other processes: {"model", "always": Fault} | {"model", "queue": [Fault]} | {"model", "clear": true}."""
        body = await request.json()
        model = body["model"]
        self.faults.clear(model)
        if body.get("always"):
            self.faults.always(model, Fault(**body["always"]))
        for fault in body.get("queue") or []:
            self.faults.queue(model, Fault(**fault))
        return JSONResponse({"ok": True, "calls": self.calls[model]})

    async def last(self, request: Request) -> JSONResponse:
        return JSONResponse({"body": self.last_request, "headers": self.last_headers})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model = body["model"]
        self.calls[model] += 1
        self.last_request = body
        self.last_headers = dict(request.headers)
        self.faults.enter(model)
        try:
            if model == "sluggish" and any("SLOW" in str(m.get("content")) for m in body["messages"]):
                await asyncio.sleep(5)
            fault = self.faults.next(model)
            if fault is not None:
                response = await self._inject(request, model, fault)
                if response is not None:
                    return response
            return self._answer(model, body)
        finally:
            self.faults.leave(model)

    async def _inject(self, request: Request, model: str, fault: Fault) -> Response | None:
        """The faulty response, or None to answer normally (after a delay)."""
        if fault.kind == "status":
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            return _error(fault.status, f"injected HTTP {fault.status}", "server_error", headers)
        if fault.kind == "malformed":
            return Response("{not json", media_type="application/json")
        if fault.kind == "text":
            return JSONResponse(_completion({"model": model, "messages": []}, fault.text, None, usage=True))
        if fault.kind == "hang":
            deadline = time.monotonic() + fault.seconds
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    self.faults.disconnects[model] += 1
                    return Response(status_code=499)
                await asyncio.sleep(0.02)
            return None
        await asyncio.sleep(fault.seconds)  # "delay"
        return None

    def _answer(self, model: str, body: dict[str, Any]) -> Response:
        messages = body["messages"]
        passages = _passages(messages)
        if model == "fail500":
            return _error(500, "upstream exploded", "server_error")
        if model == "fail401":
            return _error(401, "Incorrect API key provided: sk-test-abcdef123456. Check your key.",
                          "invalid_request_error")
        instructions = messages[-1]["content"]
        if passages and "one line per passage" in instructions:
            return JSONResponse(self._batch(model, body, passages))
        if passages and "most relevant passage" in instructions:
            return JSONResponse(self._first(model, body, passages))
        if passages:
            text = self._rank(model, messages, passages)
            grade = None
        else:
            match = _POINTWISE.search(messages[-1]["content"])
            query, passage = (match.group(1), match.group(2)) if match else ("", "")
            if model == "partial" and "FAIL" in passage:
                return _error(500, "this passage always fails", "server_error")
            grade = self.judge.grade(query, passage)
            if model == "reverse":
                grade = 3 - grade
            text = str(grade)
            if model == "garbage":
                text, grade = "I cannot help with that.", None
        return JSONResponse(_completion(body, text, grade, usage=model != "judge-nousage"))

    def _grades(self, messages: list[dict[str, str]], passages: list[tuple[int, str]]) -> list[int]:
        text = "\n".join(m["content"] for m in messages if m["role"] == "user")
        match = _LISTWISE_QUERY.search(text) or _BATCH_QUERY.search(text)
        query = match.group(1) if match else ""
        return [self.judge.grade(query, passage) for _, passage in passages]

    def _first(self, model: str, body: dict[str, Any], passages: list[tuple[int, str]]) -> dict[str, Any]:
        """FIRST: the best identifier, with a distribution over identifiers as the first token's alternatives."""
        grades = self._grades(body["messages"], passages)
        if model == "reverse":
            grades = [-i for i in range(len(passages))]
        pairs = enumerate(zip(passages, grades, strict=True))
        weights = {str(i): math.exp(2 * g - 0.01 * k) for k, ((i, _), g) in pairs}
        total = sum(weights.values())
        top = sorted(weights.items(), key=lambda kv: -kv[1])
        text = "I cannot help with that." if model == "garbage" else top[0][0]
        result = _completion(body, text, None, usage=model != "judge-nousage")
        if body.get("logprobs") and model != "garbage":
            k = max(int(body.get("top_logprobs") or 0), 1)
            alts = [{"token": t, "logprob": math.log(w / total), "bytes": list(t.encode())} for t, w in top[:k]]
            result["choices"][0]["logprobs"] = {"content": [
                {"token": text, "logprob": alts[0]["logprob"], "bytes": list(text.encode()), "top_logprobs": alts}]}
        return result

    def _batch(self, model: str, body: dict[str, Any], passages: list[tuple[int, str]]) -> dict[str, Any]:
        """Batched pointwise: one "[id] grade" line per passage, each label token with its alternatives."""
        grades = self._grades(body["messages"], passages)
        tokens: list[dict[str, Any]] = []
        for (ident, _), grade in zip(passages, grades, strict=True):
            for piece in ("[", str(ident), "]"):
                tokens.append({"token": piece, "logprob": 0.0, "bytes": list(piece.encode()), "top_logprobs": []})
            label = _token_logprobs(str(grade), grade, int(body.get("top_logprobs") or 0))
            label["top_logprobs"] = [{**alt, "token": " " + alt["token"]} for alt in label["top_logprobs"]]
            tokens.append({**label, "token": f" {grade}"})
            tokens.append({"token": "\n", "logprob": 0.0, "bytes": [10], "top_logprobs": []})
        text = "".join(t["token"] for t in tokens).rstrip("\n")
        result = _completion(body, text, None, usage=model != "judge-nousage")
        if body.get("logprobs"):
            result["choices"][0]["logprobs"] = {"content": tokens[:-1]}
        return result

    def _rank(self, model: str, messages: list[dict[str, str]], passages: list[tuple[int, str]]) -> str:
        if model == "garbage":
            return "I cannot help with that."
        ids = passages
        grades = dict(zip((i for i, _ in ids), self._grades(messages, ids), strict=True))
        ranked = [i for i, _ in sorted(ids, key=lambda pair: -grades[pair[0]])]
        if model == "reverse":
            ranked = [i for i, _ in reversed(ids)]
        answer = " > ".join(f"[{i}]" for i in ranked)
        if model == "chatty":
            # Duplicates, an out-of-range id and prose around the answer.
            answer = f"Sure! Ranking of the passages: {answer} > [{ranked[0]}] > [{len(ids) + 5}]. Hope it helps."
        return answer


def _passages(messages: list[dict[str, str]]) -> list[tuple[int, str]]:
    """A window's passages: user turns of their own ("[n] text"), or "[n] text" lines of one user message."""
    turns = [m for m in messages if m["role"] == "user" and _PASSAGE.match(m["content"])]
    if turns:
        return [(int(m.group(1)), m.group(2)) for m in (_PASSAGE.match(t["content"]) for t in turns) if m]
    found: list[tuple[int, str]] = []
    for message in messages:
        if message["role"] == "user":
            found += [(int(m.group(1)), m.group(2)) for m in _PASSAGE_LINE.finditer(message["content"])]
    return found


def _completion(body: dict[str, Any], text: str, grade: int | None, usage: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text},
    }
    if body.get("logprobs") and grade is not None:
        choice["logprobs"] = {"content": [_token_logprobs(text, grade, int(body.get("top_logprobs") or 0))]}
    result: dict[str, Any] = {
        "id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": body["model"], "choices": [choice], "system_fingerprint": "fake",
    }
    if usage:
        prompt = sum(len(m["content"].split()) + 4 for m in body["messages"])
        completion = max(1, len(text.split()))
        result["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    return result


def _token_logprobs(text: str, grade: int, k: int) -> dict[str, Any]:
    """80% on the answered label, the rest on its neighbours, plus one non-label token."""
    dist = {str(grade): 0.8}
    neighbours = [g for g in (grade - 1, grade + 1) if 0 <= g <= 3]
    for g in neighbours:
        dist[str(g)] = 0.19 / len(neighbours)
    dist["The"] = 0.01
    top = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())}
           for t, p in sorted(dist.items(), key=lambda kv: -kv[1])][: max(k, 1)]
    return {"token": text, "logprob": math.log(0.8), "bytes": list(text.encode()), "top_logprobs": top}


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                        status_code=status, headers=headers)


class ServerThread:
    """Runs an ASGI app under uvicorn in a daemon thread on 127.0.0.1."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.port = port
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"fake upstream did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    uvicorn.run(FakeUpstream(Judge()).app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
