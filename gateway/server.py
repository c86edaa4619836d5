"""Run the gateway under uvicorn: graceful drain on SIGTERM, reload on SIGHUP, an optional admin port.

Plain uvicorn exits on SIGHUP and closes its listener at once on SIGTERM; here
SIGHUP reloads the config in process, and SIGTERM first turns /ready to 503
(for `server.drain_seconds`), then lets in-flight requests finish within
`server.graceful_shutdown_seconds` before the process exits.

Connections are bounded in time, not only requests: uvicorn closes an idle
keep-alive connection after `server.keep_alive_seconds`, and the protocol here
closes one whose request headers have not all arrived within
`server.header_read_timeout_seconds` of the connection (or of its last answer),
so a client trickling headers, or connecting and saying nothing, holds a socket
for seconds. (Bodies are bounded by the endpoint, before it takes a request slot.)
The deadline is a mixin over uvicorn's own protocol choice, so it runs on the
httptools parser (and uvloop) that `run` serves on when they are installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Callable, Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from gateway.app import create_app, warm_up
from gateway.config import ServerSettings
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
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(gateway, host, port, log_level, sockets))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
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


class HeaderDeadline:
    """Mixin for uvicorn's HTTP protocols (h11 or httptools): a deadline for each request's headers.

    The clock starts when the connection opens, and again with the first byte after an answer
    (until then uvicorn's keep-alive timeout applies); it stops when a request's headers are
    complete, which is when uvicorn starts a new request cycle.
    """

    header_timeout: float
    cycle: Any
    transport: asyncio.Transport

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        self.header_timeout = getattr(config, "header_read_timeout", 10.0)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm()
        super().data_received(data)  # type: ignore[misc]
        if self._header_timer is not None and not self._between_requests():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm(self) -> None:
        self._header_timer = asyncio.get_running_loop().call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()


HTTPProtocol = type("HTTPProtocol", (HeaderDeadline, AutoHTTPProtocol), {})


def server_config(app: Any, host: str, port: int, log_level: str, settings: ServerSettings) -> uvicorn.Config:
    """uvicorn's settings for one listener, with the connection time limits of `settings`."""
    # access_log off: the gateway writes its own JSON line per request (server.log_requests),
    # so uvicorn's would be a second line for the same request.
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, http=HTTPProtocol, access_log=False,
                            timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
                            timeout_graceful_shutdown=settings.graceful_shutdown_seconds)  # type: ignore[arg-type]
    config.header_read_timeout = settings.header_read_timeout_seconds  # type: ignore[attr-defined]
    return config


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
    # Floats, not int(): 0.9 seconds of grace is not 0.
    servers = [_Server(server_config(app, host, p, log_level, settings)) for app, p in apps]
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
