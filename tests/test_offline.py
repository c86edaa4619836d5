"""Importing and starting the gateway never touches the network."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT

# An audit hook records every connect/getaddrinfo to a non-loopback address.
AUDIT = r"""
import socket, sys
seen = []
def hook(event, args):
    if event in ("socket.getaddrinfo", "socket.connect"):
        target = str(args[0] if event == "socket.getaddrinfo" else args[1])
        if "127.0.0.1" not in target and "localhost" not in target and "::1" not in target:
            seen.append((event, target))
sys.addaudithook(hook)
import gateway
from gateway.app import create_app
from gateway.strategies.tokens import get_encoding, count_text
app = create_app()
for name in ("cl100k_base", "o200k_base"):
    count_text(get_encoding(name), "offline tokens")
import litellm
litellm.token_counter(model="gpt-4-turbo-preview", text="x")
print("NETWORK:", seen)
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )


def test_import_app_and_token_counting_make_no_network_calls() -> None:
    result = run_python(AUDIT)
    assert result.returncode == 0, result.stderr
    assert "NETWORK: []" in result.stdout


def test_missing_encoding_fails_fast_instead_of_downloading(tmp_path) -> None:
    code = "from gateway.strategies.tokens import get_encoding\nget_encoding('cl100k_base')"
    started = time.monotonic()
    result = run_python(code, RERANK_GATEWAY_TIKTOKEN_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "MissingEncoding" in result.stderr and "cl100k_base" in result.stderr
    assert time.monotonic() - started < 60  # no download attempt with its unbounded wait


def test_litellm_sees_the_offline_switches() -> None:
    result = run_python("import gateway, os; print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])")
    assert result.stdout.strip() == "True"
