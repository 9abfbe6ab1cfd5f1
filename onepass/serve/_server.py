"""Run the model server: uvicorn (uvloop, httptools) in one or several worker processes.

SIGTERM (or Ctrl-C) stops accepting connections and lets in-flight requests finish,
for up to ``graceful_timeout`` seconds (SageMaker sends SIGKILL 30 s after SIGTERM).
With ``workers > 1`` every worker process loads the model itself, they share the
listening socket, and their metrics add up in a temporary directory (removed at exit).

Clients are held to deadlines (:mod:`onepass.serve._protocol`): a request must arrive whole
within ``request_timeout`` seconds of its first byte (else 408 and the connection closed), a
connection idle for ``timeout_keep_alive`` seconds is closed. API keys
(:mod:`onepass.serve._guard`) and TLS are optional.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from typing import Any

import uvicorn

from onepass.serve._app import DEFAULT_MAX_PAYLOAD_BYTES, ENV_CONFIG, create_app, route_of
from onepass.serve._guard import BearerAuth, read_api_keys
from onepass.serve._protocol import DEFAULT_REQUEST_TIMEOUT, configure

__all__ = ["DEFAULT_TIMEOUT_KEEP_ALIVE", "app_from_env", "run_server"]

DEFAULT_TIMEOUT_KEEP_ALIVE = 65  # longer than common load balancers' idle timeout (60 s)
_PROTOCOL = "onepass.serve._protocol:DeadlineHttpToolsProtocol"


def run_server(model_dir: str, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
               max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, graceful_timeout: float = 25.0,
               log_level: str = "info", request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
               timeout_keep_alive: int = DEFAULT_TIMEOUT_KEEP_ALIVE, api_key_file: str | None = None,
               ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> None:
    """Serve the model in ``model_dir`` over HTTP (HTTPS with ``ssl_certfile`` and
    ``ssl_keyfile``) until SIGTERM or SIGINT; with ``api_key_file``, only to clients that
    send one of its keys (``/ping`` stays open)."""
    keys = None if api_key_file is None else read_api_keys(api_key_file)  # refused here, before binding
    configure(request_timeout=request_timeout)
    app: Any = create_app(model_dir, max_payload_bytes=max_payload_bytes)  # fails here, early, on a bad directory
    if keys is not None:
        app = BearerAuth(app, keys, route_of=route_of)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": _PROTOCOL,
        "loop": "uvloop" if _has_uvloop() else "asyncio",
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        "log_level": log_level,
        "timeout_graceful_shutdown": graceful_timeout,
        "timeout_keep_alive": timeout_keep_alive,
        "ssl_certfile": ssl_certfile,
        "ssl_keyfile": ssl_keyfile,
    }
    metrics_dir = None
    if workers > 1:  # each worker process builds its own app from the environment (uvicorn's factory)
        metrics_dir = tempfile.mkdtemp(prefix="onepass-metrics-")
        os.environ[ENV_CONFIG] = json.dumps(
            {"model_dir": str(model_dir), "max_payload_bytes": max_payload_bytes, "metrics_dir": metrics_dir,
             "request_timeout": request_timeout,
             "api_key_file": None if api_key_file is None else os.path.abspath(api_key_file)})
        app = "onepass.serve._server:app_from_env"
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


def app_from_env() -> Any:
    """What each ``--workers`` process serves (uvicorn's factory): the app the
    ``ONEPASS_SERVE_CONFIG`` environment variable describes, behind its API keys, with its
    request deadline set in this process."""
    from onepass.serve._app import app_from_env as bare_app_from_env

    config = json.loads(os.environ[ENV_CONFIG])
    configure(request_timeout=config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT))
    app: Any = bare_app_from_env()
    if config.get("api_key_file"):
        app = BearerAuth(app, read_api_keys(config["api_key_file"]), route_of=route_of)
    return app


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
