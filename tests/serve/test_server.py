"""The real server, a subprocess on loopback, over HTTP: every request type, every
response type and every error case, for every model kind (K-Means, PCA, Linear Learner
as binary classifier, multiclass classifier and regressor).

What a client relies on: the answer for each row equals the model's own ``outputs()``
for that row, in the shape SageMaker's built-in algorithm of that kind answers; a
mistake of the client gets a 4xx that says what and where, never a 500; the server
keeps serving after any of them; SIGTERM lets a request in flight finish.
"""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx
import numpy as np
import pytest

from tests.serve.conftest import HOST, N_FEATURES, Server, blobs, start_server

JSON_KEY = {"kmeans": "predictions", "pca": "projections", "linear-learner": "predictions",
            "factorization-machines": "predictions"}
X = blobs(7, seed=11)


def csv_body(X: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X).encode()


def json_body(X: np.ndarray) -> bytes:
    return json.dumps({"instances": [{"features": row.tolist()} for row in X]}).encode()


def jsonl_body(X: np.ndarray) -> bytes:
    return "".join(json.dumps({"features": row.tolist()}) + "\n" for row in X).encode()


BODIES = {"text/csv": csv_body, "application/json": json_body, "application/jsonlines": jsonl_body}


def expected_rows(server: Server, X: np.ndarray) -> list[list[float]]:
    """Each row's outputs flattened, in order, as the model computes them."""
    outputs = server.model.outputs(X)
    columns = [np.asarray(v, dtype=np.float64).reshape(len(X), -1) for v in outputs.values()]
    return np.hstack(columns).tolist()


def rows_of(response: httpx.Response, accept: str, json_key: str) -> list[list[float]]:
    """The answer's rows flattened in field order, whatever its type."""
    if accept == "text/csv":
        return [[float(v) for v in line.split(",")] for line in response.text.splitlines()]
    if accept == "application/json":
        records = response.json()[json_key]
    else:
        records = [json.loads(line) for line in response.text.splitlines()]
    return [[float(x) for v in rec.values() for x in np.ravel(v)] for rec in records]


def assert_rows_equal(got: list[list[float]], want: list[list[float]]) -> None:
    assert len(got) == len(want)
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6, atol=1e-6)


def post(server: Server, body: bytes, content_type: str | None, accept: str | None = None, **kw) -> httpx.Response:
    headers = {}
    if content_type is not None:
        headers["content-type"] = content_type
    if accept is not None:
        headers["accept"] = accept
    return httpx.post(server.url + "/invocations", content=body, headers=headers, timeout=30, **kw)


# -- the happy paths ---------------------------------------------------------------------


def test_ping_is_200_with_an_empty_body(server: Server) -> None:
    r = httpx.get(server.url + "/ping")
    assert r.status_code == 200
    assert r.content == b""


@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines", "text/csv"])
@pytest.mark.parametrize("content_type", list(BODIES))
def test_every_request_type_and_accept_type_gives_the_models_outputs(
        server: Server, content_type: str, accept: str) -> None:
    r = post(server, BODIES[content_type](X), content_type, accept)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == accept
    assert_rows_equal(rows_of(r, accept, JSON_KEY[server.model.kind]), expected_rows(server, X))


def test_json_answer_has_sagemakers_shape(server: Server) -> None:
    r = post(server, csv_body(X[:2]), "text/csv")
    doc = r.json()
    if server.model.kind == "kmeans":
        assert list(doc) == ["predictions"]
        assert [list(p) for p in doc["predictions"]] == [["closest_cluster", "distance_to_cluster"]] * 2
        assert all(isinstance(p["closest_cluster"], int) for p in doc["predictions"])
    elif server.model.kind == "pca":
        assert list(doc) == ["projections"]
        assert [list(p) for p in doc["projections"]] == [["projection"]] * 2
        assert all(len(p["projection"]) == 2 for p in doc["projections"])
    else:
        assert list(doc) == ["predictions"]
        predictions = doc["predictions"]
        predictor_type = server.model.predictor_type
        if predictor_type == "regressor":
            assert [list(p) for p in predictions] == [["score"]] * 2
            assert all(isinstance(p["score"], float) for p in predictions)
        else:
            assert [list(p) for p in predictions] == [["score", "predicted_label"]] * 2
            assert all(isinstance(p["predicted_label"], int) for p in predictions)
            if predictor_type == "binary_classifier":
                assert all(0 <= p["score"] <= 1 and p["predicted_label"] in (0, 1) for p in predictions)
            else:  # one probability per class; the label is the most probable class
                assert all(len(p["score"]) == 3 and abs(sum(p["score"]) - 1) < 1e-5 for p in predictions)
                assert all(p["predicted_label"] == int(np.argmax(p["score"])) for p in predictions)


def test_no_accept_header_means_json(server: Server) -> None:
    r = post(server, csv_body(X), "text/csv", None)
    assert r.headers["content-type"] == "application/json"
    assert_rows_equal(rows_of(r, "application/json", JSON_KEY[server.model.kind]), expected_rows(server, X))


@pytest.mark.parametrize("accept, chosen", [
    ("*/*", "application/json"),
    ("text/*", "text/csv"),
    ("text/html, text/csv;q=0.5, application/json;q=0.4", "text/csv"),
    ("application/json;q=0.2, application/jsonlines", "application/jsonlines"),
    ("application/jsonlines; charset=utf-8", "application/jsonlines"),
])
def test_accept_header_negotiation(server: Server, accept: str, chosen: str) -> None:
    r = post(server, csv_body(X[:1]), "text/csv", accept)
    assert r.status_code == 200
    assert r.headers["content-type"] == chosen


@pytest.mark.parametrize("content_type", ["text/csv; charset=utf-8", "TEXT/CSV", "text/csv;label_size=0"])
def test_content_type_parameters_and_case_are_accepted(server: Server, content_type: str) -> None:
    r = post(server, csv_body(X), content_type)
    assert r.status_code == 200
    assert_rows_equal(rows_of(r, "application/json", JSON_KEY[server.model.kind]), expected_rows(server, X))


def test_csv_line_endings_and_trailing_newlines(server: Server) -> None:
    body = csv_body(X).replace(b"\n", b"\r\n") + b"\r\n\r\n"
    r = post(server, body, "text/csv")
    assert r.status_code == 200, r.text
    assert_rows_equal(rows_of(r, "application/json", JSON_KEY[server.model.kind]), expected_rows(server, X))


def test_a_large_csv_body_is_parsed_the_same(server: Server) -> None:
    big = blobs(12_000, seed=5)  # over the size where the pyarrow parser takes over
    r = post(server, csv_body(big), "text/csv", "text/csv")
    assert len(r.request.content) > 2**20 and r.status_code == 200, r.text
    assert_rows_equal(rows_of(r, "text/csv", ""), expected_rows(server, big))


@pytest.mark.parametrize("make", [
    lambda row: {"features": row},
    lambda row: {"data": {"features": {"values": row}}},
    lambda row: {"instances": [{"data": {"features": {"values": row}}}]},
    lambda row: {"instances": [row]},
])
def test_other_json_forms_of_one_row(server: Server, make) -> None:  # noqa: ANN001
    r = post(server, json.dumps(make(X[0].tolist())).encode(), "application/json")
    assert r.status_code == 200, r.text
    assert_rows_equal(rows_of(r, "application/json", JSON_KEY[server.model.kind]), expected_rows(server, X[:1]))


def test_sparse_json_rows_equal_their_dense_twins(server: Server) -> None:
    dense = X[:3].copy()
    dense[0, [1, 3]] = 0.0
    dense[2, :] = 0.0
    instances = []
    for i, row in enumerate(dense):
        keys = [int(j) for j in np.flatnonzero(row)]
        sparse = {"keys": keys, "shape": [N_FEATURES], "values": [float(row[j]) for j in keys]}
        instances.append({"features": sparse} if i != 1 else {"data": {"features": sparse}})
    r = post(server, json.dumps({"instances": instances}).encode(), "application/json", "application/jsonlines")
    assert r.status_code == 200, r.text
    got = rows_of(r, "application/jsonlines", "")
    np.testing.assert_allclose(np.array(got), np.array(expected_rows(server, dense)), rtol=1e-5, atol=1e-5)
    sparse_lines = b"".join(json.dumps({"features": inst.get("features") or inst["data"]["features"]}).encode()
                            + b"\n" for inst in instances)
    r2 = post(server, sparse_lines, "application/jsonlines", "application/jsonlines")
    assert r2.status_code == 200, r2.text
    assert rows_of(r2, "application/jsonlines", "") == got


def test_keep_alive_connection_serves_many_requests(server: Server) -> None:
    with server.client() as client:
        for i in range(20):
            r = client.post("/invocations", content=csv_body(X[i % 7 : i % 7 + 1]),
                            headers={"content-type": "text/csv"})
            assert r.status_code == 200


# -- errors: the client's, never a 500 ---------------------------------------------------

CSV_ERRORS = [
    # body, status, error, row, feature, words in the message
    (b"", 400, "EmptyBodyError", None, None, "empty"),
    (b"\n\n", 400, "EmptyBodyError", None, None, "empty"),
    (b"1,2,3,4,5\n1,2,3,4\n", 400, "BadRecordError", 2, None, "expected 5 features"),
    (b"1,2,3,4,5,6\n", 400, "BadRecordError", 1, None, "got 6"),
    (b"1,2,3,4,5\n1,2,x,4,5\n", 400, "BadRecordError", 2, 2, "'x' is not a number"),
    (b"1,2,3,4,5\n1,2,,4,5\n", 400, "BadRecordError", 2, 2, "empty field"),
    (b"a,b,c,d,e\n1,2,3,4,5\n", 400, "BadRecordError", 1, 0, "not a number"),
    (b"1,2,3,4,5\n\n1,2,3,4,5\n", 400, "BadRecordError", 2, None, "line is empty"),
    (b"1,2,3,4,nan\n", 400, "BadRecordError", 1, 4, "not a finite"),
    (b"1,2,3,4,5\n1,-inf,3,4,5\n", 400, "BadRecordError", 2, 1, "not a finite"),
    (b"1,2,3,4,1e39\n", 400, "BadRecordError", 1, 4, "float32"),
    (b"1;2;3;4;5\n", 400, "BadRecordError", 1, None, "expected 5 features"),
    ("1,2,3,4,5\n1,2,\u00e9,4,5\n".encode(), 400, "BadRecordError", 2, 2, "not a number"),
    (b"1,2,3,4,5\n\xff\xfe,2,3,4,5\n", 400, "BadRecordError", 2, 0, "not a number"),
]


@pytest.mark.parametrize("body, status, error, row, feature, words", CSV_ERRORS)
def test_csv_errors_say_what_and_where(server: Server, body, status, error, row, feature, words) -> None:  # noqa: ANN001
    r = post(server, body, "text/csv")
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["error"] == error
    assert words in doc["message"]
    assert doc.get("row") == row
    assert doc.get("feature") == feature
    if row is not None:
        assert doc["message"].startswith(f"row {row}" + (f", feature {feature}" if feature is not None else ""))


def test_an_error_deep_in_a_large_csv_body_is_found(server: Server) -> None:
    rows = csv_body(blobs(12_000, seed=2)).split(b"\n")  # over 1 MiB: the pyarrow path
    rows[1499] = rows[1499].replace(b",", b",oops,", 1).rsplit(b",", 1)[0]  # keeps 5 fields, one not a number
    r = post(server, b"\n".join(rows), "text/csv")
    assert r.status_code == 400
    assert (r.json()["row"], r.json()["feature"]) == (1500, 1)
    rows[1499] = b"1,2,3,4"
    r = post(server, b"\n".join(rows), "text/csv")
    assert (r.status_code, r.json()["row"], r.json()["feature"]) == (400, 1500, None)
    rows[1499] = b"1,2,3,4,NaN"
    r = post(server, b"\n".join(rows), "text/csv")
    assert (r.status_code, r.json()["row"], r.json()["feature"]) == (400, 1500, 4)


ROW = [1.0, 2.0, 3.0, 4.0, 5.0]
JSON_ERRORS = [
    (b"", "EmptyBodyError", None, None, "empty"),
    (b"{", "BadRecordError", None, None, "not valid JSON"),
    (b'{"instances": [{"features": [1, 2, 3, 4, NaN]}]}', "BadRecordError", None, None, "not valid JSON"),
    (b"[1, 2, 3, 4, 5]", "BadRecordError", None, None, "expected {\"instances\""),
    (b'{"instances": {"features": [1,2,3,4,5]}}', "BadRecordError", None, None, "must be a list"),
    (b'{"instances": []}', "EmptyBodyError", None, None, "no instances"),
    (json.dumps({"instances": [{"features": ROW}, {"feature": ROW}]}).encode(), "BadRecordError", 2, None, "no \"features\""),
    (json.dumps({"instances": [{"features": ROW}, 7]}).encode(), "BadRecordError", 2, None, "must be an object"),
    (json.dumps({"instances": [{"features": ROW}, {"features": ROW[:4]}]}).encode(), "BadRecordError", 2, None, "expected 5 features, got 4"),
    (json.dumps({"instances": [{"features": [1, 2, "3", 4, 5]}]}).encode(), "BadRecordError", 1, 2, '"3" is not a number'),
    (json.dumps({"instances": [{"features": [1, 2, 3, None, 5]}]}).encode(), "BadRecordError", 1, 3, "null is not a number"),
    (json.dumps({"instances": [{"features": ROW}, {"features": [1, True, 3, 4, 5]}]}).encode(), "BadRecordError", 2, 1, "true is not a number"),
    (json.dumps({"instances": [{"features": [1, 2, 3, 4, [5]]}]}).encode(), "BadRecordError", 1, 4, "[5] is not a number"),
    (json.dumps({"instances": [{"features": [1, 2, 3, 4, 1e39]}]}).encode(), "BadRecordError", 1, 4, "float32"),
    (b'{"instances": [{"features": [1, 2, 3, 4, 1e999]}]}', "BadRecordError", None, None, "infinity"),
    (json.dumps({"instances": [{"features": "1,2,3,4,5"}]}).encode(), "BadRecordError", 1, None, "list of numbers"),
    (json.dumps({"features": {"keys": [0, 9], "shape": [5], "values": [1, 2]}}).encode(), "BadRecordError", 1, None, "key 9"),
    (json.dumps({"features": {"keys": [1, 1], "shape": [5], "values": [1, 2]}}).encode(), "BadRecordError", 1, 1, "twice"),
    (json.dumps({"features": {"keys": [0, 1], "shape": [5], "values": [1]}}).encode(), "BadRecordError", 1, None, "as long as"),
    (json.dumps({"features": {"keys": [0], "shape": [6], "values": [1]}}).encode(), "BadRecordError", 1, None, "shape [6]"),
    (json.dumps({"features": {"keys": [0], "shape": [5], "values": ["a"]}}).encode(), "BadRecordError", 1, 0, "not a finite number"),
    (json.dumps({"features": {"keys": [0.5], "shape": [5], "values": [1]}}).encode(), "BadRecordError", 1, None, "key 0.5"),
    (json.dumps({"features": {"keys": [0], "values": [1], "extra": 1}}).encode(), "BadRecordError", 1, None, "unknown field"),
]


@pytest.mark.parametrize("body, error, row, feature, words", JSON_ERRORS)
def test_json_errors_say_what_and_where(server: Server, body, error, row, feature, words) -> None:  # noqa: ANN001
    r = post(server, body, "application/json")
    assert r.status_code == 400, r.text
    doc = r.json()
    assert (doc["error"], doc.get("row"), doc.get("feature")) == (error, row, feature), doc
    assert words in doc["message"], doc["message"]


@pytest.mark.parametrize("body, error, row, feature, words", [
    (b"", "EmptyBodyError", None, None, "empty"),
    (b"\n  \n", "EmptyBodyError", None, None, "empty"),
    (b'{"features": [1,2,3,4,5]}\n{"features": [1,2,3,4,5]\n', "BadRecordError", 2, None, "not valid JSON"),
    (b'{"features": [1,2,3,4,5]}\n{"features": [1,2,3,4]}\n', "BadRecordError", 2, None, "expected 5 features"),
    (b'{"features": [1,2,3,4,5]}\n{"features": [1,2,3,4,5]}\n{"features": [1,2,"x",4,5]}\n', "BadRecordError", 3, 2, "not a number"),
    (b'{"features": [1,2,3,4,5]}\n\n{"features": [1,2,3,4,5]}\n', "BadRecordError", 2, None, "line is empty"),
])
def test_jsonlines_errors_say_what_and_where(server: Server, body, error, row, feature, words) -> None:  # noqa: ANN001
    r = post(server, body, "application/jsonlines")
    assert r.status_code == 400, r.text
    doc = r.json()
    assert (doc["error"], doc.get("row"), doc.get("feature")) == (error, row, feature), doc
    assert words in doc["message"]


@pytest.mark.parametrize("content_type, words", [
    (None, "no Content-Type"),
    ("text/plain", "'text/plain' is not served"),
    ("csv", "did you mean 'text/csv'"),
    ("application/x-protobuf", "Send one of: text/csv, application/json, application/jsonlines, "
                               "application/x-recordio-protobuf"),
    ("multipart/form-data; boundary=x", "not served"),
])
def test_unsupported_content_type_is_415(server: Server, content_type: str | None, words: str) -> None:
    r = post(server, csv_body(X), content_type)
    assert r.status_code == 415
    assert r.json()["error"] == "UnsupportedMediaTypeError"
    assert words in r.json()["message"]


@pytest.mark.parametrize("accept", ["image/png", "application/x-protobuf", "text/csv;q=0", "text/html, image/*"])
def test_unacceptable_accept_is_406(server: Server, accept: str) -> None:
    r = post(server, csv_body(X), "text/csv", accept)
    assert r.status_code == 406
    assert r.json()["error"] == "NotAcceptableError"
    assert "application/json, application/jsonlines, text/csv, application/x-recordio-protobuf" in r.json()["message"]


def test_unknown_route_is_404_and_wrong_method_405(server: Server) -> None:
    r = httpx.get(server.url + "/predict")
    assert r.status_code == 404 and "/invocations" in r.json()["message"]
    r = httpx.get(server.url + "/invocations")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = httpx.post(server.url + "/ping")
    assert r.status_code == 405 and r.headers["allow"] == "GET"


def test_the_server_still_answers_after_every_error(server: Server) -> None:
    for body, *_ in CSV_ERRORS:
        post(server, body, "text/csv")
    r = post(server, csv_body(X), "text/csv")
    assert r.status_code == 200
    assert httpx.get(server.url + "/ping").status_code == 200


# -- payload limit ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_limit_server(model_dirs, tmp_path_factory):  # noqa: ANN001, ANN201
    server = start_server(model_dirs["kmeans"], tmp_path_factory.mktemp("limit") / "log",
                          "--max-payload-mb", str(20_000 / 2**20))  # 20,000 bytes
    yield server
    assert server.stop() == 0


def test_a_body_over_the_limit_is_413_declared_or_streamed(small_limit_server: Server) -> None:
    under = csv_body(blobs(200, seed=3))
    assert len(under) < 20_000
    assert post(small_limit_server, under, "text/csv").status_code == 200
    over = csv_body(blobs(1000, seed=3))
    assert len(over) > 20_000
    r = post(small_limit_server, over, "text/csv")  # Content-Length says it all
    assert r.status_code == 413
    assert r.json()["error"] == "PayloadTooLargeError" and "20000 bytes" in r.json()["message"]

    def chunks():  # noqa: ANN202  (no Content-Length: chunked transfer encoding)
        for i in range(0, len(over), 4096):
            yield over[i : i + 4096]

    r = httpx.post(small_limit_server.url + "/invocations", content=chunks(), headers={"content-type": "text/csv"})
    assert r.status_code == 413
    assert httpx.get(small_limit_server.url + "/ping").status_code == 200


def test_default_limit_is_6_mib(server: Server) -> None:
    r = httpx.get(server.url + "/execution-parameters")
    assert r.json() == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
    r = post(server, b"1" * (6 * 2**20 + 1), "text/csv")
    assert r.status_code == 413


# -- metrics and OpenAPI ----------------------------------------------------------------


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_rows_and_latency(server: Server) -> None:
    before = httpx.get(server.url + "/metrics")
    assert before.headers["content-type"].startswith("text/plain")
    for _ in range(3):
        assert post(server, csv_body(X), "text/csv").status_code == 200
    assert post(server, b"1,2\n", "text/csv").status_code == 400
    after = httpx.get(server.url + "/metrics").text
    b = before.text
    assert _metric(after, "onepass_rows_predicted_total") - _metric(b, "onepass_rows_predicted_total") == 3 * len(X)
    for status, n in (("200", 3), ("400", 1)):
        labels = {"route": "/invocations", "status": status}
        assert _metric(after, "onepass_requests_total", **labels) - _metric(b, "onepass_requests_total", **labels) == n
        count = _metric(after, "onepass_request_duration_seconds_count", **labels)
        assert count == _metric(after, "onepass_requests_total", **labels)
        assert _metric(after, "onepass_request_duration_seconds_bucket", le="+Inf", **labels) == count
        assert _metric(after, "onepass_request_duration_seconds_sum", **labels) > 0
    assert f'kind="{server.model.kind}"' in after
    assert "onepass_model_info{" in after and 'version="' in after


def test_openapi_describes_the_routes_and_types(server: Server) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {"/ping", "/invocations", "/metrics"}
    invocations = doc["paths"]["/invocations"]["post"]
    assert set(invocations["requestBody"]["content"]) == set(BODIES)
    assert set(invocations["responses"]) >= {"200", "400", "406", "413", "415"}
    schema = invocations["responses"]["200"]["content"]["application/json"]["schema"]
    assert list(schema["properties"]) == [JSON_KEY[server.model.kind]]


# -- process life -------------------------------------------------------------------------


def test_sigterm_lets_a_request_in_flight_finish(model_dirs, tmp_path) -> None:  # noqa: ANN001
    server = start_server(model_dirs["kmeans"], tmp_path / "log")
    port = int(server.url.rsplit(":", 1)[1])
    body = csv_body(X)
    with socket.create_connection((HOST, port), timeout=30) as conn:
        head = (f"POST /invocations HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/csv\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode()
        conn.sendall(head)
        # "100 Continue" comes once the app waits for the body: the request is in flight.
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += conn.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30  # bound on waiting for the listener to close
        while time.monotonic() < deadline:  # shutdown has begun once new connections are refused
            try:
                socket.create_connection((HOST, port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the server kept accepting connections after SIGTERM")
        assert server.proc.poll() is None  # still running: the request is not done
        conn.sendall(body)
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert len(json.loads(response.split(b"\r\n\r\n", 1)[1])["predictions"]) == len(X)
    assert server.proc.wait(timeout=60) == 0


def test_several_workers_serve_and_report_their_metrics_together(model_dirs, tmp_path) -> None:  # noqa: ANN001
    server = start_server(model_dirs["pca"], tmp_path / "log", "--workers", "2")
    try:
        def count(text: str) -> tuple[float, float]:
            return (_metric(text, "onepass_requests_total", route="/invocations", status="200"),
                    _metric(text, "onepass_rows_predicted_total"))

        # start_server returned once one worker answered /ping; the other may still be loading
        # its model (503 until then): wait for 20 answers in a row, each on a new connection
        deadline, in_a_row = time.monotonic() + 60, 0  # a bound on waiting, not a measurement
        while in_a_row < 20 and time.monotonic() < deadline:
            in_a_row = in_a_row + 1 if httpx.get(server.url + "/ping").status_code == 200 else 0
        before = count(httpx.get(server.url + "/metrics").text)
        for _ in range(30):  # a new connection each: either worker takes it
            r = post(server, csv_body(X), "text/csv")
            assert r.status_code == 200
            assert_rows_equal(rows_of(r, "application/json", "projections"), expected_rows(server, X))
        for _ in range(10):  # whichever worker answers the scrape reports them all
            requests, rows = count(httpx.get(server.url + "/metrics").text)
            assert (requests - before[0], rows - before[1]) == (30, 30 * len(X))
        assert "pid=" not in httpx.get(server.url + "/metrics").text
    finally:
        assert server.stop() == 0


def test_serve_refuses_a_directory_that_is_not_a_model(tmp_path, model_dirs) -> None:  # noqa: ANN001
    import subprocess
    import sys

    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "onepass.cli", "serve", str(tmp_path / "empty"), "--port", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "no manifest.json" in proc.stderr


@pytest.mark.parametrize("missing", ["uvicorn", "orjson"])
def test_serve_without_the_serve_extra_says_how_to_get_it(model_dirs, missing: str) -> None:  # noqa: ANN001
    import subprocess
    import sys

    code = (f"import sys; sys.modules[{missing!r}] = None; from onepass.cli import main; "
            f"main(['serve', {str(model_dirs['kmeans'])!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"needs the 'serve' extra ({missing} is missing): pip install 'onepass[serve]'" in proc.stderr
