"""`rerank-gateway serve` as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, GatewayProcess


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_version() -> None:
    assert run_cli("--version").stdout.startswith("rerank-gateway ")


def test_a_bad_config_stops_start_up_with_a_precise_message(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[listwise]\nwindow = 5\nstep = 9")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: listwise: Value error, step must be smaller than window" in result.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "rerank-gateway"
    assert script.is_file(), "pip install -e . should install the rerank-gateway console script"


@pytest.fixture
def no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def test_embedded_defaults_serve_and_say_which_default_they_chose(tmp_path: Path, no_openai_key: None) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")  # same as no file: every key at its default
    gateway = GatewayProcess(empty, tmp_path / "log")
    try:
        assert httpx.get(f"{gateway.url}/health").status_code == 200
        hosted = httpx.post(f"{gateway.url}/v1/rerank",
                            json={"query": "q", "documents": ["a", "b"], "model": "gpt-4-turbo-preview"})
        assert hosted.status_code == 503
        assert hosted.json()["error"]["code"] == "model_unavailable"
        assert "OPENAI_API_KEY is not set" in hosted.json()["error"]["message"]
        models = {m["id"]: m for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]}
    finally:
        gateway.stop()
    log = (tmp_path / "log").read_text()
    local_installed = models["local"]["available"]
    if local_installed:  # the local extra is installed: it is the default, and start-up says why
        assert models["local"]["default"]
        assert ("default model local -> local/smollm2-135m (pointwise) because gpt-4-turbo-preview cannot be "
                "called: model 'openai/gpt-4-turbo-preview' needs an API key") in log
    else:
        assert models["gpt-4-turbo-preview"]["default"] and "OPENAI_API_KEY is not set" in log
    assert os.environ.get("OPENAI_API_KEY") is None


def test_with_a_key_the_hosted_model_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    gateway = GatewayProcess(empty, tmp_path / "log")
    try:
        models = {m["id"]: m for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]}
    finally:
        gateway.stop()
    assert models["gpt-4-turbo-preview"]["default"] and not models["local"]["default"]
    log = (tmp_path / "log").read_text()
    assert "default model gpt-4-turbo-preview -> openai/gpt-4-turbo-preview (listwise);" in log
