"""RecordIO-protobuf, SageMaker's binary format: files written by the official SageMaker
Python SDK (v2) read back as the same rows, train the same models as the same rows in CSV,
resume exactly, and damaged files give a clear error naming file, record and byte offset
(or are counted under ``on_bad_record="skip"``), never a crash."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from onepass.errors import BadRecordError, DataError, OnePassError
from onepass.io import load_model
from onepass.io.recordio_protobuf import decode_rows, encode_outputs, encode_rows
from onepass.sources import open_source

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
common = pytest.importorskip("sagemaker.amazon.common")


def _sdk_dense(path: Path, X: np.ndarray, y: np.ndarray | None = None) -> Path:
    with open(path, "wb") as f:
        common.write_numpy_to_dense_tensor(f, X, y)
    return path


def _sdk_sparse(path: Path, X, y: np.ndarray | None = None) -> Path:
    with open(path, "wb") as f:
        common.write_spmatrix_to_sparse_tensor(f, X, y)
    return path


def _read_all(path, **kw):
    Xs, ys, cursors = [], [], []
    with open_source(path, **kw) as src:
        for b in src:
            Xs.append(b.X)
            ys.append(b.y)
            cursors.append(b.cursor)
    X = sp.vstack(Xs, format="csr") if sp.issparse(Xs[0]) else np.concatenate(Xs)
    y = None if ys[0] is None else np.concatenate(ys)
    return X, y, cursors, src


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 6, (3, 5))
    labels = rng.integers(0, 3, 3000)
    X = (centers[labels] + rng.standard_normal((3000, 5))).astype(np.float32)
    y = (X @ rng.normal(0, 1, 5) > 0).astype(np.float32)
    return X, y


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("y_dtype", [None, np.float32, np.float64, np.int64])
def test_sdk_dense_reads_back(tmp_path, blobs, x_dtype, y_dtype):
    X, y = blobs
    Xw = (X * 10).astype(x_dtype) if x_dtype == np.int64 else X.astype(x_dtype)
    yw = None if y_dtype is None else y.astype(y_dtype)
    path = _sdk_dense(tmp_path / "d.rec", Xw, yw)
    got, goty, cursors, _ = _read_all(path, batch_size=700)
    np.testing.assert_array_equal(got, Xw.astype(np.float32))
    assert got.dtype == np.float32
    if yw is None:
        assert goty is None
    else:
        np.testing.assert_array_equal(goty, y)
    assert cursors[-1]["offset"] == path.stat().st_size and cursors[-1]["line"] == len(X)


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_sdk_sparse_reads_back(tmp_path, x_dtype):
    S = sp.random(800, 40, density=0.1, format="csr", random_state=1, dtype=x_dtype)
    S = sp.csr_matrix(S.multiply((np.arange(800) != 5)[:, None]))  # row 5 empty: no keys, no values, shape only
    S.eliminate_zeros()
    y = np.arange(800) % 2
    path = _sdk_sparse(tmp_path / "s.pbr", S, y)
    got, goty, _, src = _read_all(path, batch_size=300)
    assert sp.issparse(got) and got.dtype == np.float32 and got.shape == (800, 40)
    assert abs(got - S.astype(np.float32)).max() == 0
    np.testing.assert_array_equal(goty, y)
    assert src.n_features == 40


def test_our_writer_read_by_the_sdk(blobs):
    X, y = blobs
    records = common.read_records(io.BytesIO(encode_rows(X[:50], y[:50])))
    assert len(records) == 50
    np.testing.assert_array_equal(records[7].features["values"].float32_tensor.values, X[7])
    assert records[7].label["values"].float32_tensor.values[0] == y[7]
    S = sp.csr_matrix(X[:20] * (X[:20] > 0))
    records = common.read_records(io.BytesIO(encode_rows(S)))
    t = records[3].features["values"].float32_tensor
    assert list(t.keys) == S[3].indices.tolist() and list(t.shape) == [5]
    out = {"closest_cluster": np.array([0.0, 2.0]), "distance_to_cluster": np.array([1.5, 0.25]),
           "projection": np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])}
    records = common.read_records(io.BytesIO(encode_outputs(out)))
    assert [r.label["closest_cluster"].float32_tensor.values[0] for r in records] == [0.0, 2.0]
    assert list(records[1].label["projection"].float32_tensor.values) == [4.0, 5.0, 6.0]
    assert all(len(r.features) == 0 for r in records)


def test_decode_rows_of_a_request(blobs):
    X, _ = blobs
    body = io.BytesIO()
    common.write_numpy_to_dense_tensor(body, X[:10].astype(np.float64))
    got, y = decode_rows(body.getvalue())
    np.testing.assert_array_equal(got, X[:10])
    assert y is None
    with pytest.raises(BadRecordError, match="record 1, byte offset 0: wrong magic number"):
        decode_rows(b"\0" * 16)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onepass.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("algo, extra", [
    ("kmeans", ["--n-clusters", "3"]),
    ("pca", ["--n-components", "2"]),
    ("linear-learner", ["--predictor-type", "binary_classifier"]),
])
def test_cli_train_same_model_as_csv(tmp_path, blobs, algo, extra):
    X, y = blobs
    _sdk_dense(tmp_path / "train.rec", X, y)
    np.savetxt(tmp_path / "train.csv", np.column_stack([y, X]), delimiter=",", fmt="%.9g")
    common_args = [*extra, "--seed", "3", "--batch-size", "500"]
    rec = run_cli("train", algo, "--data", "train.rec", "--out", "m-rec", *common_args, cwd=tmp_path)
    assert rec.returncode == 0, rec.stderr
    csv = run_cli("train", algo, "--data", "train.csv", "--label-column", "0", "--out", "m-csv", *common_args,
                  cwd=tmp_path)
    assert csv.returncode == 0, csv.stderr
    a, _ = load_model(tmp_path / "m-rec")
    b, _ = load_model(tmp_path / "m-csv")
    _, arrays_a = a.to_arrays()
    _, arrays_b = b.to_arrays()
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k], err_msg=k)


# -- resume --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["dense", "sparse", "damaged"])
def test_resume_from_every_cursor_is_exact(tmp_path, blobs, kind):
    X, y = blobs
    X, y = X[:400], y[:400]
    if kind == "sparse":
        path = _sdk_sparse(tmp_path / "a.rec", sp.csr_matrix(X * (X > 0)), y)
    else:
        path = _sdk_dense(tmp_path / "a.rec", X, y)
    kw = dict(batch_size=37)
    if kind == "damaged":  # three bad records: a wrong magic, a garbage message, a NaN
        data = bytearray(path.read_bytes())
        stride = len(data) // 400
        data[stride * 10:stride * 10 + 4] = b"XXXX"
        data[stride * 50 + 8:stride * 50 + 12] = b"\xff\xff\xff\xff"
        data[stride * 90 + 12:stride * 90 + 16] = struct.pack("<f", np.nan)
        path.write_bytes(bytes(data))
        kw["on_bad_record"] = "skip"
    full, fully, cursors, src = _read_all(path, **kw)
    if kind == "damaged":
        assert src.n_skipped == 3 and full.shape[0] == 397
    dense = full.toarray() if sp.issparse(full) else full
    for cursor in cursors[:-1]:
        rest, resty, _, again = _read_all(path, cursor=json.loads(json.dumps(cursor)), **kw)
        rest = rest.toarray() if sp.issparse(rest) else rest
        np.testing.assert_array_equal(rest, dense[cursor["rows"]:])
        np.testing.assert_array_equal(resty, fully[cursor["rows"]:])
        assert again.n_skipped == src.n_skipped


def test_training_killed_mid_file_resumes_to_the_same_model(tmp_path, blobs):
    X, y = blobs
    _sdk_dense(tmp_path / "train.rec", X, y)
    args = ["train", "kmeans", "--data", "train.rec", "--n-clusters", "3", "--seed", "2", "--batch-size", "200",
            "--checkpoint-every-rows", "400"]
    whole = run_cli(*args, "--checkpoint-dir", "ckpt-whole", "--out", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    env = {**os.environ, "ONEPASS_FAILPOINT": "checkpoint.before_latest:3"}
    killed = subprocess.run([sys.executable, "-m", "onepass.cli", *args, "--checkpoint-dir", "ckpt", "--resume",
                             "--out", "resumed"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert killed.returncode == -9, killed.stderr
    resumed = run_cli(*args, "--checkpoint-dir", "ckpt", "--resume", "--out", "resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, _ = load_model(tmp_path / "whole")
    b, _ = load_model(tmp_path / "resumed")
    for k, v in a.to_arrays()[1].items():
        np.testing.assert_array_equal(v, b.to_arrays()[1][k], err_msg=k)


# -- damaged files ------------------------------------------------------------------------

def test_bad_records_name_file_record_and_offset(tmp_path, blobs):
    X, y = blobs
    path = _sdk_dense(tmp_path / "d.rec", X[:20], y[:20])
    data = path.read_bytes()
    stride = len(data) // 20
    (tmp_path / "magic.rec").write_bytes(data[:stride * 3] + b"\0\0\0\0" + data[stride * 3 + 4:])
    with pytest.raises(BadRecordError, match=rf"magic\.rec: record 4, byte offset {stride * 3}: wrong magic number"):
        _read_all(tmp_path / "magic.rec")
    (tmp_path / "short.rec").write_bytes(data[:-5])
    with pytest.raises(BadRecordError, match=rf"short\.rec: record 20, byte offset {stride * 19}: a truncated record"):
        _read_all(tmp_path / "short.rec")
    _, _, _, src = _read_all(tmp_path / "magic.rec", on_bad_record="skip")
    assert src.n_skipped == 1 and src.n_rows_read == 19
    q = tmp_path / "q.jsonl"
    _read_all(tmp_path / "short.rec", on_bad_record="quarantine", quarantine_file=q)
    entry = json.loads(q.read_text())
    assert entry["line"] == 20 and "truncated" in entry["reason"] and entry["raw"]


def test_multipart_records_are_joined():
    # dmlc splits a record where its bytes hold the magic word; the reader puts it back
    magic = struct.pack("<I", 0xCED7230A)
    row = np.array([[1.0, np.frombuffer(magic, "<f4")[0], 2.0]], dtype=np.float32)
    framed = encode_rows(row)
    payload = framed[8:8 + struct.unpack_from("<I", framed, 4)[0]]
    at = payload.index(magic)
    data = b""
    for flag, part in ((1, payload[:at]), (3, payload[at + 4:])):
        data += struct.pack("<II", 0xCED7230A, (flag << 29) | len(part)) + part + b"\0" * (-len(part) & 3)
    X, _ = decode_rows(data + encode_rows(row))
    np.testing.assert_array_equal(X.view(np.uint32), np.vstack([row, row]).view(np.uint32))
    with pytest.raises(BadRecordError, match="record 1, byte offset 0: a record split in parts"):
        decode_rows(data[:-12])


def _mutations(rng, data: bytes, stride: int):
    n = len(data)
    kind = rng.integers(0, 7)
    b = bytearray(data)
    if kind == 0:  # flipped bytes
        for i in rng.integers(0, n, rng.integers(1, 6)):
            b[i] ^= int(rng.integers(1, 256))
    elif kind == 1:  # truncated
        b = b[:int(rng.integers(0, n))]
    elif kind == 2:  # wrong magic
        i = int(rng.integers(0, n // stride)) * stride
        b[i:i + 4] = rng.bytes(4)
    elif kind == 3:  # a bad length word (cflag bits included)
        i = int(rng.integers(0, n // stride)) * stride
        b[i + 4:i + 8] = rng.bytes(4)
    elif kind == 4:  # garbage protobuf in a well-framed record
        i = int(rng.integers(0, n // stride)) * stride
        b[i + 8:i + stride] = rng.bytes(stride - 8)
    elif kind == 5:  # garbage inserted
        i = int(rng.integers(0, n))
        b[i:i] = rng.bytes(int(rng.integers(1, 40)))
    else:  # a valid frame around garbage
        i = int(rng.integers(0, n // stride)) * stride
        junk = rng.bytes(int(rng.integers(0, 30)))
        b[i:i] = struct.pack("<II", 0xCED7230A, len(junk)) + junk + b"\0" * (-len(junk) & 3)
    return bytes(b)


def test_fuzz_damaged_files_give_clear_errors_or_count(tmp_path, blobs, monkeypatch):
    from onepass.sources import _recordio

    X, y = blobs
    dense = encode_rows(X[:12], y[:12])
    sparse = encode_rows(sp.csr_matrix(X[:12] * (X[:12] > 0)), y[:12])
    rng = np.random.default_rng(12345)
    path = tmp_path / "f.rec"
    n_cases = 0
    for case in range(500):
        base = dense if case % 3 else sparse
        stride = len(dense) // 12 if case % 3 else 64
        data = _mutations(rng, base, stride)
        path.write_bytes(data)
        try:
            _read_all(path, batch_size=5)
        except BadRecordError as e:
            assert str(path) in str(e) and "byte offset" in str(e), str(e)
        except DataError as e:  # no rows, or one of another width
            assert str(path) in str(e) or "yielded no rows" in str(e), str(e)
        # skip: the same bad records at every block size, never an error but an empty source
        results = []
        for block in (1 << 23, 12, 40):
            monkeypatch.setattr(_recordio, "_READ_BYTES", block)
            try:
                Xs, _, cursors, src = _read_all(path, batch_size=5, on_bad_record="skip")
                got = (Xs.toarray() if sp.issparse(Xs) else Xs).tolist(), src.n_skipped, cursors[-1]["offset"]
            except DataError as e:
                assert isinstance(e, OnePassError) and "yielded no rows" in str(e), str(e)
                got = "empty"
            results.append(got)
        assert results[0] == results[1] == results[2], case
        n_cases += 1
    assert n_cases == 500


def test_prediction_writer_batches_read_by_the_sdk():
    from onepass.io.recordio_protobuf import RecordioWriter

    fh = io.BytesIO()
    writer = RecordioWriter(fh)
    writer.write({"score": np.array([0.25, 0.75]), "predicted_label": np.array([0, 1])})
    writer.write({"score": np.array([0.5]), "predicted_label": np.array([1])})
    writer.close()
    records = common.read_records(io.BytesIO(fh.getvalue()))
    assert [r.label["score"].float32_tensor.values[0] for r in records] == [0.25, 0.75, 0.5]
    assert [r.label["predicted_label"].float32_tensor.values[0] for r in records] == [0.0, 1.0, 1.0]


# -- runs of records decoded with two protobuf parses ---------------------------------------

def _decode_both_ways(data: bytes, monkeypatch, **kw):
    """The decoded rows and bad records of ``data``, with runs decoded in bulk and record by
    record: the two must agree on everything."""
    from onepass.io.recordio_protobuf import _codec

    def decode():
        out = _codec.RecordDecoder(**kw).decode(data, 0, 0, final=True)
        X = out.X.toarray() if sp.issparse(out.X) else out.X
        return (X.tolist(), None if out.y is None else out.y.tolist(), out.ends.tolist(), out.lines.tolist(),
                [(b.end, b.line, b.reason) for b in out.bad], sp.issparse(out.X))

    bulk = decode()
    with monkeypatch.context() as m:
        m.setattr(_codec.RecordDecoder, "_is_settled", lambda self: False)
        single = decode()
    return bulk, single


def _sparse_record(keys, values, shape, label=None, kind="float32_tensor", label_key="values", unknown=b""):
    from onepass.io.recordio_protobuf import _record_pb2 as pb

    r = pb.Record()
    t = getattr(r.features["values"], kind)
    t.MergeFromString(unknown)  # fields of numbers a reader ignores
    t.values.extend(values)
    t.keys.extend(keys)
    t.shape.extend(shape)
    if label is not None:
        getattr(r.label[label_key], kind).values.append(label)
    return r.SerializeToString()


def test_bulk_decoding_equals_record_by_record(monkeypatch):
    from onepass.io.recordio_protobuf._framing import frame_many

    rng = np.random.default_rng(3)
    d = 30

    def good(i):
        keys = np.sort(rng.choice(d, int(rng.integers(0, 6)), replace=False)).tolist()
        return _sparse_record(keys, rng.standard_normal(len(keys)).astype(np.float32).tolist(), [d], float(i % 2))

    odd = {  # each among good records: decoded the same way (usable, or bad with the same reason)
        7: _sparse_record([5, 2, 9], [1.0, 2.0, 3.0], [d], 1.0),  # keys out of order: sorted
        20: _sparse_record([2, 2], [1.0, 2.0], [d], 0.0),  # a repeated key
        33: _sparse_record([d], [1.0], [d], 0.0),  # a key outside the shape
        41: _sparse_record([1, 4], [1.0, float("nan")], [d], 0.0),
        55: _sparse_record([1, 4], [1.0, float("inf")], [d], 0.0),
        60: _sparse_record([1], [1.0], [d + 1], 0.0),  # another width
        71: _sparse_record([1, 3], [1.0, 2.0], [d], 1.0, kind="float64_tensor"),
        80: _sparse_record([1, 3], [1.0, 2.0], [1, d], 1.0),  # shape [1, d]
        95: _sparse_record([1, 3], [1.0], [d], 1.0),  # keys and values of unequal counts
        99: _sparse_record([1], [1.0], [], 1.0),  # keys without a shape
        110: _sparse_record([], [float(v) for v in range(d)], [], 0.0),  # a dense row
        120: _sparse_record([1], [1.0], [d], None),  # no label
        130: _sparse_record([1], [1.0], [d], float("nan")),
        140: _sparse_record([1], [1.0], [d], 1.0, label_key="other"),
        150: b"\x0a\x05garbage",  # not a Record
        160: _sparse_record([1], [1.0], [d], 1.0)[:-3],  # cut short
        170: _sparse_record([1, 2], [1.0, 2.0], [d], 1.0) + _sparse_record([7], [9.0], [d], 0.0),  # two merged
        180: _sparse_record([1, 2], [1.0, 2.0], [d], 1.0, unknown=b"\x78\x05"),  # field 15 in the tensor
        181: _sparse_record([3], [1.0], [d], 0.0, unknown=b"\x7a\x02ab"),
    }
    records = [odd.get(i) or good(i) for i in range(400)]
    bulk, single = _decode_both_ways(frame_many(records), monkeypatch)
    assert bulk == single
    assert len(bulk[4]) >= 10 and len(bulk[0]) == 400 - len(bulk[4])
    # every record alike: no bad ones, all in bulk
    clean = frame_many([good(i) for i in range(300)])
    bulk, single = _decode_both_ways(clean, monkeypatch)
    assert bulk == single and not bulk[4] and len(bulk[0]) == 300


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_label", [False, True])
def test_bulk_decoding_of_sdk_files_and_their_damage(tmp_path, monkeypatch, x_dtype, with_label):
    S = sp.random(300, 50, density=0.1, format="csr", random_state=2, dtype=x_dtype)
    S = sp.csr_matrix(S.multiply((np.arange(300) % 17 != 5)[:, None]))  # some rows empty
    S.eliminate_zeros()
    y = (np.arange(300) % 3).astype(x_dtype) if with_label else None
    data = _sdk_sparse(tmp_path / "s.rec", S, y).read_bytes()
    bulk, single = _decode_both_ways(data, monkeypatch)
    assert bulk == single and not bulk[4]
    np.testing.assert_array_equal(np.array(bulk[0]), S.toarray().astype(np.float32))
    rng = np.random.default_rng(7)
    for _ in range(60):
        damaged = _mutations(rng, data, 4)
        bulk, single = _decode_both_ways(damaged, monkeypatch)
        assert bulk == single
