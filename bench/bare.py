"""The baseline server: a bare Starlette rerank endpoint with no gateway behind it.

It does what any endpoint answering the same request must do and nothing more:
read and parse the JSON body with Starlette's own `request.json()`, and answer a
result of the same size as the gateway's (every document, in order, with a
score, its text and a usage block) through `JSONResponse`. The latency benchmark
runs it under the same uvicorn stack as the gateway, side by side in one run, so
"gateway / bare" says what the gateway's work costs on top of HTTP and JSON.

    .venv/bin/python -m bench.bare --port 9200
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def rerank(request: Request) -> Response:
    body = await request.json()
    documents = body["documents"]
    n = len(documents)
    results = [{"index": i, "relevance_score": 1 - i / n, "document": {"text": text}}
               for i, text in enumerate(documents)]
    return JSONResponse({"id": f"rerank-{uuid.uuid4().hex}", "object": "rerank", "model": body.get("model"),
                         "results": results, "usage": {"prompt_tokens": 0, "completion_tokens": 0,
                                                        "total_tokens": 0}})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v1/rerank", rerank, methods=["POST"]), Route("/health", health)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
