"""Resume at every batch's cursor equals the rest of a full read (hypothesis)."""

import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onepass.errors import DataError, InvalidParameterError
from onepass.sources import _text, open_source

from .conftest import EXT, dense, label_kw, write_rows

FORMATS = ["csv", "jsonl", "libsvm", "parquet", "npy"]


def _read_all(uri, fmt, **kw):
    out = []
    with open_source(uri, batch_size=kw.pop("batch_size"), **label_kw(fmt), **kw) as src:
        for b in src:
            out.append((dense(b.X), b.y, b.cursor))
        totals = (src.n_rows_read, src.n_skipped, src.n_quarantined)
    return out, totals


@st.composite
def datasets(draw):
    n_files = draw(st.integers(1, 3))
    files = []
    for _ in range(n_files):
        n = draw(st.integers(1, 12))
        X = np.array(draw(st.lists(st.lists(st.integers(-8, 8), min_size=3, max_size=3),
                                   min_size=n, max_size=n)), dtype=np.float64) / 4
        X[:, 0] = np.where(X[:, 0] == 0, 1.0, X[:, 0])  # libsvm: keep the first index
        X[0, 2] = 0.5  # libsvm: the width is seen in each file's first row
        y = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), float)
        bad = set(draw(st.lists(st.integers(1, n - 1), max_size=3))) if n > 1 else set()
        files.append((X, y, bad))
    return files, draw(st.integers(1, 5)), draw(st.sampled_from(["skip", "quarantine"]))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_resume_at_every_cursor(fmt, data):
    files, batch_size, mode = data
    old = _text.BLOCK_BYTES
    _text.BLOCK_BYTES = 40
    root = tempfile.mkdtemp()
    tmp = os.path.join(root, "data")
    os.makedirs(tmp)
    try:
        for k, (X, y, bad) in enumerate(files):
            write_rows(__import__("pathlib").Path(tmp) / f"part{k}{EXT[fmt]}", fmt, X, y, bad)
        q = os.path.join(root, "q.jsonl")
        kw = dict(batch_size=batch_size, on_bad_record=mode,
                  quarantine_file=q if mode == "quarantine" else None)
        full, totals = _read_all(tmp, fmt, **kw)
        q_full = open(q).read() if mode == "quarantine" else None
        n_bad = sum(len(b) for _, _, b in files)
        assert totals == (sum(len(X) for X, _, _ in files) - n_bad,
                          n_bad if mode == "skip" else 0, n_bad if mode == "quarantine" else 0)
        assert json.loads(json.dumps([c for _, _, c in full])) == [c for _, _, c in full]
        for i, (_, _, cursor) in enumerate(full):
            rest, rest_totals = _read_all(tmp, fmt, cursor=cursor, **kw) \
                if i + 1 < len(full) else ([], None)
            if i + 1 == len(full):
                with open_source(tmp, cursor=cursor, **label_kw(fmt), **kw) as src:
                    assert list(src) == []
                    rest_totals = (src.n_rows_read, src.n_skipped, src.n_quarantined)
            assert len(rest) == len(full) - i - 1
            for (Xa, ya, ca), (Xb, yb, cb) in zip(rest, full[i + 1:], strict=False):
                np.testing.assert_array_equal(Xa, Xb)
                np.testing.assert_array_equal(ya, yb)
                assert ca == cb
            assert rest_totals == totals
            if mode == "quarantine":
                assert open(q).read() == q_full
    finally:
        _text.BLOCK_BYTES = old
        shutil.rmtree(root)


def test_cursor_that_does_not_fit(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("1,2\n3,4\n")
    with open_source(path, batch_size=1) as src:
        cursor = next(src).cursor
    with pytest.raises(InvalidParameterError, match="file list changed"):
        open_source(tmp_path / "*.csv", cursor={**cursor, "path": "other.csv"})
    with pytest.raises(DataError, match="beyond the end"):
        list(open_source(path, cursor={**cursor, "offset": 999}))
    with pytest.raises(InvalidParameterError, match="format"):
        open_source(path, cursor={**cursor, "format": "npy"})
    with pytest.raises(InvalidParameterError, match="malformed cursor"):
        open_source(path, cursor={"format": "csv"})


def test_resume_at_end_of_a_file_continues_with_the_next(tmp_path):
    (tmp_path / "a.csv").write_text("1,2\n3,4\n")
    (tmp_path / "b.csv").write_text("5,6\n")
    with open_source(tmp_path, batch_size=10) as src:
        first = next(src)
    assert first.cursor["offset"] == 8 and first.n_rows == 2
    with open_source(tmp_path, cursor=first.cursor) as src:
        rest = list(src)
    assert [b.X.tolist() for b in rest] == [[[5, 6]]] and src.n_rows_read == 3


@pytest.mark.parametrize("nested", [True, False])
def test_jsonl_block_reader_and_line_reader_agree(tmp_path, monkeypatch, nested):
    """JSON lines take pyarrow's block reader when a block is clean, the line-by-line
    reader otherwise: both give the same rows, labels and cursors."""
    from onepass.sources._jsonl import JsonlReader

    rng = np.random.default_rng(5)
    X = np.round(rng.normal(size=(500, 3)), 5)
    path = tmp_path / "d.jsonl"
    with open(path, "w") as f:
        for i, row in enumerate(X):
            rec = {"features": row.tolist(), "label": i % 3} if nested else {"a": row[0], "b": int(i), "y": i % 3}
            f.write(json.dumps(rec) + "\n")
    kw = {} if nested else {"label_column": "y"}

    def read():
        with open_source(str(path), batch_size=128, **kw) as src:
            return [(b.X.copy(), b.y.copy(), dict(b.cursor)) for b in src]

    fast = read()
    calls = []
    monkeypatch.setattr(JsonlReader, "_parse_block_arrow", lambda self, *a: calls.append(1))
    slow = read()
    assert calls  # the block reader was really bypassed
    assert len(fast) == len(slow) == 4
    for (xf, yf, cf), (xs, ys, cs) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(xf, xs)
        np.testing.assert_array_equal(yf, ys)
        assert cf == cs


def test_libsvm_compiled_vectorized_and_line_reader_agree(tmp_path, monkeypatch):
    """Clean libsvm blocks are parsed by the compiled pass, or without a loop over lines;
    blocks with comments, qid or blank lines take the line reader: all three give the
    same rows and cursors."""
    from onepass.sources._libsvm import LibsvmReader

    rng = np.random.default_rng(6)
    lines = []
    for i in range(400):
        idx = np.sort(rng.choice(50, rng.integers(0, 6), replace=False)) + 1
        pairs = " ".join(f"{a}:{rng.normal():.4g}" for a in idx)
        lines.append(f"{i % 2} {pairs}".rstrip() + ("\t" if i % 7 == 0 else "") + ("\r" if i % 11 == 0 else ""))
    path = tmp_path / "d.svm"
    path.write_text("\n".join(lines))  # no final newline

    def read():
        with open_source(str(path), batch_size=128, n_features=60) as src:
            return [(b.X.toarray(), b.y.copy(), dict(b.cursor)) for b in src]

    def spy(name):
        calls = []
        real = getattr(LibsvmReader, name)
        monkeypatch.setattr(LibsvmReader, name, lambda self, *a: calls.append(real(self, *a)) or calls[-1])
        return calls

    compiled = spy("_parse_block_compiled")
    fast = read()
    assert compiled and all(c is not None for c in compiled)  # the compiled pass took every block
    monkeypatch.setattr(LibsvmReader, "_parse_block_compiled", lambda self, *a: None)
    vectorized = spy("_parse_block_vectorized")
    middle = read()
    assert vectorized and all(c is not None for c in vectorized)  # then the vectorized path did
    monkeypatch.setattr(LibsvmReader, "_parse_block_vectorized", lambda self, *a: None)
    slow = read()
    assert len(fast) == len(middle) == len(slow) == 4
    for (xf, yf, cf), (xm, ym, cm), (xs, ys, cs) in zip(fast, middle, slow, strict=True):
        np.testing.assert_array_equal(xf, xs)
        np.testing.assert_array_equal(xm, xs)
        np.testing.assert_array_equal(yf, ys)
        np.testing.assert_array_equal(ym, ys)
        assert cf == cm == cs


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e20, max_value=1e20),
                          st.sampled_from(["{!r}", "{:.3e}", "{:.6f}", "{:g}", "+{:.2f}", "{:.0f}."])),
                min_size=1, max_size=20))
def test_libsvm_compiled_parser_reads_numbers_as_python_does(pairs):
    """The compiled pass reads every number within one float64 rounding of Python's float()
    (labels in float64; feature values in float32, within one float32 ulp)."""
    from onepass.sources._libsvm_kernel import parse

    texts = [fmt.format(v).replace("++", "+").replace("+-", "-") for v, fmt in pairs]
    lines = [f"{t} {i + 1}:{t}" for i, t in enumerate(texts)]
    parsed = parse("\n".join(lines).encode(), 1, len(lines))
    if parsed is None:  # declined (a long exponent): the other paths read the block
        assert any("e" in t.lower() and abs(int(t.lower().split("e")[1])) > 15 for t in texts) or \
            any(len(t.replace("-", "").replace("+", "").replace(".", "").lstrip("0")) > 18 for t in texts)
        return
    labels, indptr, indices, values = parsed
    want = np.array([float(t) for t in texts])
    np.testing.assert_allclose(labels, want, rtol=1e-15, atol=0)
    np.testing.assert_allclose(values, want.astype(np.float32), rtol=1.2e-7, atol=0)
    assert values.dtype == np.float32 and indices.dtype == np.int32
    assert indices.tolist() == list(range(len(texts))) and indptr.tolist() == list(range(len(texts) + 1))
