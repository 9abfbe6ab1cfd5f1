"""Who may call the server: optional bearer-token authentication, and a word on exposure.

With API keys (``onepass serve --api-key-file FILE``, one key a line), every request but
``GET /ping`` (a load balancer's health check) must carry ``Authorization: Bearer KEY``;
any other gets ``401`` with ``WWW-Authenticate: Bearer``. The key sent is compared with
every key in constant time (:func:`hmac.compare_digest`), so neither the answer nor its
timing says how much of a key was right. Keys travel in the clear over plain HTTP: serve
with TLS (``--ssl-certfile``, ``--ssl-keyfile``) beyond loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from onepass.errors import InvalidParameterError

__all__ = ["MIN_KEY_CHARS", "BearerAuth", "exposure_warning", "read_api_keys"]

#: the shortest key accepted: shorter ones are too easy to guess
MIN_KEY_CHARS = 16
_OPEN_ROUTES = ("/ping",)
_CHALLENGE = b'Bearer realm="onepass"'


def read_api_keys(path: str | os.PathLike[str]) -> list[bytes]:
    """The keys in ``path``: one a line; blank lines and lines starting with ``#`` skipped."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(1 << 20)
    except OSError as exc:
        raise InvalidParameterError(f"cannot read the API key file {os.fspath(path)!r}: {exc.strerror}") from None
    keys = []
    for number, raw in enumerate(text.splitlines(), 1):
        key = raw.strip()
        if not key or key.startswith(b"#"):
            continue
        if len(key) < MIN_KEY_CHARS or not all(33 <= b <= 126 for b in key):
            raise InvalidParameterError(
                f"line {number} of the API key file {os.fspath(path)!r} is not a usable key: a key is at least "
                f"{MIN_KEY_CHARS} visible ASCII characters without spaces (make one with: python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')")
        keys.append(key)
    if not keys:
        raise InvalidParameterError(f"the API key file {os.fspath(path)!r} holds no key; write one key a line")
    return keys


def _bearer(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
    return None


class BearerAuth:
    """An ASGI app letting through to ``app`` only requests that carry one of ``keys``
    (``/ping`` always passes), answering the others 401."""

    def __init__(self, app: Any, keys: list[bytes], *, route_of: Callable[[str], str] = lambda path: path) -> None:
        if not keys:
            raise ValueError("BearerAuth needs at least one key")
        self.app = app
        self._keys = list(keys)
        self._route_of = route_of

    def __getattr__(self, name: str) -> Any:  # the wrapped app's attributes (metrics, model...)
        return getattr(self.app, name)

    def is_allowed(self, headers: list[tuple[bytes, bytes]]) -> bool:
        token = _bearer(headers)
        if token is None:
            return False
        matched = False
        for key in self._keys:  # every key compared, whichever matches
            matched |= hmac.compare_digest(token, key)
        return matched

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or self._route_of(scope["path"]) in _OPEN_ROUTES or self.is_allowed(scope["headers"]):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _bearer(scope["headers"]) is not None
        message = ("the API key sent is not one this server takes" if given else
                   "this server needs an API key: send the header 'Authorization: Bearer KEY'")
        body = orjson.dumps({"error": "Unauthorized", "message": message})
        metrics = getattr(self.app, "metrics", None)
        if metrics is not None:
            metrics.observe(self._route_of(scope["path"]), 401, time.perf_counter() - started)
        challenge = _CHALLENGE + (b', error="invalid_token"' if given else b"")
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge)]})
        await send({"type": "http.response.body", "body": body})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def exposure_warning(host: str, port: int, *, has_keys: bool, has_tls: bool) -> str | None:
    """What serving on ``host`` exposes, when it reaches beyond this machine unguarded; else None."""
    if _is_loopback(host):
        return None
    where = f"{host}:{port}"
    if not has_keys:
        return (f"listening on {where} without --api-key-file: anyone who can reach this address can use the "
                "model (POST /invocations), read its kind and version and the traffic counts (GET /metrics) and "
                "its request format (GET /openapi.json), and load the machine with requests; give "
                "--api-key-file FILE (and --ssl-certfile/--ssl-keyfile), or --host 127.0.0.1")
    if not has_tls:
        return (f"listening on {where} with API keys but without TLS: the keys and the data travel in the clear, "
                "readable by anyone on the network path; give --ssl-certfile and --ssl-keyfile")
    return None
