"""Parquet read through a handle (fsspec, as from s3://), in windows of row groups: the
rows, cursors, bad records and resume of the same file read from a local path."""

import fsspec
import numpy as np
import pytest

from onepass.sources import _parquet, open_source

from .conftest import dense, write_rows


def _read(uri, **kw):
    with open_source(uri, batch_size=4, label_column="y", on_bad_record="skip", **kw) as src:
        return [(dense(b.X), b.y, b.cursor) for b in src], src.n_skipped


@pytest.mark.parametrize("window_bytes", [1, 1000])  # each row group alone; two together (336 bytes each)
def test_windows_of_row_groups_read_as_the_local_file(tmp_path, monkeypatch, window_bytes):
    monkeypatch.setattr(_parquet, "_WINDOW_BYTES", window_bytes)
    rng = np.random.default_rng(0)
    path = tmp_path / "a.parquet"
    write_rows(path, "parquet", rng.normal(size=(23, 2)), rng.integers(0, 2, 23), bad_at=(4, 11))  # groups of 3
    fs = fsspec.filesystem("memory")
    fs.pipe("/onepass-test-parquet/a.parquet", path.read_bytes())
    try:
        uri = "memory://onepass-test-parquet/a.parquet"
        local, local_skipped = _read(str(path))
        remote, remote_skipped = _read(uri)
        assert remote_skipped == local_skipped == 2 and len(remote) == len(local) == 6
        for (Xa, ya, ca), (Xb, yb, cb) in zip(remote, local, strict=True):
            np.testing.assert_array_equal(Xa, Xb)
            np.testing.assert_array_equal(ya, yb)
            assert {**ca, "path": None} == {**cb, "path": None}
        for i, (_, _, cursor) in enumerate(remote[:-1]):
            rest, _ = _read(uri, cursor=cursor)
            assert [c for _, _, c in rest] == [c for _, _, c in remote[i + 1:]]
            np.testing.assert_array_equal(np.vstack([X for X, _, _ in rest]),
                                          np.vstack([X for X, _, _ in remote[i + 1:]]))
    finally:
        fs.rm("/onepass-test-parquet", recursive=True)
