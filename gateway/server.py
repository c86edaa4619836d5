"""Run the gateway under uvicorn: graceful drain on SIGTERM, reload on SIGHUP, an optional admin port.

Plain uvicorn exits on SIGHUP and closes its listener at once on SIGTERM; here
SIGHUP reloads the config in process, and SIGTERM first turns /ready to 503
(for `server.drain_seconds`), then lets in-flight requests finish within
`server.graceful_shutdown_seconds` before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Callable, Generator

import uvicorn

from gateway.app import create_app, warm_up
from gateway.ops.state import Gateway
from gateway.service import RerankService

logger = logging.getLogger("gateway")


# The youngest generation is collected every 50,000 net allocations instead of 700, the middle one
# every 20 of those: a 100-document request allocates thousands of short-lived objects (dicts per
# document and result), so with the defaults the collector ran several times per request. Measured
# (bench/latency.py, 100-document cache hits): 1.5x the bare endpoint's CPU per request with the
# defaults, 0.9x with these.
GC_THRESHOLDS = (50_000, 20, 10)


def run(gateway: Gateway[RerankService], host: str, port: int, log_level: str,
        sockets: list[socket.socket] | None = None) -> None:
    """Serve until shut down, on uvloop (and uvicorn's httptools parser) when installed."""
    settle_heap()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(gateway, host, port, log_level, sockets))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a pinned dependency; asyncio's loop still works
        return None
    return uvloop.new_event_loop


def settle_heap() -> None:
    """Move everything loaded so far out of the collector's sight, and make it run less often.

    LiteLLM and its SDKs leave some 400,000 objects that live as long as the process;
    a full collection walked them all (~200 ms, the p99 of cache hits). Frozen after
    start-up, they are never scanned again.
    """
    warm_up()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # signals are handled once for all servers, in serve()


async def serve(gateway: Gateway[RerankService], host: str, port: int, log_level: str,
                sockets: list[socket.socket] | None = None) -> None:
    """Serve until SIGTERM/SIGINT. `sockets` (a worker of `serve --workers N`): the listening sockets the
    supervisor bound, the main port's first, then the admin port's when it has one."""
    settings = gateway.holder.current.settings.server
    apps = [(create_app(gateway, admin_routes=not settings.admin_port), port)]
    if settings.admin_port:
        apps.append((create_app(gateway, public=False), settings.admin_port))
    servers = [
        # access_log off: the gateway writes its own JSON line per request (server.log_requests),
        # so uvicorn's would be a second line for the same request.
        _Server(uvicorn.Config(app, host=host, port=p, log_level=log_level, access_log=False,
                               timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds)))
        for app, p in apps
    ]
    listening = [[sock] for sock in sockets] if sockets else [None] * len(servers)
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        if gateway.holder.draining:
            if sig == signal.SIGINT:  # a second Ctrl-C: stop waiting for in-flight requests
                for server in servers:
                    server.force_exit = True
            return
        gateway.holder.draining = True
        drain = gateway.holder.current.settings.server.drain_seconds
        logger.info("%s: draining (not ready) for %gs, then finishing in-flight requests", sig.name, drain)

        def exit_all() -> None:
            for server in servers:
                server.should_exit = True

        loop.call_later(drain, exit_all)

    reloads: set[asyncio.Task[object]] = set()  # held, so a queued reload is not garbage-collected

    def reload() -> None:
        task = asyncio.ensure_future(gateway.holder.reload("sighup"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await asyncio.gather(*(server.serve(sockets=socks) for server, socks in zip(servers, listening, strict=True)))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
