"""The server's HTTP protocol: uvicorn's httptools protocol with deadlines on reading requests.

uvicorn closes a keep-alive connection left idle between requests (``timeout_keep_alive``),
but not one whose request is being read: a client that sends its headers a byte at a time,
or a body shorter than its ``Content-Length``, holds its connection and a task forever.
Here a request must arrive whole (headers and body) within ``request_timeout`` seconds of its
first byte; if it does not, it is answered ``408 Request Timeout`` (unless an answer to it
has started) and the connection is closed. A new connection that sends nothing is closed
after ``timeout_keep_alive`` seconds, as an idle keep-alive one is.

The request deadline is set per process on the class (:func:`configure`), by
:func:`~onepass.serve._server.run_server` and, with ``--workers``, by each worker process
as it builds its app.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "DeadlineHttpToolsProtocol", "configure"]

DEFAULT_REQUEST_TIMEOUT = 60.0


def _timeout_response(seconds: float) -> bytes:
    body = orjson.dumps({"error": "RequestTimeout", "message": (
        f"the request did not arrive whole within {seconds:g} s of its first byte (onepass serve "
        "--request-timeout); send the whole body its Content-Length declares")})
    head = (f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode()
    return head + body


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, whose requests must arrive within :attr:`request_timeout`."""

    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.timeout_keep_alive, self._idle_expired)  # nothing sent yet: an idle connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.request_timeout, self._request_expired)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, expired: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _idle_expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _request_expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        # answer 408 unless an answer (to this request, or to one before it) is under way
        if cycle is None or cycle.response_complete or (not cycle.response_started and not self.pipeline):
            self.transport.write(_timeout_response(self.request_timeout))
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # the app, still reading the body, gets http.disconnect
                cycle.message_event.set()
        self.logger.info("closed a connection whose request did not arrive within %g s", self.request_timeout)
        self.transport.close()


def configure(*, request_timeout: float) -> None:
    """Set this process's request deadline (seconds from a request's first byte to its last)."""
    if not request_timeout > 0:
        raise ValueError(f"request_timeout={request_timeout!r} must be > 0")
    DeadlineHttpToolsProtocol.request_timeout = float(request_timeout)
