"""Live reload: every trigger, invalid files, in-flight requests, what needs a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway.ops.auth import hash_key
from tests.conftest import ALIASES, NO_RETRIES, ROOT, SLIDING, GatewayProcess, write_config
from tests.support.faults import Fault

ADMIN = "admin-secret-for-tests"
AUTH = f'[auth]\nadmin_keys = [{{name = "ops", sha256 = "{hash_key(ADMIN)}"}}]'
BASE = f"{NO_RETRIES}\n{AUTH}"
EXTRA_ALIAS = ("added", "judge", "pointwise", "")
DOCS = ["Paris is the capital of France.", "Bananas are yellow."]


def rewrite(gateway, upstream, extra: str = BASE, aliases=ALIASES) -> None:  # noqa: ANN001
    write_config(gateway.config, upstream.port, extra, aliases)


def admin_reload(gateway) -> httpx.Response:  # noqa: ANN001
    return httpx.post(f"{gateway.url}/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)


def rerank(gateway, model: str = "judge", **headers: str) -> httpx.Response:  # noqa: ANN001
    return httpx.post(f"{gateway.url}/v1/rerank", json={"query": "capital France", "documents": DOCS,
                                                        "model": model}, headers=headers, timeout=30)


def metric(gateway, name: str) -> str:  # noqa: ANN001
    return "\n".join(line for line in httpx.get(f"{gateway.url}/metrics").text.splitlines()
                     if line.startswith(name))


def test_admin_reload_swaps_the_config(start_gateway, upstream) -> None:
    gateway = start_gateway(BASE)
    assert rerank(gateway, "added").status_code == 404
    rewrite(gateway, upstream, aliases=[*ALIASES, EXTRA_ALIAS])
    response = admin_reload(gateway)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] and body["changed"] and body["version"] == 2 and len(body["hash"]) == 16
    answer = rerank(gateway, "added")
    assert answer.status_code == 200 and answer.headers["x-config-version"] == "2"
    assert 'rerank_gateway_config_reloads_total{result="success",trigger="admin"} 1.0' in metric(
        gateway, "rerank_gateway_config_reloads_total")
    assert metric(gateway, "rerank_gateway_config_info").endswith(f'hash="{body["hash"]}",version="2"}} 1.0')


def test_an_unchanged_file_is_a_successful_no_op(start_gateway) -> None:
    gateway = start_gateway(BASE)
    body = admin_reload(gateway).json()
    assert body["ok"] and not body["changed"] and body["version"] == 1


NEEDS_KEY = '\n[models."needs-key"]\nlitellm_model = "openai/gpt-4o"\napi_key_env = "UNSET_VAR_X"\n'
BROKEN = [
    pytest.param(lambda good: good + "\n[listwise]\nwindow = 5\nstep = 9",
                 "listwise: step must be smaller", id="value"),
    pytest.param(lambda good: good + "\n[server\nport = 1", "invalid TOML", id="syntax"),
    pytest.param(lambda good: good.replace('default_model = "judge"', 'default_model = "ghost"'),
                 "default_model: 'ghost' is not a [models] alias", id="alias"),
    pytest.param(lambda good: 'prompts_dir = "/nonexistent"\n' + good, "no prompt files", id="prompts"),
    pytest.param(lambda good: good.replace('default_model = "judge"', 'default_model = "needs-key"') + NEEDS_KEY,
                 "UNSET_VAR_X is not set", id="environment"),
]


@pytest.mark.parametrize(("breaks", "message"), BROKEN)
def test_an_invalid_file_is_rejected_and_the_old_config_keeps_serving(start_gateway, breaks, message: str) -> None:
    gateway = start_gateway(BASE)
    gateway.config.write_text(breaks(gateway.config.read_text()))
    response = admin_reload(gateway)
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and body["version"] == 1 and body["error"]["code"] == "invalid_config"
    assert message in body["error"]["message"] and str(gateway.config) in body["error"]["message"]
    assert rerank(gateway).status_code == 200 and rerank(gateway).headers["x-config-version"] == "1"
    assert metric(gateway, "rerank_gateway_config_last_reload_successful").endswith(" 0.0")


def test_sighup_reloads_and_never_kills_the_process(start_gateway, upstream) -> None:
    gateway = start_gateway(BASE)
    rewrite(gateway, upstream, aliases=[*ALIASES, EXTRA_ALIAS])
    for _ in range(3):
        gateway.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while rerank(gateway, "added").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gateway.process.poll() is None
    assert rerank(gateway, "added").status_code == 200
    assert "trigger=\"sighup\"" in metric(gateway, "rerank_gateway_config_reloads_total")


def test_file_watching_reloads_after_an_editor_replaces_the_file(start_gateway, upstream) -> None:
    gateway = start_gateway(BASE, server="watch_config = true")
    config = gateway.config
    replacement = config.with_suffix(".tmp")
    write_config(replacement, upstream.port, BASE, [*ALIASES, EXTRA_ALIAS], server="watch_config = true")
    os.replace(replacement, config)  # what editors that write a temp file and rename do
    deadline = time.monotonic() + 10
    while rerank(gateway, "added").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rerank(gateway, "added").status_code == 200
    # The log is written beside the config: its changes are no reason to look at the config again.
    for _ in range(5):
        rerank(gateway, "added")
    time.sleep(1)
    assert metric(gateway, "rerank_gateway_config_reloads_total").splitlines() == [
        'rerank_gateway_config_reloads_total{result="success",trigger="watch"} 1.0']
    assert "change detected" not in gateway.log.read_text()


def test_an_in_flight_request_finishes_on_the_config_it_started_with(start_gateway, upstream) -> None:
    aliases = [*ALIASES, ("slowpoke", "slowpoke", "sliding", SLIDING)]
    gateway = start_gateway(BASE, aliases)
    upstream.faults.always("slowpoke", Fault.delay(1.5))
    results: dict[str, httpx.Response] = {}
    slow = threading.Thread(target=lambda: results.update(slow=rerank(gateway, "slowpoke")))
    slow.start()
    time.sleep(0.5)
    rewrite(gateway, upstream, aliases=ALIASES)  # the new config has no "slowpoke"
    assert admin_reload(gateway).json()["version"] == 2
    after = rerank(gateway, "slowpoke")
    slow.join()
    upstream.faults.clear("slowpoke")
    assert results["slow"].status_code == 200 and results["slow"].headers["x-config-version"] == "1"
    assert after.status_code == 404 and after.headers["x-config-version"] == "2"


def test_listen_address_changes_are_reported_not_applied(start_gateway, upstream) -> None:
    gateway = start_gateway(BASE)
    write_config(gateway.config, upstream.port, BASE, ALIASES, server="port = 1")
    body = admin_reload(gateway).json()
    assert body["ok"] and body["restart_required"] == ["server.port"]
    assert rerank(gateway).status_code == 200


def test_admin_endpoints_need_an_admin_key(start_gateway) -> None:
    gateway = start_gateway(BASE)
    assert httpx.post(f"{gateway.url}/admin/reload").status_code == 401
    wrong = httpx.post(f"{gateway.url}/admin/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    config = httpx.get(f"{gateway.url}/admin/config", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert config["version"] == 1 and config["default_model"] == "judge"
    without = start_gateway(NO_RETRIES)
    assert httpx.post(f"{without.url}/admin/reload").status_code == 403


def test_check_config_validates_without_serving(tmp_path: Path) -> None:
    good = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(ROOT / "config.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OPENAI_API_KEY": "sk-x"})
    assert good.returncode == 0 and "ok (hash" in good.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[cache]\nttl_seconds = -1")
    result = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"{bad}: cache.ttl_seconds" in result.stderr


def test_check_config_reports_schema_and_prompt_problems_in_one_pass(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for shipped in (ROOT / "prompts").glob("*.toml"):
        (prompts / shipped.name).write_text(shipped.read_text())
    (prompts / "broken.toml").write_text('kind = "pointwise"\nsystem = "$max_label $scale $oops"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('prompts_dir = "prompts"\ndefault_model = "ghost"\n[server]\nprot = 1\n')
    result = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"rerank-gateway: {bad}: default_model: 'ghost' is not a [models] alias (aliases: gpt-4-turbo-preview, local)",
        f"rerank-gateway: {bad}: server.prot: unknown key; did you mean 'port'?",
        f"rerank-gateway: {prompts / 'broken.toml'}: system: unknown placeholders ['oops'] "
        "(known here: $max_label, $scale)",
        f"rerank-gateway: {prompts / 'broken.toml'}: user: missing template (a pointwise prompt needs system, user)",
        f"{bad}: 4 problems",
    ]


def test_a_reload_keeps_warm_clients_breakers_and_the_cache(tmp_path: Path) -> None:
    from gateway.config import parse_settings
    from gateway.service import RerankService

    base = 'default_model = "a"\n[models.a]\nlitellm_model = "openai/a"\napi_base = "http://127.0.0.1:9/v1"\n'
    first = RerankService.from_settings(parse_settings(base.encode(), tmp_path / "c.toml"))
    changed = base + '[models.b]\nlitellm_model = "openai/b"\napi_base = "http://127.0.0.1:9/v1"\n'
    second = RerankService.from_settings(parse_settings(changed.encode(), tmp_path / "c.toml"), previous=first)
    assert second.models["a"] is first.models["a"]  # the same LiteLLM client, warm
    assert second.upstreams.by_alias["a"].breaker is first.upstreams.by_alias["a"].breaker
    assert second.cache is first.cache and second.retry_budget is first.retry_budget
    resized = RerankService.from_settings(
        parse_settings((changed + "[cache]\nmax_entries = 5\n").encode(), tmp_path / "c.toml"), previous=second)
    assert resized.cache is not second.cache and resized.models["b"] is second.models["b"]


class ConfigMapVolume:
    """A directory laid out as the kubelet mounts a ConfigMap, updated the way it updates one:

        config.toml -> ..data/config.toml      (the path the gateway is given, never changes)
        ..data -> ..2026_01_01_00_00_00.N      (swapped atomically by renaming a new symlink over it)
        ..2026_01_01_00_00_00.N/config.toml    (a new directory per update; the old one is deleted)
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.updates = 0
        root.mkdir()

    @property
    def path(self) -> Path:
        return self.root / "config.toml"

    def publish(self, text: str) -> None:
        self.updates += 1
        fresh = self.root / f"..2026_01_01_00_00_00.{self.updates}"
        fresh.mkdir()
        (fresh / "config.toml").write_text(text)
        data = self.root / "..data"
        old = data.resolve() if data.is_symlink() else None
        (self.root / "..data_tmp").symlink_to(fresh.name)
        os.replace(self.root / "..data_tmp", data)
        if not self.path.is_symlink():
            self.path.symlink_to("..data/config.toml")
        if old is not None:
            for child in old.iterdir():
                child.unlink()
            old.rmdir()


def test_file_watching_follows_every_configmap_update(upstream, tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "configmap")
    source = tmp_path / "source.toml"

    def config_with(*extra_aliases: tuple[str, str, str, str]) -> str:
        write_config(source, upstream.port, BASE, [*ALIASES, *extra_aliases], server="watch_config = true")
        return source.read_text()

    volume.publish(config_with())
    gateway = GatewayProcess(volume.path, tmp_path / "gateway.log")
    try:
        for n in range(1, 4):  # several swaps in a row: each must be seen, not only the first
            alias = (f"added{n}", "judge", "pointwise", "")
            volume.publish(config_with(alias))
            deadline = time.monotonic() + 10
            while rerank(gateway, alias[0]).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            response = rerank(gateway, alias[0])
            assert response.status_code == 200, f"update {n} was not picked up:\n{gateway.log.read_text()}"
            assert response.headers["x-config-version"] == str(n + 1)
        # An update that is not valid is rejected, and the next valid one is still seen.
        volume.publish("[server\nbroken")
        time.sleep(1.5)
        assert rerank(gateway, "added3").status_code == 200
        volume.publish(config_with(("added4", "judge", "pointwise", "")))
        deadline = time.monotonic() + 10
        while rerank(gateway, "added4").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rerank(gateway, "added4").status_code == 200
        assert 'result="failure",trigger="watch"} 1.0' in metric(gateway, "rerank_gateway_config_reloads_total")
    finally:
        gateway.stop()
