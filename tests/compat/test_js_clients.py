"""JavaScript clients against the real gateway: cohere-ai (v1 and v2) and the Vercel AI SDK's rerank().

The checks themselves are tests/js/clients.test.mjs, run by node's own test runner with the
versions pinned in tests/js/package-lock.json; each of its tests must pass.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import GatewayProcess
from tests.support.node import missing, run_node

pytestmark = pytest.mark.skipif(
    (reason := missing("cohere-ai", "ai", "@ai-sdk/cohere")) is not None, reason=reason or "")


def test_cohere_ai_and_the_ai_sdk_rerank_against_the_gateway(gateway: GatewayProcess) -> None:
    result = run_node(["--test", "--test-reporter=tap", "clients.test.mjs"], gateway.url)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", output, re.MULTILINE)
    assert passed and failed and int(failed.group(1)) == 0 and int(passed.group(1)) >= 9, output
