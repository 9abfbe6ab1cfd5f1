"""s3:// sources against a real S3-compatible server (moto's, started as a separate
process on a loopback port and stopped after): globs, every format, resume at a cursor,
and clear errors. Nothing leaves the machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from onepass.errors import OnePassError
from onepass.sources import open_source
from onepass.training import train
from tests.sources.conftest import write_rows

pytest.importorskip("s3fs", reason="s3fs is in the dev extra; without it s3:// cannot be tested")
pytest.importorskip("moto", reason="moto[server] is in the dev extra; it is the S3-compatible test server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3-compatible server on 127.0.0.1, and an s3fs filesystem talking to it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("onepass-test")
        yield fs
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _upload(fs, local_dir, prefix):
    for p in sorted(local_dir.iterdir()):
        fs.put_file(str(p), f"onepass-test/{prefix}/{p.name}")
    fs.invalidate_cache()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "libsvm"])
def test_s3_glob_reads_the_same_rows_as_local_files(s3, tmp_path, fmt):
    rng = np.random.default_rng(0)
    local = tmp_path / "local"
    local.mkdir()
    Xs, ys = [], []
    for i in range(3):
        X = np.round(rng.normal(size=(40, 3)), 4)
        y = rng.integers(0, 2, 40).astype(float)
        write_rows(local / f"part-{i}.{fmt}", fmt, X, y)
        Xs.append(X)
        ys.append(y)
    _upload(s3, local, f"glob-{fmt}")
    kw = {"label_column": "y"} if fmt in ("csv", "parquet") else {}
    with open_source(f"s3://onepass-test/glob-{fmt}/*.{fmt}", batch_size=25, **kw) as src:
        batches = list(src)
    X = np.vstack([b.X.toarray() if hasattr(b.X, "toarray") else b.X for b in batches])
    np.testing.assert_allclose(X, np.vstack(Xs), rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([b.y for b in batches]), np.concatenate(ys))
    assert batches[-1].cursor["path"].startswith("s3://onepass-test/")


def test_s3_resume_at_a_cursor_reads_nothing_twice(s3, tmp_path):
    rng = np.random.default_rng(1)
    local = tmp_path / "d"
    local.mkdir()
    X = np.round(rng.normal(size=(300, 2)), 4)
    write_rows(local / "a.csv", "csv", X[:150], np.zeros(150))
    write_rows(local / "b.csv", "csv", X[150:], np.zeros(150))
    _upload(s3, local, "resume")
    uri = "s3://onepass-test/resume/"
    with open_source(uri, batch_size=70, label_column="y") as src:
        batches = list(src)
    cut = next(b.cursor for b in batches if b.cursor["file"] == 1)  # inside the second file
    assert 150 < cut["rows"] < 300
    with open_source(uri, batch_size=70, label_column="y", cursor=cut) as src:
        rest = np.vstack([b.X for b in src])
    np.testing.assert_allclose(rest, X[cut["rows"]:], rtol=1e-6)


def test_s3_training_matches_local_training(s3, tmp_path):
    rng = np.random.default_rng(2)
    local = tmp_path / "t"
    local.mkdir()
    for i in range(2):
        write_rows(local / f"p{i}.csv", "csv", rng.normal(size=(2000, 4)) + 5 * i, np.zeros(2000))
    _upload(s3, local, "train")
    remote = train("kmeans", "s3://onepass-test/train/*.csv", params={"n_clusters": 3}, label_column="y", seed=0,
                   batch_size=512)
    here = train("kmeans", str(local / "*.csv"), params={"n_clusters": 3}, label_column="y", seed=0, batch_size=512)
    assert remote.n_rows_seen == here.n_rows_seen == 4000
    np.testing.assert_allclose(remote.model.cluster_centers_, here.model.cluster_centers_)


def test_s3_missing_object_is_a_clear_error(s3):
    with pytest.raises((OnePassError, FileNotFoundError), match="onepass-test/nothing-here"):
        with open_source("s3://onepass-test/nothing-here/*.csv") as src:
            list(src)
