"""Fault injection for the fake upstream: per-model scripted failures, and a resetting socket.

A test programs a model with a queue of faults (each call takes the next one)
or with a standing fault (every call, until cleared), e.g.

    upstream.faults.queue("flaky", Fault.status(500), Fault.status(500))   # two 500s, then normal
    upstream.faults.always("down", Fault.status(503))                      # an outage
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fault:
    kind: str  # "status" | "hang" | "delay" | "malformed" | "text"
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def status_code(cls, status: int, retry_after: str | None = None) -> Fault:
        return cls("status", status=status, retry_after=retry_after)

    @classmethod
    def hang(cls, seconds: float = 60.0) -> Fault:
        return cls("hang", seconds=seconds)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally, late."""
        return cls("delay", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def answer(cls, text: str) -> Fault:
        return cls("text", text=text)


class FaultPlan:
    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = defaultdict(deque)
        self._standing: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self.in_flight: dict[str, int] = defaultdict(int)
        self.peak_in_flight: dict[str, int] = defaultdict(int)
        self.disconnects: dict[str, int] = defaultdict(int)

    def queue(self, model: str, *faults: Fault) -> None:
        with self._lock:
            self._queues[model].extend(faults)

    def always(self, model: str, fault: Fault) -> None:
        with self._lock:
            self._standing[model] = fault

    def clear(self, model: str) -> None:
        with self._lock:
            self._queues.pop(model, None)
            self._standing.pop(model, None)

    def next(self, model: str) -> Fault | None:
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
            return self._standing.get(model)

    def enter(self, model: str) -> None:
        with self._lock:
            self.in_flight[model] += 1
            self.peak_in_flight[model] = max(self.peak_in_flight[model], self.in_flight[model])

    def leave(self, model: str) -> None:
        with self._lock:
            self.in_flight[model] -= 1


class _Reset(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(1024)
        # SO_LINGER with a zero timeout turns close() into a TCP reset.
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.request.close()


class ResetServer:
    """Accepts a connection, reads a little, and answers with a TCP reset."""

    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Reset)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ResetServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
