"""Live config reload: validate the whole new file, then swap one immutable generation.

A request takes `holder.current` once and runs to the end on it, so a reload
never changes a request half-way. A file that fails validation is rejected
with its file, key and reason, and the last good generation keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from gateway.config import RESTART_REQUIRED, ConfigError, Settings, parse_settings
from gateway.ops.metrics import Metrics

logger = logging.getLogger("gateway.reload")


class Service(Protocol):
    """What the holder needs of the service a config builds (the rerank service, in practice)."""

    def availability_problems(self) -> tuple[list[str], list[str]]:
        """(errors that reject a config, warnings to report) about models that cannot be called."""
        ...

    def retire(self, successor: Any) -> None:
        """`successor` now serves: release what it did not take over once in-flight requests end."""
        ...


S = TypeVar("S", bound=Service)
Builder = Callable[[Settings, "S | None"], S]


@dataclass(frozen=True)
class Generation(Generic[S]):
    settings: Settings
    service: S
    version: int
    digest: str  # sha256 of the file's bytes ("embedded" without a file)
    loaded_at: float


@dataclass
class ReloadOutcome:
    ok: bool
    version: int
    digest: str
    changed: bool = False
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)

    def to_body(self) -> dict[str, object]:
        return {"ok": self.ok, "version": self.version, "hash": self.digest, "changed": self.changed,
                "errors": self.errors, "warnings": self.warnings, "restart_required": self.restart_required}


def read_config(path: Path | None) -> tuple[Settings, str]:
    """Settings and the digest of the bytes they came from."""
    if path is None:
        return Settings(), "embedded"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_settings(raw, path), hashlib.sha256(raw).hexdigest()[:16]


class ConfigHolder(Generic[S]):
    """The current generation, swapped whole by `reload`."""

    def __init__(self, path: Path | None, settings: Settings, digest: str, build: Builder[S],
                 metrics: Metrics) -> None:
        self.path = path
        self.build = build
        self.metrics = metrics
        self.current = Generation(settings, build(settings, None), 1, digest, time.time())
        self.draining = False
        self._lock = asyncio.Lock()
        metrics.set_config(1, digest, self.current.loaded_at)

    async def reload(self, trigger: str) -> ReloadOutcome:
        async with self._lock:  # one reload at a time; requests are never blocked by it
            outcome = self._reload()
        result = "success" if outcome.ok else "failure"
        self.metrics.reloads.labels(result, trigger).inc()
        self.metrics.reload_ok.set(1 if outcome.ok else 0)
        if outcome.ok:
            self.metrics.set_config(outcome.version, outcome.digest, self.current.loaded_at)
            logger.info("config reload (%s): version %d, hash %s%s%s", trigger, outcome.version, outcome.digest,
                        "" if outcome.changed else " (unchanged)",
                        f"; restart required for {', '.join(outcome.restart_required)}"
                        if outcome.restart_required else "")
        else:
            logger.error("config reload (%s) rejected, still serving version %d: %s", trigger,
                         outcome.version, "; ".join(outcome.errors))
        return outcome

    def _reload(self) -> ReloadOutcome:
        current = self.current
        try:
            settings, digest = read_config(self.path)
        except ConfigError as exc:
            return ReloadOutcome(False, current.version, current.digest, errors=[str(exc)])
        if digest == current.digest:
            return ReloadOutcome(True, current.version, digest)
        restart = [key for key in RESTART_REQUIRED if _get(settings, key) != _get(current.settings, key)]
        # Settings that need a restart keep their running values until then.
        server = settings.server.model_copy(update={k.split(".")[1]: _get(current.settings, k) for k in restart})
        settings = settings.model_copy(update={"server": server})
        try:
            service = self.build(settings, current.service)
        except Exception as exc:  # prompts, encodings, clients: anything that stops a build rejects it
            return ReloadOutcome(False, current.version, current.digest, errors=[f"{self.path}: {exc}"])
        errors, warnings = service.availability_problems()
        if errors:
            return ReloadOutcome(False, current.version, current.digest, errors=[f"{self.path}: {e}" for e in errors])
        self.current = Generation(settings, service, current.version + 1, digest, time.time())
        current.service.retire(service)
        return ReloadOutcome(True, self.current.version, digest, True, warnings=warnings, restart_required=restart)


def _get(settings: Settings, dotted: str) -> object:
    value: object = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


async def watch(holder: ConfigHolder, debounce_ms: int = 300, retry_seconds: float = 1.0) -> None:
    """Reload when the config file, as mounted, changes.

    The directory that holds the path is watched, not the file nor only what a symlink
    resolves to: editors replace the file by renaming a new one over it, and a Kubernetes
    ConfigMap volume swaps `..data -> ..<timestamp>` atomically (with `config.toml ->
    ..data/config.toml`) and deletes the old timestamped directory, so a watch on the
    resolved path hears one swap and nothing after. The resolved file's directory is watched
    too (a symlink to a file elsewhere), and the watch is re-armed after every change, so it
    follows wherever the path points now. Only changes to the file's names (and the
    ConfigMap's `..` entries) count, and the file's digest decides whether it changed: a log
    written beside the config costs nothing. Turning `watch_config` off by a reload stops
    the reloads; if a watched directory goes away, the watch is armed again when it is back.
    """
    import watchfiles

    assert holder.path is not None
    path = holder.path.absolute()
    tried: str | None = holder.current.digest  # a rejected file is tried once, not on every event

    async def reload_if_changed() -> None:
        nonlocal tried
        digest = _digest(path)
        if holder.current.settings.server.watch_config and digest not in (holder.current.digest, tried):
            tried = digest
            await holder.reload("watch")

    while True:
        targets = {path, path.resolve()}
        try:
            async for _ in watchfiles.awatch(*{target.parent for target in targets}, debounce=debounce_ms,
                                             recursive=False, watch_filter=_about({t.name for t in targets})):
                await reload_if_changed()
                if path.resolve() not in targets:
                    break  # the path points elsewhere now: watch where it points
            else:
                # awatch ends when a directory it watches is deleted: wait until it is back.
                await asyncio.sleep(retry_seconds)
        except (FileNotFoundError, OSError, RuntimeError) as exc:
            logger.warning("watching %s failed (%s); watching again in %gs", path, exc, retry_seconds)
            await asyncio.sleep(retry_seconds)
        await reload_if_changed()


def _about(names: set[str]) -> Callable[[object, str], bool]:
    """A watch filter: changes to one of `names`, or to a ConfigMap's `..data` and `..<timestamp>` entries."""
    def relevant(change: object, changed: str) -> bool:
        name = Path(changed).name
        return name in names or name.startswith("..")

    return relevant


def _digest(path: Path) -> str | None:
    """The digest `read_config` gives the file's bytes; None when it cannot be read (a reload says why)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None
