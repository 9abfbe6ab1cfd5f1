"""Run the model server: uvicorn (uvloop, httptools) in one or several worker processes.

SIGTERM (or Ctrl-C) stops accepting connections and lets in-flight requests finish,
for up to ``graceful_timeout`` seconds (SageMaker sends SIGKILL 30 s after SIGTERM).
With ``workers > 1`` every worker process loads the model itself, they share the
listening socket, and their metrics add up in a temporary directory (removed at exit).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from typing import Any

import uvicorn

from onepass.serve._app import DEFAULT_MAX_PAYLOAD_BYTES, ENV_CONFIG, create_app

__all__ = ["run_server"]


def run_server(model_dir: str, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
               max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, graceful_timeout: float = 25.0,
               log_level: str = "info") -> None:
    """Serve the model in ``model_dir`` over HTTP until SIGTERM or SIGINT."""
    app: Any = create_app(model_dir, max_payload_bytes=max_payload_bytes)  # fails here, early, on a bad directory
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": "httptools",
        "loop": "uvloop" if _has_uvloop() else "asyncio",
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        "log_level": log_level,
        "timeout_graceful_shutdown": graceful_timeout,
        "timeout_keep_alive": 65,  # longer than common load balancers' idle timeout (60 s)
    }
    metrics_dir = None
    if workers > 1:  # each worker process builds its own app from the environment (uvicorn's factory)
        metrics_dir = tempfile.mkdtemp(prefix="onepass-metrics-")
        os.environ[ENV_CONFIG] = json.dumps(
            {"model_dir": str(model_dir), "max_payload_bytes": max_payload_bytes, "metrics_dir": metrics_dir})
        app = "onepass.serve._app:app_from_env"
        options.update(factory=True, workers=workers)
    # uvicorn re-raises the signal it shut down for, once done; a SIGTERM that ended in a
    # graceful shutdown then exits 0, as a stop that went as planned.
    previous = signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        uvicorn.run(app, **options)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
