"""The server as a trust boundary (issue 20, finding 6): no non-finite answer sent as null
with 200; requests that never arrive whole do not hold the server (408 or closed after a
deadline, other clients answered meanwhile); optional API keys (401 without, 200 with) and
TLS; a warning when it listens beyond loopback unguarded."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from onepass.algorithms import KMeansState
from onepass.batch import Batch
from onepass.io import save_model
from onepass.serve._app import App
from tests.serve.conftest import HOST, KINDS, N_FEATURES, free_port, make_model, start_server
from tests.serve.test_app import request

HUGE = "3.4e38,-3.4e38,3.4e38"
KEY = "k3y-for-the-tests-0123456789abcdef"


def _app(model, **kwargs) -> App:  # noqa: ANN001, ANN003
    app = App(lambda: (model, {}), kind=model.kind, **kwargs)
    app.load_now()
    return app


def _kmeans_3d():  # noqa: ANN202
    rng = np.random.default_rng(0)
    state = KMeansState(n_clusters=2, seed=0)
    state.update(Batch(rng.normal(0, 1, (200, 3)).astype(np.float32)))
    return state.model()


def _holds_null(value) -> bool:  # noqa: ANN001
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_holds_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_null(v) for v in value)
    return False


# -- non-finite answers --------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines", "text/csv"])
def test_kmeans_distance_that_overflows_float32_is_computed_wide(accept: str) -> None:
    model = _kmeans_3d()
    r = request(_app(model), "POST", "/invocations", content=f"0.5,0.5,0.5\n{HUGE}\n",
                headers={"content-type": "text/csv", "accept": accept})
    assert r.status_code == 200, r.text
    assert b"null" not in r.content and b"nan" not in r.content.lower() and b"inf" not in r.content.lower()
    x = np.array([3.4e38, -3.4e38, 3.4e38])
    expected = np.sqrt(((model.cluster_centers_.astype(np.float64) - x) ** 2).sum(axis=1))
    if accept == "application/json":
        second = r.json()["predictions"][1]
        assert second["closest_cluster"] == int(np.argmin(expected))
        assert second["distance_to_cluster"] == pytest.approx(expected.min(), rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_no_model_answers_null_for_huge_features(kind: str) -> None:
    """Every served kind: a row near float32's limit is answered with finite numbers, or 400
    naming that row; never 200 with null."""
    row = (["3.4e38", "-3.4e38"] * N_FEATURES)[:N_FEATURES]
    body = ",".join(["0.1"] * N_FEATURES) + "\n" + ",".join(row) + "\n"
    for accept in ("application/json", "application/jsonlines"):
        r = request(_app(make_model(kind)), "POST", "/invocations", content=body,
                    headers={"content-type": "text/csv", "accept": accept})
        if r.status_code == 200:
            for line in r.text.splitlines():
                assert not _holds_null(json.loads(line)), r.text
        else:
            assert r.status_code == 400 and r.json()["row"] == 2, r.text
            assert "too large" in r.json()["message"]


def test_a_non_finite_output_is_400_naming_the_row() -> None:
    """The codec refuses what JSON cannot hold, whichever model made it (a test double here)."""
    from onepass.errors import BadRecordError
    from onepass.serve._codec import encode

    outputs = {"score": np.array([1.0, np.inf, np.nan], dtype=np.float32), "label": np.array([0, 1, 1])}
    for accept in ("application/json", "application/jsonlines", "text/csv"):
        with pytest.raises(BadRecordError) as info:
            encode(outputs, accept, "predictions")
        assert info.value.line == 2 and "score" in str(info.value)


# -- API keys ------------------------------------------------------------------------------


def test_api_keys_let_in_only_who_sends_one(tmp_path: Path) -> None:
    from onepass.serve._guard import BearerAuth

    app = BearerAuth(_app(_kmeans_3d()), [KEY.encode(), b"another-key-0123456789"])
    body = {"content": "1,2,3\n", "headers": {"content-type": "text/csv"}}
    assert request(app, "GET", "/ping").status_code == 200  # health checks stay open
    r = request(app, "POST", "/invocations", **body)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in r.json()["message"]
    wrong = request(app, "POST", "/invocations", content=body["content"],
                    headers={**body["headers"], "authorization": "Bearer " + KEY[:-1] + "X"})
    assert wrong.status_code == 401 and "invalid_token" in wrong.headers["www-authenticate"]
    assert request(app, "GET", "/metrics").status_code == 401
    for key in (KEY, "another-key-0123456789"):
        ok = request(app, "POST", "/invocations", content=body["content"],
                     headers={**body["headers"], "authorization": f"Bearer {key}"})
        assert ok.status_code == 200, ok.text
    metrics = request(app, "GET", "/metrics", headers={"authorization": f"bearer {KEY}"})
    assert metrics.status_code == 200 and 'status="401"' in metrics.text


def test_api_key_file_refuses_weak_or_empty_files(tmp_path: Path) -> None:
    from onepass.errors import InvalidParameterError
    from onepass.serve._guard import read_api_keys

    path = tmp_path / "keys"
    path.write_text("# keys\n\n" + KEY + "\n")
    assert read_api_keys(path) == [KEY.encode()]
    for text in ("short\n", "# nothing\n\n", "has a space in it, long enough\n"):
        path.write_text(text)
        with pytest.raises(InvalidParameterError):
            read_api_keys(path)


def test_listening_beyond_loopback_unguarded_warns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from onepass.serve._guard import exposure_warning

    assert exposure_warning("127.0.0.1", 8080, has_keys=False, has_tls=False) is None
    assert exposure_warning("::1", 8080, has_keys=False, has_tls=False) is None
    assert exposure_warning("localhost", 8080, has_keys=False, has_tls=False) is None
    open_wide = exposure_warning("0.0.0.0", 8080, has_keys=False, has_tls=False)
    assert open_wide and "0.0.0.0:8080" in open_wide and "/invocations" in open_wide and "--api-key-file" in open_wide
    assert "clear" in exposure_warning("10.1.2.3", 80, has_keys=True, has_tls=False)
    assert exposure_warning("0.0.0.0", 443, has_keys=True, has_tls=True) is None

    from onepass import cli
    from onepass.serve import _server

    calls = []
    monkeypatch.setattr(_server, "run_server", lambda *a, **k: calls.append(k))  # nothing binds
    model_dir = save_model(tmp_path / "m", _kmeans_3d())
    result = CliRunner().invoke(cli.main, ["serve", str(model_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "warning" in result.output and "--api-key-file" in result.output
    keys = tmp_path / "keys"
    keys.write_text(KEY + "\n")
    result = CliRunner().invoke(cli.main, ["serve", str(model_dir), "--api-key-file", str(keys)])
    assert result.exit_code == 0 and "warning" not in result.output
    assert calls[-1]["api_key_file"] == str(keys) and calls[-1]["request_timeout"] == 60.0


# -- a real server: slow clients, keys, deadlines ----------------------------------------------


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("guarded")
    keys = root / "keys"
    keys.write_text(KEY + "\n")
    server = start_server(save_model(root / "m", make_model("kmeans")), root / "log", "--api-key-file", str(keys),
                          "--request-timeout", "2", "--timeout-keep-alive", "5")
    yield server
    assert server.stop() == 0, server.log.read_text()


def _stalled_connection(url: str, *, headers_only: bool = False) -> socket.socket:
    """A connection that sends its headers and part of its body (or part of its headers),
    then nothing more."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    if headers_only:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nhost: x\r\ncontent-ty")
    else:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nhost: x\r\ncontent-type: text/csv\r\n"
                     b"authorization: Bearer " + KEY.encode() + b"\r\ncontent-length: 1000\r\n\r\n1,2,3,4,5\n")
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


def test_slow_clients_do_not_hold_the_server(guarded_server) -> None:  # noqa: ANN001
    """Six connections stall mid-request while four clients keep posting: every client is
    answered, and every stalled connection gets 408 (or is closed) once its deadline passes."""
    stalled = [_stalled_connection(guarded_server.url, headers_only=i % 3 == 0) for i in range(6)]
    answered: list[int] = []
    failures: list[BaseException] = []
    body = "\n".join(",".join(["0.5"] * N_FEATURES) for _ in range(10)) + "\n"
    auth = {"content-type": "text/csv", "authorization": f"Bearer {KEY}"}

    def client() -> None:
        try:
            with guarded_server.client() as c:
                for _ in range(40):  # bounded: 160 requests in all
                    r = c.post("/invocations", content=body, headers=auth)
                    answered.append(r.status_code)
                    time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    replies = [_read_until_closed(s) for s in stalled]  # each ends when the server closes it
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert answered == [200] * 160
    for i, reply in enumerate(replies):
        if i % 3:  # headers sent, body short: the answer is 408 (headers cut short: 408 or closed)
            assert reply.startswith(b"HTTP/1.1 408"), reply
            assert b"--request-timeout" in reply
        assert reply == b"" or reply.startswith(b"HTTP/1.1 408")
    for s in stalled:
        s.close()
    # and the server still answers
    with guarded_server.client() as c:
        assert c.post("/invocations", content=body, headers=auth).status_code == 200


def test_a_real_server_wants_the_key(guarded_server) -> None:  # noqa: ANN001
    body = ",".join(["0.5"] * N_FEATURES) + "\n"
    with guarded_server.client() as c:
        assert c.get("/ping").status_code == 200
        r = c.post("/invocations", content=body, headers={"content-type": "text/csv"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = c.post("/invocations", content=body, headers={"content-type": "text/csv",
                                                           "authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and r.json()["predictions"][0]["closest_cluster"] in (0, 1, 2)


def test_a_connection_that_sends_nothing_is_closed(guarded_server) -> None:  # noqa: ANN001
    host, port = guarded_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        assert _read_until_closed(sock) == b""  # closed by the server after --timeout-keep-alive


# -- TLS -----------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={HOST}",
                    "-addext", f"subjectAltName=IP:{HOST}"], check=True, capture_output=True)
    return cert, key


def test_tls_serves_https_on_loopback(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    model_dir = save_model(tmp_path / "m", make_model("kmeans"))
    port = free_port()
    log = open(tmp_path / "log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "onepass.cli", "serve", str(model_dir), "--host", HOST, "--port",
                             str(port), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"https://{HOST}:{port}"
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60  # a bound on waiting, not a measurement
        while True:
            assert proc.poll() is None, (tmp_path / "log").read_text()
            try:
                if httpx.get(url + "/ping", verify=context, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.05)
        r = httpx.post(url + "/invocations", content=",".join(["0.5"] * N_FEATURES) + "\n",
                       headers={"content-type": "text/csv"}, verify=context)
        assert r.status_code == 200 and r.url.scheme == "https"
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served on the TLS port
            httpx.get(f"http://{HOST}:{port}/ping", timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
