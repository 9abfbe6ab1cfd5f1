"""A real Redis server on loopback for the tests (and the benchmark), started here.

:func:`redis_server` starts ``redis-server`` on 127.0.0.1 at a free port, its files (log,
snapshot) in a temporary folder, and stops it and removes the folder after. No snapshot is
written on its own (``save ""``), no append-only file: :meth:`RedisServer.stop` with
``save=True`` writes one snapshot at shutdown, which :meth:`RedisServer.start` loads again
(stream, consumer groups, pending lists), as a server restarted by its operator would.
When ``redis-server`` is not on PATH and we are root with apt-get,
``apt-get install -y redis-server`` is run (announced on stderr).

Nothing here skips: a server that cannot be started raises :class:`ServerError` with what
was tried and the server's log, so a test using it fails and says why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.transports._install import ServerError, apt_install, log_tail, start_on_a_free_port

__all__ = ["RedisServer", "ServerError", "fill_stream", "redis_server"]

START_SECONDS = 30.0


def _say(message: str) -> None:
    print(f"[redis_server] {message}", file=sys.stderr, flush=True)


def find_binary() -> str:
    """The path of ``redis-server``; installs it with apt-get (loudly) when it is missing and we may."""
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.path.exists(p)), None)
    if found:
        return found
    if apt_install("redis-server", "redis_server"):
        found = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
        if found:
            return found
    raise ServerError("redis-server was not found on PATH (nor in /usr/bin, /usr/local/bin), and could not be "
                      "installed (apt-get needs root); install Redis >= 6.2 (Debian: apt-get install redis-server)")


@dataclass
class RedisServer:
    """A running server at ``host``:``port``, database 0; its files in ``folder``."""

    binary: str
    folder: Path
    port: int
    host: str = "127.0.0.1"
    #: how long start() waits for the server to answer (loading a large snapshot takes a while)
    start_seconds: float = START_SECONDS
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        """``redis://HOST:PORT/0``, what onepass reads (with ``?stream=`` or ``--stream``)."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    def log_tail(self, n: int = 30) -> str:
        return log_tail(self.log_file, n)

    def client(self, **kw: Any) -> Any:
        """A redis-py client (RESP2, bytes)."""
        import redis

        return redis.Redis(host=self.host, port=self.port, db=0, protocol=2, **kw)

    def start(self) -> None:
        """Start the server (again, after :meth:`stop`: same port, its snapshot loaded)."""
        if self.process is not None and self.process.poll() is None:
            return
        args = [self.binary, "--port", str(self.port), "--bind", self.host, "--dir", str(self.folder),
                "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--protected-mode", "no", "--logfile", str(self.log_file), "--loglevel", "notice"]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise ServerError(f"redis-server on port {self.port} exited with {self.process.returncode}: "
                                  f"{err}{self.log_tail()}")
            try:
                if self.client(socket_connect_timeout=1, socket_timeout=2).ping():
                    return
            except Exception:  # noqa: BLE001 - not up yet (refused, loading)
                time.sleep(0.05)
        self.kill()
        raise ServerError(f"redis-server on port {self.port} did not answer PING within {self.start_seconds:g} s"
                          f"{self.log_tail()}")

    def stop(self, save: bool = False) -> None:
        """Shut the server down (``save=True``: writing a snapshot that :meth:`start` loads)."""
        if self.process is None or self.process.poll() is not None:
            return
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:  # no retries: redis-py would otherwise send SHUTDOWN again for seconds as the server goes
            self.client(socket_timeout=30, retry=Retry(NoBackoff(), 0)).shutdown(save=save, nosave=not save)
        except Exception:  # noqa: BLE001 - the connection drops as the server exits
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerError(f"redis-server on port {self.port} did not shut down within 30 s{self.log_tail()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A fresh server for the ``with`` block; stopped and its folder removed after."""
    binary = find_binary()
    folder = Path(tempfile.mkdtemp(prefix="onepass-redis-"))
    server = None
    try:
        server = start_on_a_free_port(lambda port, _: RedisServer(binary, folder, port), _say)
        yield server
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)


def fill_stream(server: RedisServer, stream: str, rows: Any, *, names: list[str] | None = None,
                field: str | None = None, fmt: str = "%.6f", start: int | None = None) -> list[bytes]:
    """XADD a row per entry (pipelined raw commands): each value a field (``names``,
    default ``x0, x1...``), or, with ``field``, the row as one CSV field. ``start`` gives
    explicit IDs ``start-1, start-2...`` (milliseconds ``start``); default ``*``. Returns
    the entry IDs."""
    import numpy as np

    rows = np.asarray(rows)
    names = names or [f"x{j}" for j in range(rows.shape[1])]
    keys = [n.encode() for n in names]
    ids: list[bytes] = []
    with socket.create_connection((server.host, server.port)) as s:
        for a in range(0, len(rows), 5000):
            out = []
            for i, row in enumerate(rows[a:a + 5000].tolist()):
                values = [(fmt % v).encode() for v in row]
                entry_id = b"*" if start is None else b"%d-%d" % (start, a + i + 1)
                pairs = [(field.encode(), b",".join(values))] if field else list(zip(keys, values, strict=True))
                args = [b"XADD", stream.encode(), entry_id, *[x for kv in pairs for x in kv]]
                out.append(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in args))
            s.sendall(b"".join(out))
            got = b""
            while got.count(b"\r\n") < 2 * len(out):
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise ServerError("the server closed the connection while entries were added")
                got += chunk
                if got.startswith(b"-") or b"\r\n-" in got:
                    raise ServerError(f"XADD failed: {got[got.find(b'-'):][:200].decode(errors='replace')}")
            lines = got.split(b"\r\n")
            for head, value in zip(lines[0::2], lines[1::2], strict=False):
                if head.startswith(b"-"):
                    raise ServerError(f"XADD failed: {head.decode()}")
                ids.append(value)
    return ids
