"""Triggers one config reload at a time and checks its outcome against the running gateway.

A reload is checked by what the trigger answers (the admin endpoint's JSON, or
for SIGHUP and the file watcher /metrics and the log line), then by what runs
afterwards: a 30-document probe (LLM calls for the active window, the
`x-config-version` it was served at), /v1/models, the extra alias, /health.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass

import httpx

from bench import counters, harness
from bench.load import WORDS
from bench.reload_configs import INITIAL, Variant, Variants, config_text, window_spans, write_atomically

PROBE_DOCS = 30
RELOADS = "rerank_gateway_config_reloads_total"
LAST_OK = "rerank_gateway_config_last_reload_successful"
INFO = "rerank_gateway_config_info"
MetricState = tuple[dict[tuple[str, str], float], float | None, int | None]


@dataclass
class Reload:
    index: int
    trigger: str  # sighup | admin | watch
    variant: str
    expect_ok: bool
    ok: bool | None = None  # what the gateway said; None: no outcome seen
    version: int | None = None  # active version after it
    seconds: float = 0.0  # trigger -> outcome known
    verified: bool = False  # the outcome matched, and the running config is what it should be
    detail: str = ""


def metric_state(text: str) -> MetricState:
    """Reload counts by (result, trigger), last_reload_successful, and the active config version."""
    counts = {(labels["result"], labels["trigger"]): value for labels, value in counters.metric_samples(text, RELOADS)}
    last = counters.metric_samples(text, LAST_OK)
    info = [labels for labels, value in counters.metric_samples(text, INFO) if value == 1.0]
    return counts, last[0][1] if last else None, int(info[0]["version"]) if info else None


class Driver:
    """Writes config files, triggers reloads, and checks each outcome against the running gateway."""

    def __init__(self, stack: harness.Stack, base: str, admin_key: str, timeout: float = 15.0) -> None:
        self.stack = stack
        self.base = base
        self.timeout = timeout
        self.http = httpx.AsyncClient(base_url=stack.gateway.url, trust_env=False, timeout=timeout)
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.scratch = stack.workdir / "scratch.toml.txt"
        self.version = 1
        self.current = INITIAL
        self.variants = Variants()
        self.reloads: list[Reload] = []

    async def close(self) -> None:
        await self.http.aclose()

    async def reload(self, index: int, trigger: str, valid: bool) -> Reload:
        variant = self.variants.next(valid, self.current)
        record = Reload(index, trigger, variant.label, valid)
        self.reloads.append(record)
        text = config_text(self.stack.upstream.port, variant, self.base, self.scratch)
        before_metrics = metric_state(await self._metrics())
        log_offset = self.stack.gateway.log_size()
        write_atomically(self.stack.config, text)
        t0 = time.monotonic()
        try:
            if trigger == "admin":
                message = await self._admin(record)
            else:
                if trigger == "sighup":
                    self.stack.gateway.process.send_signal(signal.SIGHUP)
                message = await self._await_metrics(record, trigger, before_metrics)
                if record.ok is False:
                    message = self._log_rejection(log_offset, trigger) or message
            record.seconds = time.monotonic() - t0
            problems = await self._verify(record, variant, message)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            record.seconds = time.monotonic() - t0
            problems = [f"check failed: {type(exc).__name__}: {exc}"]
        if self.stack.gateway.process.poll() is not None:
            problems.append(f"gateway process exited with code {self.stack.gateway.process.returncode}")
        record.verified = not problems
        reason = message.split(f"{self.stack.config}: ", 1)[-1]
        record.detail = "; ".join(problems) if problems else (reason if record.ok is False else "")
        return record

    async def _admin(self, record: Reload) -> str:
        response = await self.http.post("/admin/reload", headers=self.admin)
        body = response.json()
        record.ok, record.version = body.get("ok"), body.get("version")
        if response.status_code == 200 and body.get("ok") is True:
            return ""
        if response.status_code == 400 and body.get("ok") is False and \
                body.get("error", {}).get("code") == "invalid_config":
            return body["error"]["message"]
        record.ok = None
        return f"unexpected answer {response.status_code}: {response.text[:200]}"

    async def _await_metrics(self, record: Reload, trigger: str, before: MetricState) -> str:
        """Wait for the reload counter of `trigger` to move; read the outcome from the metrics."""
        deadline = time.monotonic() + self.timeout
        counts_before = before[0]
        while time.monotonic() < deadline:
            counts, last_ok, version = metric_state(await self._metrics())
            moved = {result: counts.get((result, trigger), 0) - counts_before.get((result, trigger), 0)
                     for result in ("success", "failure")}
            if sum(moved.values()) > 0:
                if sum(moved.values()) != 1:
                    record.ok = None
                    return f"{trigger}: {moved} reloads for one trigger"
                record.ok = moved["success"] == 1
                record.version = version
                if last_ok != (1.0 if record.ok else 0.0):
                    record.ok = None
                    return f"last_reload_successful={last_ok} disagrees with the counter ({moved})"
                return ""
            await asyncio.sleep(0.05)
        return f"no {trigger} reload seen in /metrics within {self.timeout:g}s"

    def _log_rejection(self, offset: int, trigger: str) -> str:
        with contextlib.suppress(OSError):
            for line in self.stack.gateway.log_between(offset).splitlines():
                if f"config reload ({trigger}) rejected" in line:
                    return line
        return ""

    async def _verify(self, record: Reload, variant: Variant, message: str) -> list[str]:
        problems = []
        if record.ok is None:
            return [message or "no outcome"]
        if record.ok != record.expect_ok:
            said = "accepted" if record.ok else "rejected"
            problems.append(f"{said}, expected the opposite: {message[:200]}")
        expected_version = self.version + 1 if record.expect_ok else self.version
        if record.version != expected_version:
            problems.append(f"version {record.version}, expected {expected_version}")
        if not record.expect_ok and variant.expect_message not in message:
            problems.append(f"rejection does not say {variant.expect_message!r}: {message[:200]}")
        if record.ok:
            self.version, self.current = record.version or self.version, variant
        # What is running now must be self.current at self.version, whatever happened.
        problems += await self._probe()
        return problems

    async def _probe(self) -> list[str]:
        problems = []
        window, step = self.current.window
        expected_calls = window_spans(PROBE_DOCS, window, step)
        body = {"query": "flea cycle", "documents": [f"passage {i} about {WORDS[i % len(WORDS)]}"
                                                      for i in range(PROBE_DOCS)]}
        response = await self.http.post("/v1/rerank", json=body)
        served = response.headers.get("x-config-version")
        if response.status_code != 200:
            problems.append(f"probe answered {response.status_code}")
        elif response.json()["meta"]["llm_calls"] != expected_calls or served != str(self.version):
            problems.append(f"probe: {response.json()['meta']['llm_calls']} calls at version {served}, "
                            f"expected {expected_calls} at {self.version} (window {window}/{step})")
        models = {m["id"] for m in (await self.http.get("/v1/models")).json()["data"]}
        expected_models = set(harness.ALIASES.values())
        if self.current.alias:
            expected_models.add(self.current.alias)
        if models != expected_models:
            problems.append(f"/v1/models lists {sorted(models)}, expected {sorted(expected_models)}")
        if self.current.alias:
            extra = await self.http.post("/v1/rerank", json={**body, "model": self.current.alias})
            if extra.status_code != 200:
                problems.append(f"alias {self.current.alias} answered {extra.status_code}")
        health = await self.http.get("/health")
        if health.status_code != 200:
            problems.append(f"/health answered {health.status_code}")
        return problems

    async def _metrics(self) -> str:
        response = await self.http.get("/metrics")
        response.raise_for_status()
        return response.text

    async def final_version(self) -> int | None:
        response = await self.http.get("/admin/config", headers=self.admin)
        return response.json().get("version") if response.status_code == 200 else None
