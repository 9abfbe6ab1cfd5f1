"""A bounded HTTP/1.1 load generator for loopback servers: asyncio, keep-alive, no deps.

``run_load(port, request, n_requests, concurrency)`` opens ``concurrency`` keep-alive
connections to 127.0.0.1 and sends ``request`` (raw bytes, built by :func:`http_request`)
``n_requests`` times in all, each connection waiting for its answer before the next
(closed loop). It returns requests/s over the whole run and the latency of every
request. Parsing is minimal (status line, Content-Length or chunked), so the client
costs little CPU next to the server it measures: both share this machine's 2 cores.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

HOST = "127.0.0.1"


def http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    n_requests: int
    wall_s: float
    latencies_s: list[float]
    statuses: dict[int, int]
    last_body: bytes

    @property
    def requests_per_s(self) -> float:
        return self.n_requests / self.wall_s

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        length = int(lower[at + 15 : lower.find(b"\r\n", at)])
        return status, await reader.readexactly(length)
    if b"transfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(parts)
            parts.append(data[:-2])
    raise RuntimeError(f"response without a length: {head[:200]!r}")


async def _connection(port: int, request: bytes, n: int, latencies: list[float], statuses: dict[int, int],
                      last: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 24)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            writer.write(request)
            status, body = await _read_response(reader)
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            last[0] = body
    finally:
        writer.close()


async def _run(port: int, request: bytes, n_requests: int, concurrency: int) -> LoadResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    last = [b""]
    shares = [n_requests // concurrency + (i < n_requests % concurrency) for i in range(concurrency)]
    t0 = time.perf_counter()
    await asyncio.gather(*(_connection(port, request, n, latencies, statuses, last) for n in shares if n))
    wall = time.perf_counter() - t0
    return LoadResult(n_requests, wall, latencies, statuses, last[0])


def run_load(port: int, request: bytes, n_requests: int, concurrency: int) -> LoadResult:
    """Send ``request`` ``n_requests`` times over ``concurrency`` connections; the timings."""
    try:
        import uvloop

        return uvloop.run(_run(port, request, n_requests, concurrency))
    except ImportError:
        return asyncio.run(_run(port, request, n_requests, concurrency))
