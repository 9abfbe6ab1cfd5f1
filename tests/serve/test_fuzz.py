"""Fuzzing the real server (a subprocess on loopback) with thousands of malformed requests.

Hypothesis generates bodies (random bytes, valid bodies with bytes flipped, cut or
inserted, arbitrary JSON documents), content types, Accept headers, methods, paths and
raw header lines. The server must answer every one with a status below 500, and still
answer ``/ping`` at the end: no request may crash it, hang it or make it fail.
"""

from __future__ import annotations

import json
import socket

import httpx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.conftest import HOST, KINDS, N_FEATURES, Server

VALID_ROWS = np.random.default_rng(0).normal(size=(4, N_FEATURES)).round(3).tolist()
VALID = {
    "text/csv": "\n".join(",".join(map(str, r)) for r in VALID_ROWS).encode(),
    "application/json": json.dumps({"instances": [{"features": r} for r in VALID_ROWS]}).encode(),
    "application/jsonlines": "\n".join(json.dumps({"features": r}) for r in VALID_ROWS).encode(),
}
SPARSE = json.dumps({"instances": [{"features": {"keys": [0, 3], "shape": [N_FEATURES], "values": [1.5, -2]}}]}).encode()
TYPES = [*VALID, "text/plain", "application/x-recordio-protobuf", "", "text/csv; charset=utf-8",
         "application/json;;", "*/*", "text/csv; label_size=1"]
ACCEPTS = ["application/json", "application/jsonlines", "text/csv", "*/*", "", "image/png", "text/csv;q=0",
           "application/json;q=abc", "text/*, application/*;q=0.5", ",,,", ";q=1"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda children: st.lists(children, max_size=7) | st.dictionaries(
        st.sampled_from(["instances", "features", "data", "keys", "shape", "values", "x"]), children, max_size=4),
    max_leaves=40,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid body with a few bytes replaced, removed or inserted."""
    body = bytearray(draw(st.sampled_from([*VALID.values(), SPARSE])))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["replace", "delete", "insert"]))
        chunk = draw(st.sampled_from([b",", b"\n", b"", b" ", b"nan", b"-", b"e99", b"\x00", b"\xff", b"\"", b"[",
                                      b"]", b"{", b"}", b"1e39", b"true", b"null", b",,", b"\r\n", b"9" * 40]))
        if action == "delete":
            del body[at : at + draw(st.integers(1, 5))]
        elif action == "insert":
            body[at:at] = chunk
        else:
            body[at : at + len(chunk)] = chunk
    return bytes(body)


bodies = st.one_of(
    mutated(),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(json_values, min_size=1, max_size=5).map(lambda vs: "\n".join(json.dumps(v) for v in vs).encode()),
    st.lists(st.lists(st.sampled_from(["1", "-2.5", "", "x", "nan", "1e40", " 3 ", "0x10", "1_0", "+4"]),
                      min_size=1, max_size=8), min_size=1, max_size=6)
    .map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
)


def _check_alive(server: Server) -> None:
    assert server.proc.poll() is None, server.log.read_text()
    assert httpx.get(server.url + "/ping", timeout=10).status_code == 200


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(kind=st.sampled_from(KINDS), content_type=st.sampled_from(TYPES), accept=st.sampled_from(ACCEPTS), body=bodies)
def _fuzz_invocations(clients: dict, kind: str, content_type: str, accept: str, body: bytes) -> None:
    headers = {"content-type": content_type, "accept": accept}
    r = clients[kind].post("/invocations", content=body, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text, body, headers)
    if r.status_code != 200:
        doc = r.json()
        assert doc["message"] and doc["error"]


def _fuzz_every_server(servers: dict[str, Server], fuzz) -> None:  # noqa: ANN001
    """Run ``fuzz(clients)`` (one keep-alive client per model kind), then check every server still answers."""
    clients = {kind: s.client() for kind, s in servers.items()}
    try:
        fuzz(clients)
    finally:
        for c in clients.values():
            c.close()
    for server in servers.values():
        _check_alive(server)


def test_fuzz_invocations_never_5xx(servers: dict[str, Server]) -> None:
    _fuzz_every_server(servers, _fuzz_invocations)


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


def _raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=30) as conn:
        conn.sendall(data)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
    return out


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"]),
       path=st.sampled_from(["/invocations", "/ping", "/metrics", "/openapi.json", "/", "//invocations",
                             "/invocations?x=1", "/%00", "/ping/../invocations", "/invocations#"]),
       headers=st.lists(st.tuples(st.sampled_from(["Content-Type", "Accept", "X-Any", "Content-Encoding",
                                                   "Transfer-Encoding-X", "Expect"]), header_text), max_size=4),
       body=bodies, chunked=st.booleans())
def _fuzz_raw(port: int, method: str, path: str, headers: list, body: bytes, chunked: bool) -> None:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers if k != "Expect"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    response = _raw_request(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    status = int(response.split(b" ", 2)[1])
    assert status < 500, response[:300]


def test_fuzz_raw_http_never_5xx(servers: dict[str, Server]) -> None:
    server = servers["kmeans"]
    _fuzz_raw(int(server.url.rsplit(":", 1)[1]))
    _check_alive(server)


def _recordio_bodies() -> list[bytes]:
    import scipy.sparse as sp

    from onepass.io.recordio_protobuf import encode_rows

    rows = np.asarray(VALID_ROWS, dtype=np.float32)
    return [encode_rows(rows), encode_rows(rows, y=np.arange(len(rows), dtype=np.float32)),
            encode_rows(sp.csr_matrix(np.where(np.abs(rows) > 0.5, rows, 0)))]


@st.composite
def recordio_mutated(draw: st.DrawFn) -> bytes:
    """Valid RecordIO-protobuf records with bytes flipped, cut or inserted, length words
    and magic numbers changed: the server's protobuf path, record by record."""
    body = bytearray(draw(st.sampled_from(_recordio_bodies())))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "length"]))
        if action == "flip" and body:
            body[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "delete":
            del body[at:at + draw(st.integers(1, 9))]
        elif action == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif action == "truncate":
            del body[at:]
        elif len(body) >= 8:  # a record's length word (bytes 4-7 of the first frame) set to anything
            body[4:8] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little")
    return bytes(body)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(kind=st.sampled_from(KINDS), accept=st.sampled_from(["application/x-recordio-protobuf", "application/json"]),
       body=recordio_mutated())
def _fuzz_recordio(clients: dict, kind: str, accept: str, body: bytes) -> None:
    r = clients[kind].post("/invocations", content=body,
                           headers={"content-type": "application/x-recordio-protobuf", "accept": accept})
    assert r.status_code < 500, (r.status_code, r.text, body)
    if r.status_code != 200:
        doc = r.json()
        assert doc["message"] and doc["error"]


def test_fuzz_recordio_protobuf_never_5xx(servers: dict[str, Server]) -> None:
    _fuzz_every_server(servers, _fuzz_recordio)
