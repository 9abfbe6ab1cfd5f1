"""Data files as untrusted input (issue 20, findings 5 and 7): a libsvm index past the width
onepass infers, compressed files read transparently and resumed exactly, binary files named
as text, labels outside the classes named by file line, numbers Python reads but CSV does not
hold (``1_000``)."""

import bz2
import gzip
import io
import json
import lzma
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from onepass.errors import BadRecordError, DataError
from onepass.sources import open_source
from onepass.sources._libsvm import MAX_INFERRED_FEATURES
from tests.sources.conftest import dense, label_kw, write_rows

# -- finding 5: a huge libsvm index without n_features -------------------------------------

HUGE = [
    ("vectorized", "0 3000000000:1.0"),  # past the compiled parser's 9 digits
    ("compiled", "0 999999999:1.0"),  # read by the compiled parser
    ("careful", "0 3000000000:1.0 # a comment sends the block down the line-by-line path"),
]


@pytest.mark.parametrize("path_taken,huge", HUGE, ids=[h[0] for h in HUGE])
def test_huge_libsvm_index_is_a_bad_record(tmp_path, path_taken, huge):
    path = tmp_path / "wide.svm"
    path.write_text(f"1 1:1 2:2\n{huge}\n0 2:5\n")
    with pytest.raises(BadRecordError) as info:
        list(open_source(path))
    e = info.value
    assert e.line == 2 and e.source == str(path)
    assert "--n-features" in str(e) and f"{MAX_INFERRED_FEATURES}" in str(e)
    with open_source(path, on_bad_record="skip") as src:
        batches = list(src)
    assert src.n_skipped == 1 and [b.n_features for b in batches] == [2]
    quarantine = tmp_path / "q.jsonl"
    with open_source(path, on_bad_record="quarantine", quarantine_file=quarantine) as src:
        assert sum(b.n_rows for b in src) == 2
    record = json.loads(quarantine.read_text())
    assert record["line"] == 2 and "--n-features" in record["reason"]


def test_huge_libsvm_index_in_the_first_row(tmp_path):
    """The first row alone holds the huge index: no width is inferred from it."""
    path = tmp_path / "wide.svm"
    path.write_text("0 3000000000:1.0\n1 2:1.0\n")
    with open_source(path, on_bad_record="skip") as src:
        (batch,) = list(src)
    assert batch.X.shape == (1, 2) and src.n_skipped == 1


def test_huge_libsvm_index_declared_width_reads(tmp_path):
    path = tmp_path / "wide.svm"
    path.write_text(f"0 {MAX_INFERRED_FEATURES + 5}:1.0\n")
    (batch,) = list(open_source(path, n_features=MAX_INFERRED_FEATURES + 5))
    assert batch.X.shape == (1, MAX_INFERRED_FEATURES + 5) and batch.X.nnz == 1


def test_huge_libsvm_index_cli(tmp_path):
    from onepass.cli import main

    path = tmp_path / "wide.svm"
    path.write_text("0 3000000000:1.0\n1 2:1.0\n")
    result = CliRunner().invoke(main, ["train", "kmeans", "--data", str(path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 3, result.output
    assert "line 1 of" in result.output and "--n-features" in result.output


# -- finding 7: compressed input ------------------------------------------------------------


def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


CODECS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress, "zst": _zstd}
ROWS = np.arange(120, dtype=np.float64).reshape(40, 3) / 4


def _compressed(tmp_path, fmt, codec, by_magic):
    plain = tmp_path / f"plain{'.csv' if fmt == 'csv' else '.jsonl' if fmt == 'jsonl' else '.svm'}"
    write_rows(plain, fmt, ROWS + 1, np.arange(40) % 2)
    name = plain.name.replace("plain", "data") + ("" if by_magic else f".{codec}")
    path = tmp_path / name
    path.write_bytes(CODECS[codec](plain.read_bytes()))
    return plain, path


def _rows(src):
    Xs, ys = [], []
    for b in src:
        Xs.append(dense(b.X))
        ys.append(b.y)
    return np.concatenate(Xs), np.concatenate(ys)


@pytest.mark.parametrize("by_magic", [False, True], ids=["extension", "magic"])
@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "libsvm"])
def test_compressed_reads_and_resumes_exactly(tmp_path, small_blocks, fmt, codec, by_magic):
    plain, path = _compressed(tmp_path, fmt, codec, by_magic)
    kw = label_kw(fmt)
    X, y = _rows(open_source(plain, batch_size=7, **kw))
    X2, y2 = _rows(open_source(path, batch_size=7, **kw))
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    # stop after three batches, resume from the cursor: the rest, none twice, none skipped
    with open_source(path, batch_size=7, **kw) as src:
        head = [next(src) for _ in range(3)]
    rest_X, rest_y = _rows(open_source(path, batch_size=7, cursor=head[-1].cursor, **kw))
    np.testing.assert_array_equal(np.concatenate([dense(b.X) for b in head] + [rest_X]), X)
    np.testing.assert_array_equal(np.concatenate([b.y for b in head] + [rest_y]), y)


def test_compressed_file_lines_are_named(tmp_path):
    path = tmp_path / "d.csv.bz2"
    path.write_bytes(bz2.compress(b"a,b,y\n1,2,0\n1,oops,1\n"))
    with pytest.raises(BadRecordError) as info:
        list(open_source(path, label_column="y"))
    assert info.value.line == 3 and info.value.source == str(path)


def test_damaged_gzip_is_a_data_error_naming_the_file(tmp_path):
    data = gzip.compress(b"a,b,y\n" + b"1,2,0\n" * 5000)
    path = tmp_path / "d.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"d\.csv\.gz.*(damaged|truncated)"):
        list(open_source(path, label_column="y"))


def test_zstd_without_zstandard_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "d.csv.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(DataError, match=r"d\.csv\.zst.*pip install zstandard"):
        list(open_source(path))


# -- finding 7: binary files named as text --------------------------------------------------


def test_binary_file_named_csv_says_it_is_binary(tmp_path):
    path = tmp_path / "arrays.csv"
    with open(path, "wb") as f:
        np.save(f, np.random.default_rng(0).random((50, 3)))
    quarantine = tmp_path / "q.jsonl"
    for kw in ({}, {"label_column": "y"}, {"on_bad_record": "quarantine", "quarantine_file": quarantine}):
        with pytest.raises(DataError) as info:
            list(open_source(path, **kw))
        msg = str(info.value)
        assert "binary" in msg and "arrays.csv" in msg and ".npy" in msg
        assert "NUMPY" not in msg and "\ufffd" not in msg and "header" not in msg
    assert not quarantine.exists() or quarantine.read_text() == ""


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "libsvm"])
def test_an_archive_is_named(tmp_path, fmt):
    path = tmp_path / f"d.{ {'csv': 'csv', 'jsonl': 'jsonl', 'libsvm': 'svm'}[fmt]}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("d.csv", "1,2,3\n" * 100)
    path.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="looks binary.*zip archive"):
        list(open_source(path))


def test_multi_member_gzip_and_multi_frame_zstd_read_whole(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    for name, data in [("d.csv.gz", gzip.compress(b"a,y\n1,0\n") + gzip.compress(b"2,1\n3,0\n")),
                       ("d.csv.zst", zstandard.ZstdCompressor().compress(b"a,y\n1,0\n")
                        + zstandard.ZstdCompressor().compress(b"2,1\n3,0\n"))]:
        (tmp_path / name).write_bytes(data)
        X, y = _rows(open_source(tmp_path / name, label_column="y"))
        assert X.ravel().tolist() == [1, 2, 3] and y.tolist() == [0, 1, 0]


def test_truncated_zstd_is_a_data_error(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    data = zstandard.ZstdCompressor().compress(b"a,y\n" + b"1,0\n" * 5000)
    (tmp_path / "d.csv.zst").write_bytes(data[:-4])
    with pytest.raises(DataError, match="truncated"):
        list(open_source(tmp_path / "d.csv.zst", label_column="y"))


def test_gzip_on_stdin_is_read(monkeypatch):
    class Stdin:
        buffer = io.BufferedReader(io.BytesIO(gzip.compress(b"1,2,0\n3,4,1\n")))

    monkeypatch.setattr(sys, "stdin", Stdin)
    X, y = _rows(open_source("-", label_column=2))
    assert X.tolist() == [[1, 2], [3, 4]] and y.tolist() == [0, 1]


# -- finding 7: numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1_000", "\u0661\u0662", "1__0"])
def test_csv_underscore_and_non_ascii_digits_are_bad_values(tmp_path, value):
    path = tmp_path / "d.csv"
    path.write_text(f"a,b,y\n1,2,0\n{value},2,1\n3,4,1\n", encoding="utf-8")
    with pytest.raises(BadRecordError) as info:
        list(open_source(path, label_column="y"))
    assert info.value.line == 3 and info.value.column == "a" and "is not a number" in str(info.value)


@pytest.mark.parametrize("bad", ["1 1_0:1", "1 1:1_0", "1_0 1:1"])
def test_libsvm_underscore_is_a_bad_value(tmp_path, bad):
    path = tmp_path / "d.svm"
    path.write_text(f"0 1:1\n{bad}\n1 2:1\n")
    with pytest.raises(BadRecordError) as info:
        list(open_source(path, n_features=20))
    assert info.value.line == 2


# -- finding 7: a label outside the classes, by file line -----------------------------------


def test_label_outside_classes_names_the_file_line(tmp_path):
    import onepass

    path = tmp_path / "lab.csv"
    path.write_text("a,b,y\n1,2,0\n\n3,4,1\n5,6,2\n7,8,1\n")
    with pytest.raises(BadRecordError) as info:
        onepass.train("linear-learner", str(path), label_column="y", batch_size=10,
                      params={"predictor_type": "binary_classifier"})
    assert info.value.line == 5 and info.value.source == str(path)
    assert str(info.value).startswith(f"line 5 of {path}")
