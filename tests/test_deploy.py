"""The container and Kubernetes files say what the app really does: no Docker daemon runs here, so the
Dockerfile's install and start commands are run as they are, and the manifests are parsed and checked against
the ports, probe paths, environment variables and config the gateway serves."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import yaml

from gateway.config import REDIS_URL_ENV, load_settings
from tests.conftest import ROOT, free_port

DOCKERFILE = (ROOT / "Dockerfile").read_text()
K8S = ROOT / "deploy" / "kubernetes"
DEPLOY_CONFIG = ROOT / "deploy" / "config.toml"


def manifests() -> dict[str, dict]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def dockerfile_instruction(name: str) -> list[str]:
    """Every `NAME ...` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line[len(name) + 1:].strip() for line in joined.splitlines() if line.startswith(f"{name} ")]


def gateway_container() -> dict:
    return manifests()["Deployment/rerank-gateway"]["spec"]["template"]["spec"]["containers"][0]


def test_the_image_is_small_non_root_and_builds_llama_cpp_like_dev_sh() -> None:
    assert all(base.startswith("${PYTHON}") for base in dockerfile_instruction("FROM"))
    assert 'ARG PYTHON=python:3.11-slim' in DOCKERFILE  # requires-python >= 3.11, slim base
    [user] = dockerfile_instruction("USER")
    assert user.isdigit() and int(user) >= 1000 and f"--uid {user}" in DOCKERFILE
    dev = re.search(r'^LLAMA_CMAKE_ARGS="([^"]+)"', (ROOT / "dev.sh").read_text(), re.M)
    assert dev and f'ARG LLAMA_CMAKE_ARGS="{dev.group(1)}"' in DOCKERFILE
    assert "ARG LOCAL_MODEL=0" in DOCKERFILE and '".[local]"' in DOCKERFILE  # the embedded model is optional


def test_the_images_install_command_resolves_with_the_pinned_constraints() -> None:
    [install] = [run for run in dockerfile_instruction("RUN") if "pip install" in run]
    pip = install[install.index("pip install"):]
    args = shlex.split(pip.replace('"$SPEC"', "."))
    assert args[:2] == ["pip", "install"] and "-c" in args and args[args.index("-c") + 1] == "constraints.txt"
    # The same command, as a dry run against this checkout: every pin resolves, nothing conflicts.
    result = subprocess.run([sys.executable, "-m", *args, "--dry-run", "--quiet"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_images_start_command_serves_the_shipped_config(tmp_path: Path) -> None:
    [cmd] = dockerfile_instruction("CMD")
    command = yaml.safe_load(cmd)  # the exec form is a JSON list
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(dockerfile_instruction("ENV"))))
    assert command == ["rerank-gateway", "serve"] and env["RERANK_GATEWAY_CONFIG"] == "/etc/rerank-gateway/config.toml"
    assert "COPY deploy/config.toml /etc/rerank-gateway/config.toml" in DOCKERFILE
    # The shipped config, on a loopback port instead of 0.0.0.0:8080.
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(DEPLOY_CONFIG.read_text().replace('host = "0.0.0.0"', 'host = "127.0.0.1"')
                      .replace("port = 8080", f"port = {port}"))
    executable = Path(sys.executable).with_name(command[0])
    env = {**os.environ, "RERANK_GATEWAY_CONFIG": str(config)}
    process = subprocess.Popen([str(executable), *command[1:]], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "the start command did not serve"
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_shipped_config_is_valid_and_the_configmap_holds_it() -> None:
    settings = load_settings(DEPLOY_CONFIG)
    assert settings.server.host == "0.0.0.0" and settings.server.port == 8080 and settings.server.watch_config
    configmap = manifests()["ConfigMap/rerank-gateway"]["data"]["config.toml"]
    assert configmap == DEPLOY_CONFIG.read_text()
    assert tomllib.loads(configmap)["server"]["port"] == 8080


def test_the_deployment_probes_ports_and_env_are_the_apps() -> None:
    container = gateway_container()
    settings = load_settings(DEPLOY_CONFIG)
    [port] = container["ports"]
    assert port["containerPort"] == settings.server.port and port["name"] == "http"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    env = {e["name"] for e in container["env"]}
    assert {REDIS_URL_ENV, "RERANK_GATEWAY_CONFIG", "OPENAI_API_KEY"} <= env
    # The config's model reads OPENAI_API_KEY; the mounted directory is what the config path names.
    assert load_settings().models["gpt-4-turbo-preview"].api_key_env == "OPENAI_API_KEY"
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert mount["mountPath"] == "/etc/rerank-gateway" and "subPath" not in mount  # subPath is never updated
    spec = manifests()["Deployment/rerank-gateway"]["spec"]["template"]["spec"]
    grace = settings.server.drain_seconds + settings.server.graceful_shutdown_seconds
    assert spec["terminationGracePeriodSeconds"] > grace
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert spec["securityContext"]["runAsUser"] == int(dockerfile_instruction("USER")[0])


def test_service_hpa_and_disruption_budget_point_at_the_deployment() -> None:
    found = manifests()
    labels = found["Deployment/rerank-gateway"]["spec"]["selector"]["matchLabels"]
    service = found["Service/rerank-gateway"]["spec"]
    assert service["selector"] == labels and service["ports"][0]["targetPort"] == "http"
    assert found["PodDisruptionBudget/rerank-gateway"]["spec"]["selector"]["matchLabels"] == labels
    target = found["HorizontalPodAutoscaler/rerank-gateway"]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rerank-gateway"}
    redis_args = found["Deployment/rerank-gateway-redis"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "allkeys-lru" in redis_args and "--maxmemory" in redis_args
    kustomized = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(kustomized) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_compose_runs_two_gateways_on_redis_and_the_simulator() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"gateway-a", "gateway-b", "redis", "upstream"} <= set(services)
    for name in ("gateway-a", "gateway-b"):
        gateway = services[name]
        assert gateway["environment"][REDIS_URL_ENV] == "redis://redis:6379/0"
        assert gateway["ports"][0].endswith(":8080") and "/ready" in " ".join(gateway["healthcheck"]["test"])
        base = gateway["environment"]["OPENAI_BASE_URL"]
        assert load_settings().models["gpt-4-turbo-preview"].api_base_env == "OPENAI_BASE_URL"
    upstream = services["upstream"]
    assert upstream["command"][:3] == ["python", "-m", "simulator"]
    assert base == f"http://upstream:{upstream['command'][upstream['command'].index('--port') + 1]}/v1"
    assert (ROOT / "simulator" / "__main__.py").is_file()
    assert "allkeys-lru" in services["redis"]["command"]
