"""The ASGI app in process (httpx's ASGI transport): readiness, every registered
algorithm servable, adapters found by introspection, and the 500 path kept for real
server faults (so that "never a 5xx" in the other tests is a check that can fail)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import numpy as np
import pytest

from onepass.algorithms import load_all
from onepass.batch import Batch
from onepass.errors import BadRecordError, EmptyBodyError, http_status
from onepass.serve import create_app
from onepass.serve._app import App, accept_of, content_type_of
from onepass.serve.adapters import DEFAULT, Adapter, adapter_for, adapters
from onepass.state import ALGORITHMS
from tests.serve.conftest import blobs, make_model

load_all()  # fills the registry


def request(app: App, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def csv(X: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X).encode()


def loaded_app(model: Any, **kwargs: Any) -> App:
    app = App(lambda: (model, {}), kind=model.kind, **kwargs)
    app.load_now()
    return app


def test_ping_and_invocations_are_503_until_the_model_is_loaded() -> None:
    release = threading.Event()
    model = make_model("kmeans")

    def slow_load():  # noqa: ANN202
        release.wait(30)
        return model, {}

    app = App(slow_load, kind="kmeans")
    loader = threading.Thread(target=app.load_now)
    loader.start()
    assert request(app, "GET", "/ping").status_code == 503
    r = request(app, "POST", "/invocations", content=csv(blobs(2, 0)), headers={"content-type": "text/csv"})
    assert r.status_code == 503 and "still loading" in r.json()["message"]
    release.set()
    loader.join()
    assert request(app, "GET", "/ping").status_code == 200
    r = request(app, "POST", "/invocations", content=csv(blobs(2, 0)), headers={"content-type": "text/csv"})
    assert r.status_code == 200


def test_a_model_that_fails_to_load_is_503_with_the_reason() -> None:
    def broken():  # noqa: ANN202
        raise OSError("disk on fire")

    app = App(broken, kind="kmeans")
    app.load_now()
    r = request(app, "GET", "/ping")
    assert r.status_code == 503 and "disk on fire" in r.json()["message"]


def test_create_app_reads_the_model_directory(tmp_path) -> None:  # noqa: ANN001
    from onepass.io import save_model

    model = make_model("pca")
    app = create_app(save_model(tmp_path / "m", model))
    app.load_now()
    X = blobs(4, 3)
    r = request(app, "POST", "/invocations", content=csv(X), headers={"content-type": "text/csv"})
    np.testing.assert_allclose([p["projection"] for p in r.json()["projections"]], model.transform(X), rtol=1e-6)


def _labels(kind: str | None, X: np.ndarray) -> np.ndarray | None:
    """Labels for a supervised algorithm (its registry tag ``labels``), None for the others."""
    if kind is None:
        return None
    if kind == "binary":
        return (X @ np.linspace(-1, 1, X.shape[1]) > 0).astype(np.float32)
    raise ValueError(f"unknown labels tag {kind!r}: teach this test how to make such labels")


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_registered_algorithm_is_served(name: str) -> None:
    """Found from the registry: a new algorithm is served, by its adapter or the default one."""
    algo = ALGORITHMS[name]
    state = algo.state(**algo.tags.get("test_params", {}), seed=0)
    if algo.tags.get("series"):  # a forecaster: series in, SageMaker DeepAR's request and answer
        from tests.conformance.checks import data

        series = [{"start": "2026-01-01 00:00:00", "target": row.tolist(), "cat": [i % 2]}
                  for i, row in enumerate(blobs(200, seed=1))]
        state.update(Batch(data(algo, blobs(2000, seed=1))))
        model = state.model()
        r = request(loaded_app(model), "POST", "/invocations", content=json.dumps({"instances": series[:6]}),
                    headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == model.forecast(series[:6])
        return
    counts = (lambda X: np.round(np.abs(X))) if algo.tags.get("documents") else (lambda X: X)  # topic models
    X_train = counts(blobs(2000, seed=1))
    state.update(Batch(X_train, _labels(algo.tags.get("labels"), X_train)))
    model = state.model()
    app = loaded_app(model)
    X = counts(blobs(6, seed=2))
    expected = model.outputs(X)
    for accept in ("application/json", "application/jsonlines", "text/csv"):
        r = request(app, "POST", "/invocations", content=csv(X), headers={"content-type": "text/csv", "accept": accept})
        assert r.status_code == 200, r.text
    r = request(app, "POST", "/invocations", content=csv(X), headers={"content-type": "text/csv"})
    records = r.json()[adapter_for(model.kind).json_key]
    assert len(records) == len(X)
    for field, values in expected.items():
        np.testing.assert_allclose(np.array([rec[field] for rec in records], dtype=np.float64),
                                   np.asarray(values, dtype=np.float64), rtol=1e-6, atol=1e-6)


def test_adapters_are_found_by_introspection_one_per_kind() -> None:
    found = adapters()
    assert {"kmeans", "pca"} <= set(found)
    assert found["kmeans"].json_key == "predictions"
    assert found["pca"].json_key == "projections"
    assert adapter_for("some-future-kind") is DEFAULT
    model_kinds = {algo.model.kind for algo in ALGORITHMS.values()}
    assert set(found) <= model_kinds, "an adapter for a model kind no algorithm has"


def test_an_adapter_decides_the_response_fields() -> None:
    model = make_model("kmeans")
    app = loaded_app(model)
    app.adapter = Adapter(kind="kmeans", json_key="labels",
                          outputs=lambda m, X: {"label": m.predict(X)})
    X = blobs(3, seed=4)
    r = request(app, "POST", "/invocations", content=csv(X), headers={"content-type": "text/csv"})
    assert r.json() == {"labels": [{"label": int(v)} for v in model.predict(X)]}


def test_a_fault_of_the_server_is_a_500_that_hides_the_details(caplog) -> None:  # noqa: ANN001
    app = loaded_app(make_model("kmeans"))

    def boom(model: Any, X: Any) -> dict:
        raise RuntimeError("secret internals")

    app.adapter = Adapter(kind="kmeans", outputs=boom)
    r = request(app, "POST", "/invocations", content=csv(blobs(1, 0)), headers={"content-type": "text/csv"})
    assert r.status_code == 500
    assert r.json()["error"] == "InternalError" and "secret" not in r.text
    assert "secret internals" in caplog.text  # the log keeps the details
    metrics = request(app, "GET", "/metrics").text
    assert 'onepass_requests_total{route="/invocations",status="500"' in metrics


def test_errors_map_to_statuses_in_one_place() -> None:
    assert http_status(BadRecordError("x", line=1)) == 400
    assert http_status(EmptyBodyError("x")) == 400
    assert http_status(RuntimeError("x")) == 500


@pytest.mark.parametrize("header, chosen", [
    (None, "application/json"), (b"", "application/json"), (b"*/*", "application/json"),
    (b"text/csv", "text/csv"), (b"application/json;q=0.1, text/csv;q=0.9", "text/csv"),
    (b"application/jsonlines;q=0.5, application/json;q=0.5", "application/jsonlines"),
    (b"application/x-ndjson", "application/jsonlines"), (b"text/csv;q=abc, application/json", "application/json"),
])
def test_accept_parsing(header: bytes | None, chosen: str) -> None:
    assert accept_of(header) == chosen


@pytest.mark.parametrize("header, chosen", [
    (b"text/csv", "text/csv"), (b"Application/JSON; charset=utf-8", "application/json"),
    (b"application/jsonlines", "application/jsonlines"), (b"application/x-jsonlines", "application/jsonlines"),
])
def test_content_type_parsing(header: bytes, chosen: str) -> None:
    assert content_type_of(header) == chosen


def test_repeated_bad_headers_still_raise_fresh_errors() -> None:
    """Header parsing is memoized; a remembered refusal must still refuse, every time."""
    app = loaded_app(make_model("kmeans"))
    for _ in range(3):
        r = request(app, "POST", "/invocations", content=b"1", headers={"content-type": "text/xml"})
        assert r.status_code == 415
        r = request(app, "POST", "/invocations", content=b"1", headers={"content-type": "text/csv", "accept": "x/y"})
        assert r.status_code == 406
