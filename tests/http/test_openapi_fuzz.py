"""Fuzzing the HTTP API from its own OpenAPI description: JSON answers, never a server error."""

from __future__ import annotations

import itertools

import schemathesis
from hypothesis import HealthCheck, given, settings


def test_no_input_makes_a_server_error(gateway) -> None:  # noqa: ANN001
    """Every operation of /openapi.json, with generated bodies: never a 500; errors are JSON, and a success
    has a media type its operation documents (JSON, or text for /metrics and HTML for /docs)."""
    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/v1/rerank" for op in operations)
    for operation, mode in itertools.product(operations, list(schemathesis.GenerationMode)):
        if mode is schemathesis.GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # nothing to get wrong in a GET without parameters

        documented = {media for response in operation.definition.raw["responses"].values()
                      for media in response.get("content", {})}

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:  # noqa: ANN001
            response = case.call(timeout=30)
            assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
            media = response.headers["content-type"][0].split(";")[0]
            # check() runs within this iteration, so the loop's `documented` is the one meant.
            expected = {"application/json"} if response.status_code >= 400 else documented  # noqa: B023
            assert media in expected, media
            if response.status_code >= 400:
                assert {"error", "message", "detail"} <= set(response.json())

        check()
