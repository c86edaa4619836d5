"""`rerank-gateway serve --workers N`: N worker processes answering on one port.

The supervisor binds the listening sockets once and hands them to N spawned
workers, each a whole gateway (`gateway.server.serve`) accepting on the same
sockets. It forwards signals: SIGHUP makes every worker reload in process (no
restarts, no dropped connections), SIGTERM (or Ctrl-C) makes every worker
drain as one process does, and the supervisor exits when they have. A worker
that crashes is started again; one that exits with a config error (status 2)
stops them all. `/admin/reload` on any worker reloads it and signals the
supervisor, which passes SIGHUP to every worker (an unchanged file is a no-op
for the one that already reloaded).

Metrics: every worker writes to files in a fresh PROMETHEUS_MULTIPROC_DIR
(prometheus-client's multiprocess mode), and any worker's /metrics adds them up.
State is per worker unless it lives in Redis: use `cache.backend = "redis"`
(or RERANK_GATEWAY_REDIS_URL) to share the cache and per-key limits between them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

logger = logging.getLogger("gateway")

SUPERVISOR_ENV = "RERANK_GATEWAY_SUPERVISOR_PID"
CONFIG_ERROR = 2
RESTART_DELAY = 1.0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(config: str | None, host: str, port: int, log_level: str, sockets: list[socket.socket]) -> None:
    """One worker process: a whole gateway on the supervisor's sockets."""

    from gateway.app import build_gateway
    from gateway.cli import configure_logging
    from gateway.config import ConfigError
    from gateway.server import run

    configure_logging(log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until serve() installs its handlers: Ctrl-C is the parent's
    try:
        gateway = build_gateway(Path(config) if config else None)
    except ConfigError as exc:
        print(f"rerank-gateway: {exc}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)
    gateway.reload_siblings = lambda: os.kill(os.getppid(), signal.SIGHUP)
    run(gateway, host, port, log_level, sockets)


class Supervisor:
    def __init__(self, config: str | None, host: str, port: int, admin_port: int, log_level: str, workers: int,
                 stop_seconds: float) -> None:
        self.args = (config, host, port, log_level)
        self.workers = workers
        self.stop_seconds = stop_seconds  # drain + graceful shutdown, plus slack, before workers are killed
        self.sockets = [bind(host, port)] + ([bind(host, admin_port)] if admin_port else [])
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        self.stopping: signal.Signals | None = None
        self.status = 0

    def _start(self) -> BaseProcess:
        process = self.context.Process(target=_worker, args=(*self.args, self.sockets), daemon=False)
        process.start()
        return process

    def _forward(self, sig: signal.Signals) -> None:
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, sig)

    def _on_signal(self, signum: int, frame: object) -> None:
        sig = signal.Signals(signum)
        if sig == signal.SIGHUP:
            self._forward(signal.SIGHUP)
            return
        if self.stopping is None:
            logger.info("%s: every worker drains, then the supervisor exits", sig.name)
            self.stopping = sig
            self._forward(signal.SIGTERM)
        elif sig == signal.SIGINT:  # a second Ctrl-C: stop waiting for in-flight requests
            self._forward(signal.SIGINT)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.processes = [self._start() for _ in range(self.workers)]
        logger.info("supervisor %d: %d workers (%s) on %s:%d", os.getpid(), self.workers,
                    ", ".join(str(p.pid) for p in self.processes), self.args[1], self.args[2])
        stop_by: float | None = None
        while True:
            if self.stopping is not None and stop_by is None:
                stop_by = time.monotonic() + self.stop_seconds
            alive = [p for p in self.processes if p.is_alive()]
            if self.stopping is not None and not alive:
                break
            if stop_by is not None and time.monotonic() > stop_by:
                for process in alive:
                    process.kill()
                break
            for n, process in enumerate(self.processes):
                if process.is_alive() or self.stopping is not None:
                    continue
                self._reap(process)
                if process.exitcode == CONFIG_ERROR:
                    logger.error("worker %d exited with a config error: stopping", process.pid)
                    self.status = CONFIG_ERROR
                    self.stopping = signal.SIGTERM
                    self._forward(signal.SIGTERM)
                    break
                logger.error("worker %d exited (%s); starting another", process.pid, process.exitcode)
                time.sleep(RESTART_DELAY)
                self.processes[n] = self._start()
            time.sleep(0.1)
        for process in self.processes:
            process.join(timeout=5)
            self._reap(process)
        for sock in self.sockets:
            sock.close()
        return self.status

    @staticmethod
    def _reap(process: BaseProcess) -> None:
        from prometheus_client import multiprocess

        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory and process.pid is not None:
            multiprocess.mark_process_dead(process.pid, directory)


def run(config: str | None, host: str, port: int, log_level: str, workers: int) -> int:
    """Serve with `workers` processes; returns the exit status."""
    from gateway.ops.reload import read_config

    settings, _ = read_config(Path(config) if config else None)
    server = settings.server
    metrics_dir = tempfile.mkdtemp(prefix="rerank-gateway-metrics-")
    # Set before any worker imports prometheus_client: the library picks its value store on import.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    try:
        supervisor = Supervisor(config, host, port, server.admin_port, log_level, workers,
                                server.drain_seconds + server.graceful_shutdown_seconds + 10)
        return supervisor.run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
