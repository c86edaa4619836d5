"""A real redis-server on a free loopback port, for tests that need one, with the faults they inject.

`freeze()` is SIGSTOP (the process holds its socket but answers nothing, like a
stuck or paused server), `kill()` closes the port (connections refused),
`start()` brings it back on the same port, empty.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")
MISSING = "redis-server is not installed (./dev.sh test installs Debian's redis-server package)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        if REDIS_SERVER is None:
            pytest.skip(MISSING)
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.workdir / 'redis.log').read_text()[-2000:]}")
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING")

    def command(self, *args: str) -> str:
        """One command over a raw socket (RESP), so tests need no client of their own."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(payload.encode())
            return _read_reply(conn.makefile("rb"))

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            if self.frozen:
                self.thaw()
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


def _read_reply(stream) -> str:  # noqa: ANN001
    line = stream.readline().rstrip(b"\r\n").decode()
    kind, rest = line[:1], line[1:]
    if kind in "+:":
        return rest
    if kind == "-":
        raise RuntimeError(rest)
    if kind == "$":
        size = int(rest)
        return "" if size < 0 else stream.read(size + 2)[:-2].decode(errors="replace")
    if kind == "*":
        return "\n".join(_read_reply(stream) for _ in range(max(0, int(rest))))
    raise RuntimeError(f"unexpected reply {line!r}")
