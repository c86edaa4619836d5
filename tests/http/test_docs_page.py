"""/docs in a real headless Chromium, with the internet out of reach: Swagger UI loads from the gateway
alone, lists every endpoint, and "Try it out" on POST /v1/rerank returns a ranking.

The browser is driven by tests/js/docs_page.mjs (playwright-core, pinned in tests/js/package-lock.json,
launching Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gateway.http.docs import assets_dir
from gateway.http.routes import RERANK_PATHS
from tests.conftest import GatewayProcess
from tests.support.node import missing, run_node


def test_openapi_covers_every_path_the_gateway_serves(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    for path in [*RERANK_PATHS, "/infinity/rerank", "/tei/rerank", "/health", "/ready", "/metrics",
                 "/admin/reload", "/admin/config", "/v1/models", "/openapi.json", "/docs"]:
        assert path in document["paths"], path
    operation = document["paths"]["/v1/rerank"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    assert client.post("/v1/rerank", json=example).status_code == 200  # "Try it out" starts from a working body
    assert document["paths"]["/admin/reload"]["post"]["security"] == [{"adminKey": []}]


def test_the_docs_page_and_its_assets_come_from_the_gateway(client: httpx.Client) -> None:
    assert assets_dir() is not None, "swagger-ui-py is a dependency: pip install -e ."
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no external stylesheet
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200


@pytest.mark.skipif((reason := missing("playwright-core", chromium=True)) is not None, reason=reason or "")
def test_swagger_ui_in_headless_chromium_lists_the_endpoints_and_try_it_out_ranks(
        gateway: GatewayProcess, tmp_path: Path) -> None:
    result = run_node(["docs_page.mjs"], gateway.url, SCREENSHOT=str(tmp_path / "docs.png"))
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["foreign"] == [], "the page asked for something outside the gateway"
    assert seen["title"] == "rerank-gateway API"
    assert {"POST /v1/rerank", "POST /v2/rerank", "POST /infinity/rerank", "POST /tei/rerank", "GET /ready",
            "GET /metrics", "POST /admin/reload", "GET /v1/models"} <= set(seen["operations"])
    assert seen["status"] == "200"
    response = seen["response"]
    assert [r["index"] for r in response["results"]] and len(response["results"]) == 2  # top_n of the example
    assert response["results"][0]["relevance_score"] >= response["results"][1]["relevance_score"]
    assert (tmp_path / "docs.png").stat().st_size > 10_000
