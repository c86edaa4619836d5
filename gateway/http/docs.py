"""The interactive API docs at `/docs`: Swagger UI on `/openapi.json`, from files an installed package ships.

The page and its assets come from the `swagger-ui-py` wheel (Swagger UI 5, pinned in pyproject.toml);
nothing is fetched from the internet when the page loads, so it works offline.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>rerank-gateway API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" href="{assets}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                                 displayRequestDuration: true, defaultModelsExpandDepth: 0}});
  </script>
</body>
</html>
"""


def assets_dir() -> Path | None:
    """Swagger UI's files inside the installed swagger-ui-py package (located, not imported)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def assets() -> StaticFiles | None:
    directory = assets_dir()
    return StaticFiles(directory=directory) if directory is not None else None


async def page(request: Request) -> Response:
    if assets_dir() is None:
        return HTMLResponse("<p>Swagger UI is not installed (pip install swagger-ui-py); the API is described at "
                            "<a href=/openapi.json>/openapi.json</a>.</p>", status_code=503)
    return HTMLResponse(_PAGE.format(assets=ASSETS_PATH))
