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
    assert f"{path}: listwise: step must be smaller than window" in result.stderr


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
        models = {m["id"]: m for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]}
        hosted = httpx.post(f"{gateway.url}/v1/rerank", timeout=120,
                            json={"query": "q", "documents": ["a", "b"], "model": "gpt-4-turbo-preview"})
        if models["local"]["available"]:  # no key: its request_fallback, the embedded model, answers and says so
            assert hosted.status_code == 200 and hosted.headers["x-rerank-fallback"] == "local"
            assert "OPENAI_API_KEY is not set" in hosted.json()["meta"]["warnings"][0]
        else:
            assert hosted.status_code == 503 and hosted.json()["error"]["code"] == "model_unavailable"
            assert "OPENAI_API_KEY is not set" in hosted.json()["error"]["message"]
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


def test_hash_key_refuses_an_empty_key() -> None:
    for args, stdin in ((["hash-key", ""], None), (["hash-key"], "\n"), (["hash-key", "  "], None)):
        result = subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, input=stdin)
        assert result.returncode == 2 and "the key is empty" in result.stderr and not result.stdout


def test_new_key_prints_a_line_ready_to_paste_into_auth_keys() -> None:
    import tomllib

    from gateway.config import ApiKey
    from gateway.ops.auth import hash_key

    result = run_cli("new-key", "--name", "search-team")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    key = lines[0].removeprefix("key:").strip()
    entry = ApiKey.model_validate(tomllib.loads(f"keys = [\n{lines[-1]}\n]")["keys"][0])
    assert entry.name == "search-team" and entry.sha256 == hash_key(key) == lines[1].split()[-1]


def test_serve_loads_config_toml_from_the_working_directory_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('default_model = "mine"\n[models.mine]\n'
                                          'litellm_model = "openai/x"\napi_base = "http://127.0.0.1:9/v1"\n')
    gateway = GatewayProcess(None, tmp_path / "log", cwd=tmp_path)
    try:
        models = {m["id"]: m for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]}
    finally:
        gateway.stop()
    assert models["mine"]["default"]
    assert f"config: {(tmp_path / 'config.toml').resolve()} (reload with SIGHUP or /admin/reload)" in \
        (tmp_path / "log").read_text()


def test_serve_without_any_config_file_says_it_runs_on_embedded_defaults(tmp_path: Path,
                                                                         no_openai_key: None) -> None:
    gateway = GatewayProcess(None, tmp_path / "log", cwd=tmp_path)
    gateway.stop()
    assert "config: the embedded defaults" in (tmp_path / "log").read_text()
