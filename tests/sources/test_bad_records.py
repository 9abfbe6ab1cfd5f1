"""One test per bad-input case and format, under fail, skip and quarantine."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onepass.errors import BadRecordError, InvalidParameterError
from onepass.sources import open_source

GOOD = {"csv": "1,2,0", "jsonl": '{"features": [1, 2], "label": 0}', "libsvm": "0 1:1 2:2"}
HEAD = {"csv": "a,b,y\n"}

# format, case, bad line, expected line, expected column, expected reason fragment
TEXT_CASES = [
    ("csv", "columns", "1,2", 3, None, "expected 3 columns, got 2"),
    ("csv", "not_number", "1,abc,0", 3, "b", "'abc' is not a number"),
    ("csv", "nan", "1,nan,0", 3, "b", "nan is not allowed"),
    ("csv", "inf", "inf,1,0", 3, "a", "inf is not allowed"),
    ("csv", "label_missing", "1,2,", 3, "y", "label missing"),
    ("jsonl", "columns", '{"features": [1, 2, 3], "label": 0}', 2, "features",
     "expected 2 features, got 3"),
    ("jsonl", "not_number", '{"features": [1, "abc"], "label": 0}', 2, 1,
     '"abc" is not a number'),
    ("jsonl", "nan", '{"features": [NaN, 1], "label": 0}', 2, 0, "nan is not allowed"),
    ("jsonl", "inf", '{"features": [1, 2], "label": Infinity}', 2, "label",
     "inf is not allowed"),
    ("jsonl", "label_missing", '{"features": [1, 2]}', 2, "label", "label missing"),
    ("jsonl", "label_null", '{"features": [1, 2], "label": null}', 2, "label",
     "label missing"),
    ("jsonl", "bad_json", '{"features": [1, 2', 2, None, "invalid JSON"),
    ("libsvm", "not_number", "1 1:abc", 2, 1, "'abc' is not a number"),
    ("libsvm", "nan", "1 1:nan", 2, 1, "nan is not allowed"),
    ("libsvm", "inf", "1 2:-inf", 2, 2, "-inf is not allowed"),
    ("libsvm", "label_missing", "1:2 2:3", 2, None, "label missing"),
    ("libsvm", "index_range", "1 7:1", 2, 7, "feature index 7 is out of range"),
]
EXT = {"csv": "csv", "jsonl": "jsonl", "libsvm": "svm"}


def _write(tmp_path, fmt, bad):
    path = tmp_path / f"data.{EXT[fmt]}"
    path.write_text(HEAD.get(fmt, "") + "\n".join([GOOD[fmt], bad, GOOD[fmt], GOOD[fmt]]) + "\n")
    return path


def _kw(fmt):
    return {"csv": {"label_column": "y"}, "jsonl": {}, "libsvm": {"n_features": 3}}[fmt]


def _read(path, **kw):
    rows = 0
    with open_source(path, batch_size=2, **kw) as src:
        for b in src:
            rows += b.n_rows
    return rows, src


@pytest.mark.parametrize("fmt,case,bad,line,column,reason", TEXT_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in TEXT_CASES])
def test_fail(tmp_path, fmt, case, bad, line, column, reason):
    path = _write(tmp_path, fmt, bad)
    with pytest.raises(BadRecordError) as info:
        _read(path, **_kw(fmt))
    e = info.value
    msg = str(e)
    assert "data." in msg and f"line {line}" in msg and reason in msg
    assert e.line == line and e.column == column and reason in e.reason
    if column is not None:
        assert f"column {column!r}" in msg if isinstance(column, str) else f"column {column}" in msg


@pytest.mark.parametrize("fmt,case,bad,line,column,reason", TEXT_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in TEXT_CASES])
def test_skip(tmp_path, fmt, case, bad, line, column, reason):
    rows, src = _read(_write(tmp_path, fmt, bad), on_bad_record="skip", **_kw(fmt))
    assert rows == 3 and src.n_rows_read == 3
    assert src.n_skipped == 1 and src.n_quarantined == 0


@pytest.mark.parametrize("fmt,case,bad,line,column,reason", TEXT_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in TEXT_CASES])
def test_quarantine(tmp_path, fmt, case, bad, line, column, reason):
    q = tmp_path / "q.jsonl"
    rows, src = _read(_write(tmp_path, fmt, bad), on_bad_record="quarantine",
                      quarantine_file=q, **_kw(fmt))
    assert rows == 3 and src.n_quarantined == 1 and src.n_skipped == 0
    entries = [json.loads(s) for s in q.read_text().splitlines()]
    assert len(entries) == 1
    assert entries[0]["line"] == line and entries[0]["raw"] == bad
    assert entries[0]["column"] == column and reason in entries[0]["reason"]
    assert entries[0]["source"].endswith(f"data.{EXT[fmt]}")


def test_quarantine_needs_file(tmp_path):
    path = _write(tmp_path, "csv", "1,2")
    with pytest.raises(InvalidParameterError, match="quarantine_file"):
        open_source(path, on_bad_record="quarantine")
    with pytest.raises(InvalidParameterError, match="on_bad_record"):
        open_source(path, on_bad_record="ignore")


def test_libsvm_inferred_width_says_pass_n_features(tmp_path):
    path = tmp_path / "d.svm"
    path.write_text("1 1:1 2:1\n0 2:1\n1 5:1\n")
    with pytest.raises(BadRecordError, match=r"line 3 .*n_features.*--n-features"):
        _read(path)
    rows, src = _read(path, n_features=5)
    assert rows == 3 and src.n_features == 5


def test_libsvm_zero_based(tmp_path):
    path = tmp_path / "d.svm"
    path.write_text("1 0:1 2:3\n0 qid:4 1:2 # comment\n")
    with open_source(path, zero_based=True, n_features=3) as src:
        b = next(src)
    assert b.X.toarray().tolist() == [[1, 0, 3], [0, 2, 0]] and b.y.tolist() == [1, 0]
    with pytest.raises(BadRecordError, match="below 1; indices are 1-based"):
        _read(path, n_features=3)


ROW_CASES = [
    ("parquet", "null_label", {"a": [1.0, 2.0, 3.0], "y": [0.0, None, 1.0]}, "y",
     "label missing"),
    ("parquet", "null_feature", {"a": [1.0, None, 3.0], "y": [0.0, 1.0, 1.0]}, "a",
     "missing value"),
    ("parquet", "nan", {"a": [1.0, float("nan"), 3.0], "y": [0.0, 1.0, 1.0]}, "a",
     "nan is not allowed"),
    ("parquet", "inf", {"a": [1.0, 2.0, 3.0], "y": [0.0, float("inf"), 1.0]}, "y",
     "inf is not allowed"),
    ("npy", "nan", np.array([[1.0, 0], [np.nan, 1], [3, 1]]), 0, "nan is not allowed"),
    ("npy", "inf", np.array([[1.0, 0], [2, -np.inf], [3, 1]]), 1, "-inf is not allowed"),
]


def _write_rows(tmp_path, fmt, data):
    path = tmp_path / f"data.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table(data), path, row_group_size=2)
    else:
        np.save(path, data)
    return path


@pytest.mark.parametrize("mode", ["fail", "skip", "quarantine"])
@pytest.mark.parametrize("fmt,case,data,column,reason", ROW_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in ROW_CASES])
def test_row_formats(tmp_path, mode, fmt, case, data, column, reason):
    path = _write_rows(tmp_path, fmt, data)
    q = tmp_path / "q.jsonl"
    kw = {"label_column": "y" if fmt == "parquet" else 1, "on_bad_record": mode,
          "quarantine_file": q if mode == "quarantine" else None}
    if mode == "fail":
        with pytest.raises(BadRecordError) as info:
            _read(path, **kw)
        assert info.value.line == 2 and info.value.column == column
        assert f"line 2 of {path}" in str(info.value) and reason in str(info.value)
        return
    rows, src = _read(path, **kw)
    assert rows == 2
    assert (src.n_skipped, src.n_quarantined) == ((1, 0) if mode == "skip" else (0, 1))
    if mode == "quarantine":
        (entry,) = [json.loads(s) for s in q.read_text().splitlines()]
        assert entry["line"] == 2 and entry["column"] == column and reason in entry["reason"]
        assert entry["raw"]


def test_never_leaks_raw_exceptions(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(Exception) as info:
        _read(path)
    assert type(info.value).__module__ == "onepass.errors" and "x.parquet" in str(info.value)
    path = tmp_path / "x.npy"
    path.write_bytes(b"nope")
    with pytest.raises(Exception) as info:
        _read(path)
    assert type(info.value).__module__ == "onepass.errors" and "x.npy" in str(info.value)
