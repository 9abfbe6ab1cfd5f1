"""Request parsing and response encoding, property-based (hypothesis).

Any float32 matrix written as CSV, JSON or JSON Lines parses back to the same numbers,
on both CSV paths (NumPy for small bodies, pyarrow for large ones); any bytes at all
either parse or raise a onepass DataError, never anything else; and an error points at
the row and feature that is wrong.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from onepass.errors import BadRecordError, DataError
from onepass.serve import _codec

finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


def matrices(max_rows: int = 30, max_cols: int = 6):  # noqa: ANN201
    shapes = st.tuples(st.integers(1, max_rows), st.integers(1, max_cols))
    return shapes.flatmap(lambda s: arrays(np.float32, s, elements=finite32))


def to_csv(X: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()


@settings(max_examples=150, deadline=None)
@given(matrices())
def test_csv_round_trip(X: np.ndarray) -> None:
    np.testing.assert_array_equal(_codec.parse_csv(to_csv(X), X.shape[1]), X)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_csv_round_trip_on_the_pyarrow_path(d: int, seed: int) -> None:
    bits = np.random.default_rng(seed).integers(0, 2**32, size=(2000, d), dtype=np.uint32)
    X = bits.view(np.float32)  # every kind of float32: subnormal, huge, negative zero...
    X = np.where(np.isfinite(X), X, np.float32(1.5))
    body = to_csv(X)
    saved = _codec.ARROW_MIN_BYTES
    _codec.ARROW_MIN_BYTES = 1000  # a body of this size takes the pyarrow path
    try:
        np.testing.assert_array_equal(_codec.parse_csv(body, d), X)
    finally:
        _codec.ARROW_MIN_BYTES = saved


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["+4", ".5", "1.", "1E5", " 1 ", "-0", "007", "1e-3", "2"]),
                         min_size=3, max_size=3), min_size=1, max_size=5))
def test_numbers_spelled_outside_json_take_the_careful_path(cells: list[list[str]]) -> None:
    body = "\n".join(",".join(r) for r in cells).encode()
    want = np.array([[float(v) for v in r] for r in cells], dtype=np.float32)
    np.testing.assert_array_equal(_codec.parse_csv(body, 3), want)


@settings(max_examples=100, deadline=None)
@given(matrices())
def test_json_and_jsonlines_round_trip(X: np.ndarray) -> None:
    rows = [[float(v) for v in row] for row in X]
    got = _codec.parse_json(json.dumps({"instances": [{"features": r} for r in rows]}).encode(), X.shape[1])
    np.testing.assert_array_equal(got, X)
    lines = "\n".join(json.dumps({"features": r}) for r in rows).encode()
    np.testing.assert_array_equal(_codec.parse_jsonlines(lines, X.shape[1]), X)


@settings(max_examples=100, deadline=None)
@given(matrices())
def test_sparse_json_equals_dense(X: np.ndarray) -> None:
    X = np.where(np.abs(X) < 1, 0, X).astype(np.float32)
    instances = []
    for row in X:
        keys = np.flatnonzero(row).tolist()
        instances.append({"features": {"keys": keys, "shape": [X.shape[1]], "values": [float(row[k]) for k in keys]}})
    got = _codec.parse_json(json.dumps({"instances": instances}).encode(), X.shape[1])
    assert sp.issparse(got)
    np.testing.assert_array_equal(got.toarray(), X)


@settings(max_examples=150, deadline=None)
@given(matrices(max_rows=8), st.data())
def test_a_bad_value_is_reported_at_its_row_and_feature(X: np.ndarray, data: st.DataObject) -> None:
    n, d = X.shape
    i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, d - 1))
    bad = data.draw(st.sampled_from(["abc", "", "nan", "-inf", "1e40", "1.2.3", "--1", "0x1p3"]))
    assume(not (bad == "" and d == 1))  # an empty line: a blank line, or the end of the body
    cells = [[repr(float(v)) for v in row] for row in X]
    cells[i][j] = bad
    body = "\n".join(",".join(r) for r in cells).encode()
    with pytest.raises(BadRecordError) as info:
        _codec.parse_csv(body, d)
    assert (info.value.line, info.value.column) == (i + 1, j)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 6), st.sampled_from(_codec.REQUEST_TYPES))
def test_any_bytes_parse_or_raise_a_data_error(body: bytes, d: int, content_type: str) -> None:
    try:
        X = _codec.parse(body, content_type, d)
    except DataError:
        return
    assert X.shape[1] == d and X.shape[0] >= 1
    values = X.data if sp.issparse(X) else X
    assert np.isfinite(values).all()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(
        st.sampled_from(["instances", "features", "data", "keys", "shape", "values", "x"]), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.integers(1, 4))
def test_any_json_document_parses_or_raises_a_data_error(doc: object, d: int) -> None:
    body = json.dumps(doc).encode()
    for content_type in ("application/json", "application/jsonlines"):
        try:
            X = _codec.parse(body, content_type, d)
        except DataError:
            continue
        assert X.shape[1] == d
        assert np.isfinite(X.data if sp.issparse(X) else X).all()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20), st.integers(1, 4), st.integers(0, 2**31))
def test_encode_writes_every_row_in_every_type(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    outputs = {"label": rng.integers(0, 9, n), "score": rng.normal(size=n).astype(np.float32),
               "vector": rng.normal(size=(n, d))}
    doc = json.loads(_codec.encode(outputs, "application/json", "predictions"))
    assert [r["label"] for r in doc["predictions"]] == outputs["label"].tolist()
    np.testing.assert_array_equal(np.array([r["score"] for r in doc["predictions"]], dtype=np.float32), outputs["score"])
    np.testing.assert_array_equal([r["vector"] for r in doc["predictions"]], outputs["vector"])
    lines = _codec.encode(outputs, "application/jsonlines", "predictions").decode().splitlines()
    assert [json.loads(line) for line in lines] == doc["predictions"]
    table = np.array([[float(v) for v in line.split(",")]
                      for line in _codec.encode(outputs, "text/csv", "").decode().splitlines()])
    assert table.shape == (n, 2 + d)
    np.testing.assert_array_equal(table[:, 0], outputs["label"])
    np.testing.assert_array_equal(table[:, 1].astype(np.float32), outputs["score"])
    np.testing.assert_array_equal(table[:, 2:], outputs["vector"])
