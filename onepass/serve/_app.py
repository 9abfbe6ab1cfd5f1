"""The ASGI application of ``onepass serve``: the SageMaker inference-container contract.

A plain ASGI callable, no framework: five routes do not need one, and every
microsecond of a one-row request is the server's own. It parses, asks the model kind's
adapter (:mod:`onepass.serve.adapters`) and formats; errors map to statuses in one place
(:func:`onepass.errors.http_status`), and a client's mistake is never a 500.

Routes: ``GET /ping``, ``POST /invocations``, ``GET /metrics``, ``GET /openapi.json``,
``GET /execution-parameters``; and ``POST /endpoints/{name}/invocations``, the path of
SageMaker Runtime's ``InvokeEndpoint``, answered as ``/invocations`` whatever the name: boto3's
``sagemaker-runtime`` client and the SDK's Predictors work against ``onepass serve`` given only
its URL as ``endpoint_url`` (credentials are signed by the client, never checked here).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson

from onepass._version import __version__
from onepass.errors import (
    ArtifactError,
    BadRecordError,
    NotAcceptableError,
    OnePassError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    http_status,
)
from onepass.serve import _codec
from onepass.serve._metrics import Metrics
from onepass.serve._openapi import openapi
from onepass.serve.adapters import Adapter, adapter_for

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "App", "create_app", "app_from_env"]

log = logging.getLogger("onepass.serve")

DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker's real-time limit
THREAD_MIN_BYTES = 1 << 20  # bodies this large are predicted off the event loop
ENV_CONFIG = "ONEPASS_SERVE_CONFIG"
ROUTES = ("/ping", "/invocations", "/metrics", "/openapi.json", "/execution-parameters")
RUNTIME_PREFIX, RUNTIME_SUFFIX = "/endpoints/", "/invocations"  # SageMaker Runtime's InvokeEndpoint path


def route_of(path: str) -> str:
    """The route a request path is served by: ``/endpoints/{name}/invocations`` is ``/invocations``."""
    if path.startswith(RUNTIME_PREFIX) and path.endswith(RUNTIME_SUFFIX):
        name = path[len(RUNTIME_PREFIX):-len(RUNTIME_SUFFIX)]
        if name and "/" not in name:
            return "/invocations"
    return path

_REQUEST_ALIASES = {
    "text/csv": "text/csv",
    "application/json": "application/json",
    "application/jsonlines": "application/jsonlines",
    "application/x-jsonlines": "application/jsonlines",
    "application/jsonl": "application/jsonlines",
    "application/x-ndjson": "application/jsonlines",
    _codec.RECORDIO: _codec.RECORDIO,
    "application/x-recordio": _codec.RECORDIO,
}
_HINTS = {"csv": "text/csv", "json": "application/json", "jsonlines": "application/jsonlines",
          "jsonl": "application/jsonlines", "text/json": "application/json", "application/csv": "text/csv"}
_WILDCARDS = {"*/*": "application/json", "application/*": "application/json", "text/*": "text/csv"}
_CACHE_MAX = 256  # distinct Content-Type / Accept header values remembered


class _Disconnected(Exception):
    """The client went away before sending its whole body."""


def content_type_of(header: bytes | None) -> str:
    """The request type a Content-Type header names, or UnsupportedMediaTypeError."""
    text = (header or b"").decode("latin-1")
    media = text.split(";", 1)[0].strip().lower()
    if media in _REQUEST_ALIASES:
        return _REQUEST_ALIASES[media]
    hint = f"; did you mean {_HINTS[media]!r}?" if media in _HINTS else ""
    got = f"Content-Type {text!r}" if text else "no Content-Type"
    raise UnsupportedMediaTypeError(
        f"{got} is not served{hint} Send one of: {', '.join(_codec.REQUEST_TYPES)}")


def accept_of(header: bytes | None) -> str:
    """The response type to answer an Accept header with, or NotAcceptableError.

    The highest ``q`` wins, then the first listed; no header means application/json.
    """
    text = (header or b"").decode("latin-1").strip()
    if not text:
        return "application/json"
    best, best_q = None, 0.0
    for item in text.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        media = media.lower()
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        served = _REQUEST_ALIASES.get(media) or _WILDCARDS.get(media)
        if served and q > best_q:
            best, best_q = served, q
    if best is None:
        raise NotAcceptableError(
            f"Accept {text!r} allows no type this server writes; accept one of: {', '.join(_codec.RESPONSE_TYPES)}")
    return best


def _cached(fn: Callable[[bytes | None], str]) -> Callable[[bytes | None], str]:
    """Memoize a header parser over a bounded number of distinct values (errors too)."""
    cache: dict[bytes | None, str | OnePassError] = {}

    def parse(header: bytes | None) -> str:
        hit = cache.get(header)
        if hit is None:
            try:
                hit = fn(header)
            except OnePassError as exc:
                hit = exc
            if len(cache) < _CACHE_MAX:
                cache[header] = hit
        if isinstance(hit, OnePassError):
            raise type(hit)(*hit.args)
        return hit

    return parse


def _error_body(exc: BaseException, status: int) -> bytes:
    if status >= 500:
        message = f"internal error ({type(exc).__name__}); the server log has the details"
        return orjson.dumps({"error": "InternalError", "message": message})
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, BadRecordError):
        parts = [f"row {exc.line}" if exc.line is not None else "", f"feature {exc.column}" if exc.column is not None else ""]
        where = ", ".join(p for p in parts if p)
        body.update(message=f"{where}: {exc.reason}" if where else exc.reason, row=exc.line, feature=exc.column)
    return orjson.dumps(body)


def _model_version(manifest: dict[str, Any]) -> str:
    """A short content hash of the model's manifest (which holds every array's sha256), as
    the loader read it (never the file again: it could have become a link since)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]


class App:
    """The ASGI app serving one model.

    Parameters
    ----------
    load : callable
        ``() -> (model, manifest)``; called once, in a thread, when the server starts
        (``/ping`` answers 503 until it returns).
    kind : str
        The model's kind, to find its adapter before the model is loaded.
    version : str, default "unknown"
        The model's version, reported in ``/metrics``.
    max_payload_bytes : int, default 6 MiB
        Larger bodies get 413.
    metrics_dir : path or None, default None
        A directory shared by the worker processes of one server, where each keeps its
        counters so that ``/metrics`` reports them all; None for a single process.
    """

    def __init__(self, load: Callable[[], tuple[Any, dict[str, Any]]], *, kind: str, version: str = "unknown",
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 metrics_dir: str | os.PathLike[str] | None = None) -> None:
        self._load = load
        self.kind = kind
        self.adapter: Adapter = adapter_for(kind)
        self.max_payload_bytes = int(max_payload_bytes)
        self.model: Any = None
        self.n_features = 0
        self.label_index: int | None = None  # where rows one value wider hold the label
        self.load_error: str | None = None
        self.metrics = Metrics(model_kind=kind, model_version=version, onepass_version=__version__, routes=ROUTES,
                               directory=metrics_dir)
        self._loaded = threading.Event()
        self._content_type = _cached(content_type_of)
        self._accept = _cached(accept_of)
        self._openapi: bytes | None = None
        self._routes: dict[str, dict[str, Callable[..., Awaitable[tuple[int, bytes, bytes]]]]] = {
            "/ping": {"GET": self._ping},
            "/invocations": {"POST": self._invocations},
            "/metrics": {"GET": self._metrics},
            "/openapi.json": {"GET": self._openapi_json},
            "/execution-parameters": {"GET": self._execution_parameters},
        }

    # -- model loading ----------------------------------------------------------------
    def load_now(self) -> None:
        """Load the model (the server does it in a thread at startup; tests may call it)."""
        try:
            model, manifest = self._load()
            self.n_features = int(self.adapter.n_features(model))
            self.label_index = _label_index(manifest, self.n_features)
            self.model = model
        except ArtifactError as exc:  # damaged, forged or newer: the message says which file and why
            log.error("loading the model failed: %s", exc)
            self.load_error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # the server stays up and says why in /ping and /invocations
            log.exception("loading the model failed")
            self.load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._loaded.set()

    def _not_ready(self) -> tuple[int, bytes, bytes]:
        message = f"the model failed to load: {self.load_error}" if self.load_error else "the model is still loading"
        return 503, b"application/json", orjson.dumps({"error": "ServiceUnavailable", "message": message})

    # -- ASGI -------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not self._loaded.is_set():
                    threading.Thread(target=self.load_now, name="onepass-load-model", daemon=True).start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        started = time.perf_counter()
        path = route_of(scope["path"])
        methods = self._routes.get(path)
        extra: list[tuple[bytes, bytes]] = []
        try:
            if methods is None:
                status, ctype, body = 404, b"application/json", orjson.dumps(
                    {"error": "NotFound", "message": f"no route {path!r}; routes: {', '.join(ROUTES)}"})
            elif scope["method"] not in methods:
                allow = ", ".join(methods)
                extra.append((b"allow", allow.encode()))
                status, ctype, body = 405, b"application/json", orjson.dumps(
                    {"error": "MethodNotAllowed", "message": f"{scope['method']} {path} is not served; use {allow}"})
            else:
                status, ctype, body = await methods[scope["method"]](scope, receive)
        except _Disconnected:
            self.metrics.observe(path, 499, time.perf_counter() - started)
            return
        except Exception as exc:
            status = http_status(exc)
            if status >= 500:
                log.exception("error answering %s %s", scope["method"], path)
            if status == 413:
                extra.append((b"connection", b"close"))  # the rest of the body is not read
            ctype, body = b"application/json", _error_body(exc, status)
        # Counted before the answer leaves: a client that has it finds it in /metrics.
        self.metrics.observe(path, status, time.perf_counter() - started)
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, scope: dict[str, Any], receive: Callable[..., Any]) -> bytes:
        limit = self.max_payload_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    raise PayloadTooLargeError(
                        f"the body is {declared} bytes, over this server's limit of {limit} bytes "
                        "(onepass serve --max-payload-mb); split the rows over several requests")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"the body is over this server's limit of {limit} bytes (onepass serve --max-payload-mb); "
                    "split the rows over several requests")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- routes -----------------------------------------------------------------------
    async def _ping(self, scope: dict[str, Any], receive: Callable[..., Any]) -> tuple[int, bytes, bytes]:
        if self.model is None:
            return self._not_ready()
        return 200, b"text/plain", b""

    async def _invocations(self, scope: dict[str, Any], receive: Callable[..., Any]) -> tuple[int, bytes, bytes]:
        content_type = accept = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
        request_type = self._content_type(content_type)
        response_type = self._accept(accept)
        body = await self._read_body(scope, receive)
        if self.model is None:
            return self._not_ready()
        if len(body) >= THREAD_MIN_BYTES:  # keep /ping answering while a big body is worked on
            out, n_rows = await asyncio.to_thread(self._predict, body, request_type, response_type)
        else:
            out, n_rows = self._predict(body, request_type, response_type)
        self.metrics.add_rows(n_rows)
        return 200, response_type.encode(), out

    def _predict(self, body: bytes, request_type: str, response_type: str) -> tuple[bytes, int]:
        if self.adapter.answer is not None:
            return self.adapter.answer(self.model, body, request_type, response_type)
        try:
            X = _codec.parse(body, request_type, self.n_features)
        except BadRecordError:
            if self.label_index is None:
                raise
            X = self._without_label(body, request_type)
        outputs = self.adapter.outputs(self.model, X)
        return _codec.encode(outputs, response_type, self.adapter.json_key), X.shape[0]

    def _without_label(self, body: bytes, request_type: str) -> Any:
        """Rows one value wider than the features, read with the model's label column left
        out (a client sending the labelled rows the model was trained on); the first error
        stands when they are not."""
        try:
            X = _codec.parse(body, request_type, self.n_features + 1)
        except BadRecordError:
            return _codec.parse(body, request_type, self.n_features)  # raises the first error again
        if not isinstance(X, np.ndarray):
            return _codec.parse(body, request_type, self.n_features)
        return np.delete(X, self.label_index, axis=1)

    async def _metrics(self, scope: dict[str, Any], receive: Callable[..., Any]) -> tuple[int, bytes, bytes]:
        return 200, b"text/plain; version=0.0.4; charset=utf-8", self.metrics.render()

    async def _openapi_json(self, scope: dict[str, Any], receive: Callable[..., Any]) -> tuple[int, bytes, bytes]:
        doc = self._openapi or orjson.dumps(openapi(
            title="onepass model server", version=__version__, model_kind=self.kind,
            json_key=self.adapter.json_key, n_features=self.n_features, max_payload_bytes=self.max_payload_bytes))
        if self.model is not None:  # n_features is known: the document is final
            self._openapi = doc
        return 200, b"application/json", doc

    async def _execution_parameters(self, scope: dict[str, Any], receive: Callable[..., Any]) -> tuple[int, bytes, bytes]:
        mb = max(1, self.max_payload_bytes // (1024 * 1024))
        return 200, b"application/json", orjson.dumps(
            {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": mb})


def create_app(model_dir: str | os.PathLike[str], *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
               metrics_dir: str | os.PathLike[str] | None = None) -> App:
    """The app serving the model artifact in ``model_dir`` (loaded when the server starts).

    The manifest is read now, so a directory that is not a onepass directory, or holds no
    model, fails here, before any port is bound; the arrays are loaded and checked at
    startup. A model directory that cannot be loaded (damaged, forged, or of a newer
    format) leaves the server up, ``/ping`` answering 503 with why, and a line in the log.
    """
    from onepass.errors import ArtifactError, ForeignFormatError
    from onepass.io import load_model
    from onepass.io._artifact import MANIFEST, read_manifest, resolve

    try:
        manifest = read_manifest(model_dir)
    except ArtifactError as exc:
        if not os.path.lexists(resolve(model_dir) / MANIFEST):
            raise  # not a onepass directory at all: said at once
        error = exc

        def refuse() -> tuple[Any, dict[str, Any]]:
            raise error

        return App(refuse, kind="unknown", max_payload_bytes=max_payload_bytes, metrics_dir=metrics_dir)
    if manifest["role"] != "model":
        raise ForeignFormatError(f"{model_dir}: holds a {manifest['role']}, not a model; finalize it first (onepass finalize)")
    return App(lambda: load_model(model_dir), kind=manifest["kind"], version=_model_version(manifest),
               max_payload_bytes=max_payload_bytes, metrics_dir=metrics_dir)


def app_from_env() -> App:
    """The app described by the ``ONEPASS_SERVE_CONFIG`` environment variable (JSON):
    how each ``--workers`` process builds its own app (uvicorn's factory)."""
    config = json.loads(os.environ[ENV_CONFIG])
    return create_app(config["model_dir"], max_payload_bytes=config["max_payload_bytes"],
                      metrics_dir=config.get("metrics_dir"))


def _label_index(manifest: dict[str, Any], n_features: int) -> int | None:
    """Where the model's label column sits in rows laid out as its training data was (see
    :class:`onepass.schema.InputSchema`), or None when the manifest does not say."""
    from onepass.schema import InputSchema

    return InputSchema.of(manifest).label_index(n_features + 1)
