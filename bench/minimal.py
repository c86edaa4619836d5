"""The miss baseline: a minimal LLM rerank pipeline, the ~150 lines anyone would write first.

`POST /v1/rerank` with `{query, documents, mode}`: listwise is RankGPT's back-to-front
sliding window (20 passages, step 10) with the minimal prompt, one user message
carrying the numbered passages (RankZephyr's template); pointwise is one call per
document asking for a 0-3 label, 16 at a time, read from the first token's logprobs.
No validation beyond KeyError, no sanitizing, no token counting, no retries, no
cache, no metrics, no logs: what the gateway adds is exactly what is missing here.

The upstream is called with LiteLLM (`--client litellm`, as the gateway does) or
with raw httpx (`--client httpx`), so the latency benchmark can tell LiteLLM's cost
from the gateway's.

    .venv/bin/python -m bench.minimal --port 9300 --api-base http://127.0.0.1:9200/v1 --model sim-instant
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WINDOW, STEP, PASSAGE_CHARS, CONCURRENCY = 20, 10, 1500, 16

LISTWISE = ("I will provide you with {n} passages, each indicated by a numerical identifier []. "
            "Rank the passages based on their relevance to the search query: {query}.\n\n{passages}\n\n"
            "Search Query: {query}.\nRank the {n} passages above based on their relevance to the search query. "
            "All the passages should be included and listed using identifiers, in descending order of relevance. "
            "The output format should be [] > [], e.g., [4] > [2]. Only respond with the ranking results, "
            "do not say any word or explain.")
POINTWISE = ("Query: {query}\n\nPassage: {passage}\n\nHow relevant is the passage to the query, on a scale of "
             "0 to 3 (0 = unrelated, 3 = answers it exactly)? Answer with a single digit.")
SYSTEM = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query."


class Upstream:
    """One chat call, through LiteLLM or raw httpx; returns (text, first token's top logprobs)."""

    def __init__(self, client: str, api_base: str, model: str, api_key: str) -> None:
        self.client, self.api_base, self.model, self.api_key = client, api_base, model, api_key
        if client == "httpx":
            import httpx

            self.http = httpx.AsyncClient(base_url=api_base, headers={"authorization": f"Bearer {api_key}"},
                                          timeout=120, trust_env=False,
                                          limits=httpx.Limits(max_connections=512, max_keepalive_connections=512))
        else:
            import litellm  # noqa: F401

    async def chat(self, content: str, max_tokens: int, logprobs: bool = False) -> tuple[str, list[Any]]:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
        extra: dict[str, Any] = {"logprobs": True, "top_logprobs": 10} if logprobs else {}
        if self.client == "httpx":
            response = await self.http.post("/chat/completions", json={
                "model": self.model, "messages": messages, "temperature": 0, "max_tokens": max_tokens, **extra})
            choice = response.json()["choices"][0]
            top = ((choice.get("logprobs") or {}).get("content") or [{}])[0].get("top_logprobs", [])
            return choice["message"]["content"] or "", [(t["token"], t["logprob"]) for t in top]
        import litellm

        response = await litellm.acompletion(model=f"openai/{self.model}", messages=messages, temperature=0,
                                             max_tokens=max_tokens, api_base=self.api_base, api_key=self.api_key,
                                             max_retries=0, **extra)
        choice = response.choices[0]
        content = getattr(choice, "logprobs", None) and choice.logprobs.content
        top = content[0].top_logprobs if content else []
        return choice.message.content or "", [(t.token, t.logprob) for t in top]


async def listwise(upstream: Upstream, query: str, texts: list[str]) -> list[int]:
    order = list(range(len(texts)))
    end = len(texts)
    while True:
        start = max(0, end - WINDOW)
        window = order[start:end]
        passages = "\n".join(f"[{i + 1}] {texts[d][:PASSAGE_CHARS]}" for i, d in enumerate(window))
        text, _ = await upstream.chat(LISTWISE.format(n=len(window), query=query, passages=passages),
                                      max_tokens=5 * len(window) + 10)
        seen = dict.fromkeys(int(m) - 1 for m in re.findall(r"\[(\d+)\]", text) if 0 < int(m) <= len(window))
        ranked = list(seen) + [i for i in range(len(window)) if i not in seen]
        order[start:end] = [window[i] for i in ranked]
        if start == 0:
            return order
        end -= STEP


async def pointwise(upstream: Upstream, query: str, texts: list[str]) -> list[int]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def judge(text: str) -> float:
        async with limit:
            answer, top = await upstream.chat(POINTWISE.format(query=query, passage=text[:PASSAGE_CHARS]),
                                              max_tokens=1, logprobs=True)
        mass = {t.strip(): math.exp(lp) for t, lp in top if t.strip() in ("0", "1", "2", "3")}
        if mass:
            return sum(int(t) * p for t, p in mass.items()) / sum(mass.values())
        return float(answer.strip()) if answer.strip() in ("0", "1", "2", "3") else 0.0

    scores = await asyncio.gather(*(judge(t) for t in texts))
    return sorted(range(len(texts)), key=lambda i: -scores[i])


def build_app(upstream: Upstream) -> Starlette:
    async def rerank(request: Request) -> Response:
        body = await request.json()
        texts = [d if isinstance(d, str) else d["text"] for d in body["documents"]]
        rank = pointwise if body.get("mode") == "pointwise" else listwise
        order = await rank(upstream, body["query"], texts)
        n = len(order)
        return JSONResponse({"results": [{"index": d, "relevance_score": 1 - r / n} for r, d in enumerate(order)]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/rerank", rerank, methods=["POST"]), Route("/health", health)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9300)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--model", required=True, help="the upstream's model name (no provider prefix)")
    parser.add_argument("--api-key-env", default="BENCH_UPSTREAM_KEY")
    parser.add_argument("--client", choices=["litellm", "httpx"], default="litellm")
    args = parser.parse_args()
    if args.client == "litellm":
        import gateway.offline  # noqa: F401  (the same offline switches the gateway applies, before LiteLLM loads)
    upstream = Upstream(args.client, args.api_base, args.model, os.environ.get(args.api_key_env, "no-key"))
    uvicorn.run(build_app(upstream), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
