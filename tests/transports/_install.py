"""What the test servers' modules share: a free loopback port and a start retried on
another when it is taken, Debian's package of a server installed (loudly) when its
programs are missing and this process may, and the end of a server's log for error
messages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

Server = TypeVar("Server")


class ServerError(RuntimeError):
    """A test server could not be started (or stopped)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_on_a_free_port(make: Callable[[int, int], Server], say: Callable[[str], Any]) -> Server:
    """``make(port, attempt)``'s server, started: on another free port when the one chosen
    was taken between choosing it and binding it (three tries, each failure said)."""
    for attempt in range(3):
        server = make(free_port(), attempt)
        try:
            server.start()  # type: ignore[attr-defined]
            return server
        except ServerError as exc:
            if attempt == 2:
                raise
            say(f"start on port {server.port} failed, trying another port: {str(exc)[-300:]}")  # type: ignore[attr-defined]
    raise AssertionError("unreachable")


def apt_install(package: str, who: str) -> bool:
    """``apt-get install -y package`` when root with apt-get, saying so on stderr as
    ``[who]``; whether it was run and succeeded."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    say = lambda message: print(f"[{who}] {message}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"{package} not found: running 'apt-get update' and 'apt-get install -y {package}' ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=False, env=env)
    done = subprocess.run(["apt-get", "install", "-y", package], check=False, env=env)
    say(f"apt-get install -y {package} exited with {done.returncode}")
    return done.returncode == 0


def log_tail(log_file: Path, n: int = 30) -> str:
    """The last ``n`` lines of a server's log, headed, for an error message ("" if none)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return ""
    return "\nserver log:\n" + "\n".join(lines) if lines else ""
