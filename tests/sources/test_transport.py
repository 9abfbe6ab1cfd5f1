"""Files, folders, globs, fsspec URLs, stdin, format inference, empty sources."""

import gzip
import subprocess
import sys
import textwrap

import fsspec
import numpy as np
import pytest

from onepass.errors import EmptySourceError, InvalidParameterError, SourceNotFoundError
from onepass.sources import open_source


def _rows(src):
    with src:
        return [row for b in src for row in b.X.tolist()]


def test_glob_and_folder_in_sorted_order(tmp_path):
    for name, v in [("b.csv", 2), ("a.csv", 1), ("c.csv", 3)]:
        (tmp_path / name).write_text(f"{v},{v}\n")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / "notes.md").write_text("hello")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "d.csv").write_text("4,4\n")
    assert _rows(open_source(tmp_path / "*.csv")) == [[1, 1], [2, 2], [3, 3]]
    src = open_source(tmp_path)
    assert _rows(src) == [[1, 1], [2, 2], [3, 3], [4, 4]]
    assert [p.rsplit("/", 1)[1] for p in src.files] == ["a.csv", "b.csv", "c.csv", "d.csv"]
    assert _rows(open_source([tmp_path / "c.csv", tmp_path / "a.csv"])) == [[3, 3], [1, 1]]


def test_batches_never_span_files(tmp_path):
    (tmp_path / "a.csv").write_text("1\n2\n3\n")
    (tmp_path / "b.csv").write_text("4\n5\n")
    with open_source(tmp_path, batch_size=2) as src:
        sizes = [b.n_rows for b in src]
    assert sizes == [2, 1, 2]


def test_not_found_names_the_pattern(tmp_path):
    with pytest.raises(SourceNotFoundError, match="nothing-here"):
        open_source(tmp_path / "nothing-here*.csv")
    with pytest.raises(SourceNotFoundError, match="missing.csv"):
        open_source(tmp_path / "missing.csv")


def test_unknown_format(tmp_path):
    (tmp_path / "data.xyz").write_text("1,2\n")
    with pytest.raises(InvalidParameterError, match="csv, jsonl, libsvm, npy, parquet"):
        open_source(tmp_path / "data.xyz")
    with pytest.raises(InvalidParameterError, match="format='xls'"):
        open_source(tmp_path / "data.xyz", format="xls")
    assert _rows(open_source(tmp_path / "data.xyz", format="csv")) == [[1, 2]]


def test_memory_fsspec_url():
    fs = fsspec.filesystem("memory")
    fs.pipe("/onepass-test/p1.csv", b"a,b\n1,2\n")
    fs.pipe("/onepass-test/p2.csv", b"a,b\n3,4\n")
    assert _rows(open_source("memory://onepass-test/*.csv")) == [[1, 2], [3, 4]]
    assert _rows(open_source("memory://onepass-test/")) == [[1, 2], [3, 4]]
    with open_source("memory://onepass-test/", batch_size=1) as src:
        cursor = next(src).cursor
    assert _rows(open_source("memory://onepass-test/", cursor=cursor)) == [[3, 4]]


def test_file_url_and_gzip(tmp_path):
    with gzip.open(tmp_path / "d.csv.gz", "wt") as f:
        f.write("x,y\n1,2\n3,4\n")
    assert _rows(open_source(f"file://{tmp_path}/d.csv.gz", label_column="y")) == [[1], [3]]


def test_tsv_and_header_detection(tmp_path):
    (tmp_path / "d.tsv").write_text("1\t2\n3\t4\n")
    assert _rows(open_source(tmp_path / "d.tsv")) == [[1, 2], [3, 4]]
    (tmp_path / "h.csv").write_text("a,b\n1,2\n")
    with open_source(tmp_path / "h.csv", label_column="b") as src:
        b = next(src)
    assert b.X.tolist() == [[1]] and b.y.tolist() == [2] and b.cursor["line"] == 2
    (tmp_path / "n.csv").write_text("1,2\n3,4\n")
    with open_source(tmp_path / "n.csv", label_column=0, weight_column=-1) as src:
        b = next(src)
    assert b.X.shape == (2, 0) and b.y.tolist() == [1, 3] and b.w.tolist() == [2, 4]
    with pytest.raises(InvalidParameterError, match="no header"):
        open_source(tmp_path / "n.csv", label_column="y").__next__()
    with pytest.raises(InvalidParameterError, match="not a column"):
        open_source(tmp_path / "h.csv", label_column="y").__next__()
    with open_source(tmp_path / "n.csv", header=True) as src:
        assert [b.X.tolist() for b in src] == [[[3, 4]]]


def test_empty_sources(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(EmptySourceError, match="yielded no rows"):
        _rows(open_source(tmp_path / "e.csv"))
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(EmptySourceError, match="h.csv yielded no rows"):
        _rows(open_source(tmp_path / "h.csv"))
    (tmp_path / "bad.csv").write_text("a,b\nx,1\n")
    with pytest.raises(EmptySourceError, match=r"\(1 bad records set aside\)"):
        _rows(open_source(tmp_path / "bad.csv", on_bad_record="skip"))
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    with pytest.raises(EmptySourceError):
        _rows(open_source(tmp_path / "e.npy"))


def test_dtype_and_sparse(tmp_path):
    (tmp_path / "d.svm").write_text("1 1:0.5 3:2\n")
    with open_source(tmp_path / "d.svm") as src:
        b = next(src)
    assert b.X.format == "csr" and b.X.dtype == np.float32 and b.y.dtype == np.float32
    (tmp_path / "d.csv").write_text("1,2\n")
    with open_source(tmp_path / "d.csv", dtype=np.float64) as src:
        assert next(src).X.dtype == np.float64


STDIN_SCRIPT = textwrap.dedent("""
    import sys
    from onepass.sources import open_source
    with open_source("-", batch_size=2, label_column="y", format=sys.argv[1]) as src:
        for b in src:
            print(b.X.tolist(), b.y.tolist(), b.cursor["line"])
        print(src.is_rewindable, src.n_rows_read)
    try:
        open_source("-", cursor=b.cursor)
    except Exception as e:
        print(type(e).__name__)
""")


@pytest.mark.parametrize("fmt,data", [
    ("csv", b"a,y\n1,0\n2,1\n3,1\n"),
    ("jsonl", b'{"a": 1, "y": 0}\n{"a": 2, "y": 1}\n{"a": 3, "y": 1}'),
])
def test_stdin(fmt, data):
    out = subprocess.run([sys.executable, "-c", STDIN_SCRIPT, fmt], input=data,
                         capture_output=True, check=True, timeout=60).stdout.decode()
    first_line = 2 if fmt == "csv" else 1
    assert out.splitlines() == [f"[[1.0], [2.0]] [0.0, 1.0] {first_line + 1}",
                                f"[[3.0]] [1.0] {first_line + 2}", "False 3",
                                "InvalidParameterError"]


def test_stdin_rejects_binary_formats():
    with pytest.raises(InvalidParameterError, match="stdin"):
        open_source("-", format="parquet")


def test_doctest_example_runs():
    import doctest

    import onepass.sources._source as mod

    assert doctest.testmod(mod).failed == 0
