"""The PostgreSQL transport against a real server on loopback (tests/transports/postgres_server.py).

Nothing is mocked and nothing is skipped: a server that cannot be started fails every test
here with the reason. Covered: values of every number type, NULLs as NaN and as bad records,
labels and weights, the errors (a text column, a missing key column, a query that fails, a
cursor of another query, resume without a key), keyset resume with integer, text and
timestamp keys, the CLI, 20+ SIGKILLs of a training run resumed each time to the same model,
``--follow`` (rows inserted while it runs, SIGTERM, resume), and the server stopped and
started again mid-read (no row lost or read twice) or staying away (a clear error).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from onepass.errors import BadRecordError, DataError, InvalidParameterError, OnePassError
from onepass.io import latest_checkpoint, load_checkpoint, load_model
from onepass.sources import open_source
from tests.checkpoints_seen import rows_checkpointed
from tests.transports.postgres_server import PostgresServer, postgres_server

N_POINTS = 30_000  # rows of the table trained on by the CLI tests
BATCH = 500
EVERY = 1000  # rows between checkpoints
N_KILLS = 20
N_BIG = 100_000  # rows of the table read while the server is stopped: more than the sockets hold
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> PostgresServer:
    with postgres_server() as s:
        rng = np.random.default_rng(0)
        centers = rng.normal(0, 5, (3, 5))
        X = centers[rng.integers(0, 3, N_POINTS)] + rng.standard_normal((N_POINTS, 5))
        with s.connect() as conn:
            conn.execute("CREATE TABLE points (id bigint PRIMARY KEY, x0 real, x1 real, x2 real, x3 real, x4 real)")
            with conn.cursor().copy("COPY points FROM STDIN") as copy:
                for i, row in enumerate(X.astype(np.float32).tolist(), start=1):
                    copy.write_row((i, *row))
            cols = ", ".join(f"(random() * 10)::real AS x{i}" for i in range(1, 20))
            conn.execute(f"CREATE TABLE big AS SELECT g::bigint AS id, g::float8 AS idf, {cols} "
                         f"FROM generate_series(1, {N_BIG}) AS g")
            conn.execute("ALTER TABLE big ADD PRIMARY KEY (id)")
            conn.execute("CREATE TABLE kinds (id integer PRIMARY KEY, b boolean, s smallint, i integer, l bigint, "
                         "r real, d double precision, n numeric, y smallint, w real, name text)")
            conn.execute("INSERT INTO kinds SELECT g, g % 2 = 0, -g, g * 1000, g::bigint * 10000000000, g / 4.0, "
                         "g / 8.0, g / 3.0, g % 3, 1 + g % 2, 'n' || g FROM generate_series(1, 10) AS g")
            conn.execute("UPDATE kinds SET d = NULL WHERE id = 4")
            conn.execute("UPDATE kinds SET r = 'NaN' WHERE id = 7")
        yield s


def rows_of(src) -> tuple[np.ndarray, list[dict]]:
    """Every row a source yields, and each batch's cursor."""
    parts, cursors = [], []
    for batch in src:
        parts.append(batch.X)
        cursors.append(batch.cursor)
    return np.concatenate(parts), cursors


# -- open_source ---------------------------------------------------------------------
def test_number_columns_become_float32_features(server: PostgresServer) -> None:
    query = "SELECT id, b, s, i, l, n FROM kinds"
    with open_source(server.uri, query=query, key_column="id", batch_size=4) as src:
        X, cursors = rows_of(src)
        assert src.feature_names == ["b", "s", "i", "l", "n"]  # the key is not a feature
        assert src.n_features == 5 and src.n_rows_read == 10 and src.is_rewindable
    g = np.arange(1, 11)
    want = np.column_stack([g % 2 == 0, -g, g * 1000, g * 1e10, g / 3.0]).astype(np.float32)
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, want)
    assert [c["key"] for c in cursors] == [4, 8, 10]
    assert [c["rows"] for c in cursors] == [4, 8, 10]
    assert {c["key_column"] for c in cursors} == {"id"} and len({c["query"] for c in cursors}) == 1
    assert cursors[0]["transport"] == "postgresql" and "@" in cursors[0]["path"]


def test_float64_source_reads_double_precision(server: PostgresServer) -> None:
    with open_source(server.uri, query="SELECT id, n FROM kinds", key_column="id", dtype=np.float64) as src:
        X, _ = rows_of(src)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X[:, 0], np.arange(1, 11) / 3.0)


def test_label_and_weight_by_name(server: PostgresServer) -> None:
    with open_source(server.uri, query="SELECT id, i, y, w FROM kinds", key_column="id", label_column="y",
                     weight_column="w", batch_size=10) as src:
        batch = next(iter(src))
        assert src.feature_names == ["i"]
    g = np.arange(1, 11)
    np.testing.assert_array_equal(batch.X[:, 0], g * 1000)
    np.testing.assert_array_equal(batch.y, g % 3)
    np.testing.assert_array_equal(batch.w, 1 + g % 2)


def test_null_is_nan_or_a_bad_record(server: PostgresServer) -> None:
    query = "SELECT id, r, d FROM kinds"
    with open_source(server.uri, query=query, key_column="id", batch_size=3) as src:
        X, _ = rows_of(src)
    assert np.isnan(X[3, 1]) and np.isnan(X[6, 0])  # the NULL, and the stored NaN, pass as NaN
    assert np.isfinite(np.delete(X, [3, 6], axis=0)).all()

    with open_source(server.uri, query=query, key_column="id", batch_size=3, null="bad") as src:
        with pytest.raises(BadRecordError) as e:
            rows_of(src)
    message = str(e.value)
    assert "key id=4" in message and "'d'" in message and "NULL" in message, message

    with open_source(server.uri, query=query, key_column="id", batch_size=3, null="bad", on_bad_record="skip") as src:
        X, cursors = rows_of(src)
        assert src.n_skipped == 2
    assert len(X) == 8 and np.isfinite(X).all()
    assert cursors[-1]["key"] == 10 and cursors[-1]["skipped"] == 2


def test_text_column_is_an_error_naming_it(server: PostgresServer) -> None:
    with pytest.raises(InvalidParameterError, match="column 'name' of the query has type text"):
        open_source(server.uri, query="SELECT id, i, name FROM kinds", key_column="id")
    # the key need not be a number: a text key orders the rows and is not a feature
    with open_source(server.uri, query="SELECT name, i FROM kinds", key_column="name", batch_size=4) as src:
        X, cursors = rows_of(src)
    keys = sorted(f"n{g}" for g in range(1, 11))
    np.testing.assert_array_equal(X[:, 0], [int(k[1:]) * 1000 for k in keys])
    assert [c["key"] for c in cursors] == [keys[3], keys[7], keys[9]]


def test_errors_name_what_is_wrong(server: PostgresServer) -> None:
    with pytest.raises(InvalidParameterError, match="key_column='nope' is not a column of the query"):
        open_source(server.uri, query="SELECT id, i FROM kinds", key_column="nope")
    with pytest.raises(InvalidParameterError, match="needs the query"):
        open_source(server.uri)
    with pytest.raises(InvalidParameterError, match="no_such_table"):
        open_source(server.uri, query="SELECT * FROM no_such_table")
    with pytest.raises(InvalidParameterError, match="follow=True needs key_column"):
        open_source(server.uri, query="SELECT i FROM kinds", follow=True)
    with pytest.raises(InvalidParameterError, match="retry_seconds='soon'"):
        open_source(server.uri + "?retry_seconds=soon", query="SELECT i FROM kinds")
    with pytest.raises(DataError, match="division by zero"):
        with open_source(server.uri, query="SELECT id, 1 / (id - 5) AS q FROM kinds", key_column="id") as src:
            rows_of(src)


def test_resume_after_a_cursor_reads_the_rest(server: PostgresServer) -> None:
    query = "SELECT id, idf FROM big WHERE id <= 5000"
    with open_source(server.uri, query=query, key_column="id", batch_size=700) as src:
        it = iter(src)
        head = [next(it) for _ in range(3)]
    cursor = head[-1].cursor
    assert cursor["key"] == 2100 and cursor["rows"] == 2100
    json.dumps(cursor)  # a checkpoint keeps it
    with open_source(server.uri, query=query, key_column="id", batch_size=700, cursor=cursor) as src:
        X, cursors = rows_of(src)
        assert src.n_rows_read == 5000
    np.testing.assert_array_equal(X[:, 0], np.arange(2101, 5001))
    with pytest.raises(InvalidParameterError, match="another query"):
        open_source(server.uri, query="SELECT id, idf FROM big", key_column="id", cursor=cursor)
    unkeyed = {**cursor, "query": hashlib.sha256(b"SELECT idf FROM big").hexdigest()[:16]}
    with pytest.raises(InvalidParameterError, match="needs key_column"):
        open_source(server.uri, query="SELECT idf FROM big", cursor=unkeyed)


def test_timestamp_key_resumes_from_iso_text(server: PostgresServer) -> None:
    query = ("SELECT timestamptz '2026-03-01 00:00:00+00' + g * interval '90 minutes' AS t, g AS v "
             "FROM generate_series(1, 50) AS g")
    with open_source(server.uri, query=query, key_column="t", batch_size=20) as src:
        it = iter(src)
        first = next(it)
    assert first.cursor["key"] == "2026-03-02T06:00:00+00:00"
    with open_source(server.uri, query=query, key_column="t", batch_size=20, cursor=first.cursor) as src:
        X, _ = rows_of(src)
    np.testing.assert_array_equal(X[:, 0], np.arange(21, 51))


def test_a_key_that_repeats_is_an_error(server: PostgresServer) -> None:
    with pytest.raises(DataError, match="key_column 'k' is not unique: key 1 is on rows 2 and 3"):
        with open_source(server.uri, query="SELECT i / 2000 AS k, i FROM kinds", key_column="k") as src:
            rows_of(src)


def test_another_epoch_reads_the_query_again(server: PostgresServer) -> None:
    query = "SELECT id, idf FROM big WHERE id <= 3000"
    with open_source(server.uri, query=query, key_column="id", batch_size=1000) as src:
        first, _ = rows_of(src)
    with open_source(server.uri, query=query, batch_size=1000) as src:  # no key: the server's order, once
        again, cursors = rows_of(src)
    np.testing.assert_array_equal(np.sort(again[:, 0]), first[:, 0])
    assert cursors[-1]["row"] == 3000 and "key" not in cursors[-1]


def test_key_ranges_for_workers_cover_every_row_once(server: PostgresServer) -> None:
    from onepass.sources.transports import StreamOptions
    from onepass.sources.transports.postgresql import PostgresQuery

    query = "SELECT id, idf FROM big WHERE id % 7 <> 0"
    shards = PostgresQuery.plan_shards(server.uri, StreamOptions(query=query, key_column="id"), None, 3)
    assert len(shards) == 3
    parts = []
    for shard in shards:
        with open_source(server.uri, batch_size=5000, **shard) as src:
            parts.append(rows_of(src)[0][:, 0])
    assert min(len(p) for p in parts) > N_BIG // 4  # about a third each
    ids = np.arange(1, N_BIG + 1)
    np.testing.assert_array_equal(np.concatenate(parts), ids[ids % 7 != 0])
    with pytest.raises(InvalidParameterError, match="needs key_column"):
        PostgresQuery.plan_shards(server.uri, StreamOptions(query=query), None, 3)


# -- the server going away -------------------------------------------------------------
def test_server_stopped_and_started_mid_read_loses_nothing(server: PostgresServer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="onepass.sources")
    ids = []
    with open_source(server.uri + "?retry_seconds=120", query="SELECT * FROM big", key_column="id",
                     batch_size=1000) as src:
        it = iter(src)
        ids.append(next(it).X[:, 0])
        server.stop()  # the COPY is still going: its rows do not fit in the sockets' buffers
        restart = threading.Timer(1.0, server.start)
        restart.start()
        try:
            for batch in it:
                ids.append(batch.X[:, 0])
        finally:
            restart.join()
        assert src.n_rows_read == N_BIG
    np.testing.assert_array_equal(np.concatenate(ids), np.arange(1, N_BIG + 1))  # each row once, in order
    retries = [r.getMessage() for r in caplog.records if r.name == "onepass.sources"]
    assert any("reconnecting in" in m for m in retries), retries
    assert any("reconnected after" in m for m in retries), retries


def test_server_that_stays_away_is_a_clear_error(server: PostgresServer) -> None:
    uri = server.uri + "?retry_seconds=1"
    try:
        with open_source(uri, query="SELECT * FROM big", key_column="id", batch_size=1000) as src:
            it = iter(src)
            next(it)
            server.stop()
            with pytest.raises(OnePassError, match=f"server at 127.0.0.1:{server.port} did not answer for 1 s"):
                for _ in it:
                    pass
        with pytest.raises(OnePassError, match="did not answer for 1 s"):
            open_source(uri, query="SELECT * FROM big")
    finally:
        server.start()


# -- the CLI ---------------------------------------------------------------------------
def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "onepass.cli", "train", *args]


def wait_for_rows(ckpt: Path, n: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while rows_checkpointed(ckpt) < n:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline, f"{ckpt}: {rows_checkpointed(ckpt)} rows checkpointed, waited for {n}"
        time.sleep(0.02)


def kmeans(server: PostgresServer, work: Path, *extra: str, uri: str | None = None) -> list[str]:
    return cli("kmeans", "--data", uri or server.uri, "--query", "SELECT * FROM points", "--key-column", "id",
               "--n-clusters", "3", "--seed", "7", "--batch-size", str(BATCH), "--out", str(work / "model"),
               "--checkpoint-dir", str(work / "ckpt"), "--quiet", *extra)


def assert_same_state(a: Path, b: Path) -> None:
    state_a, _ = load_checkpoint(a / "ckpt")
    state_b, _ = load_checkpoint(b / "ckpt")
    arrays_a, arrays_b = state_a.to_arrays()[1], state_b.to_arrays()[1]
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


@pytest.fixture(scope="module")
def reference(server: PostgresServer, tmp_path_factory) -> tuple[Path, float, float]:
    """K-Means over the whole table, never killed: (its folder, seconds to its first
    checkpoint, seconds in all)."""
    work = tmp_path_factory.mktemp("reference")
    started = time.perf_counter()
    proc = subprocess.Popen(kmeans(server, work, "--checkpoint-every-rows", str(EVERY)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    first = None
    while proc.poll() is None:
        if first is None and (work / "ckpt" / "LATEST").exists():
            first = time.perf_counter() - started
        time.sleep(0.005)
    total = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr.read().decode()
    return work, first or total, total


def test_cli_trains_on_every_row_of_the_query(server: PostgresServer, reference, tmp_path: Path) -> None:
    work, _, _ = reference
    model, manifest = load_model(work / "model")
    assert manifest["rows_seen"] == N_POINTS
    assert model.cluster_centers_.shape == (3, 5)
    # two epochs: the query is run again
    done = subprocess.run(kmeans(server, tmp_path, "--epochs", "2"), capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert load_model(tmp_path / "model")[1]["rows_seen"] == 2 * N_POINTS


def test_sigkilled_at_random_moments_counts_every_row_once(server: PostgresServer, reference,
                                                          tmp_path: Path) -> None:
    """SIGKILL at 20 random instants (3 in start-up, then each after the checkpoints have
    moved on by up to one interval, at a random instant of the next), resumed each time:
    the last run ends with the state of the run never killed, bit for bit."""
    ref, startup, total = reference
    interval = max(total - startup, 0.05) * EVERY / N_POINTS
    cmd = kmeans(server, tmp_path, "--checkpoint-every-rows", str(EVERY), "--resume")
    rng = np.random.default_rng(19)
    kills = finished = 0
    progress: list[int] = []  # rows checkpointed after each kill
    while kills < N_KILLS:
        done = rows_checkpointed(tmp_path / "ckpt")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        if kills < 3:
            time.sleep(rng.uniform(0.2, 0.9) * startup)
        else:
            target = done + rng.uniform(0, 1) * EVERY
            while proc.poll() is None and rows_checkpointed(tmp_path / "ckpt") < target:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 1) * interval)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            progress.append(rows_checkpointed(tmp_path / "ckpt"))
            found = latest_checkpoint(tmp_path / "ckpt")
            if found is not None:
                state, manifest = load_checkpoint(tmp_path / "ckpt")
                assert state.n_rows_seen_ == manifest["rows_seen"] <= N_POINTS
        else:  # it finished between kills: it must have the reference state; go again from scratch
            assert proc.returncode == 0, proc.stderr.read().decode()
            assert_same_state(tmp_path, ref)
            finished += 1
            assert finished < 5, "the runs finish before they can be killed"
            shutil.rmtree(tmp_path / "ckpt")
    # the kills landed all along the read, not only in start-up
    assert len(set(progress)) >= N_KILLS // 2 and max(progress) >= N_POINTS // 2, progress
    print(f"rows checkpointed after each of the {kills} kills: {progress}", file=sys.stderr)
    final = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert final.returncode == 0, final.stderr
    model, manifest = load_model(tmp_path / "model")
    assert manifest["rows_seen"] == N_POINTS
    np.testing.assert_array_equal(model.cluster_centers_, load_model(ref / "model")[0].cluster_centers_)
    assert_same_state(tmp_path, ref)


def test_follow_trains_on_new_rows_through_a_restart_and_sigterm(server: PostgresServer, tmp_path: Path) -> None:
    """A follower trains on rows inserted while it runs, waits out the server stopped and
    started again, ends on SIGTERM with exit 0 and a checkpoint, and resumes from it; a
    server that stays away ends a run with a clear error, and its checkpoint resumes too.
    The result is the state of one plain run over the same rows."""
    with server.connect() as conn:
        conn.execute("CREATE TABLE grow AS SELECT * FROM points WHERE id <= 1000")
        conn.execute("ALTER TABLE grow ADD PRIMARY KEY (id)")

    def insert(upto: int) -> None:
        with server.connect() as conn:
            conn.execute("INSERT INTO grow SELECT * FROM points WHERE id > (SELECT max(id) FROM grow) AND id <= %s",
                         (upto,))

    def follower(work: Path, *extra: str, retry_seconds: int = 120) -> subprocess.Popen:
        cmd = cli("kmeans", "--data", server.uri + f"?poll_seconds=0.05&retry_seconds={retry_seconds}", "--query",
                  "SELECT * FROM grow", "--key-column", "id", "--follow", "--n-clusters", "3", "--seed", "7",
                  "--batch-size", "100", "--checkpoint-every-rows", "100", "--out", str(work / "model"),
                  "--checkpoint-dir", str(work / "ckpt"), "--quiet", *extra)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)

    def sigterm(proc: subprocess.Popen) -> str:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        return err.decode()

    work = tmp_path / "follow"
    try:
        proc = follower(work)
        wait_for_rows(work / "ckpt", 1000, proc)
        insert(1500)
        wait_for_rows(work / "ckpt", 1500, proc)
        server.stop()
        time.sleep(0.5)  # the follower polls, finds no server, and retries
        server.start()
        insert(2000)
        wait_for_rows(work / "ckpt", 2000, proc)
        assert "reconnecting in" in sigterm(proc)
        assert rows_checkpointed(work / "ckpt") == 2000

        proc = follower(work, "--resume", retry_seconds=1)
        insert(2300)
        wait_for_rows(work / "ckpt", 2300, proc)
        server.stop()  # and it stays away
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err.decode()
        assert f"the PostgreSQL server at 127.0.0.1:{server.port} did not answer for 1 s" in err.decode()
        assert rows_checkpointed(work / "ckpt") == 2300
        server.start()

        proc = follower(work, "--resume")
        insert(2600)
        wait_for_rows(work / "ckpt", 2600, proc)
        sigterm(proc)
        assert load_model(work / "model")[1]["rows_seen"] == 2600
    finally:
        if not server.is_running:
            server.start()
    plain = tmp_path / "plain"
    done = subprocess.run(cli("kmeans", "--data", server.uri, "--query", "SELECT * FROM grow", "--key-column", "id",
                              "--n-clusters", "3", "--seed", "7", "--batch-size", "100", "--out",
                              str(plain / "model"), "--checkpoint-dir", str(plain / "ckpt"), "--quiet"),
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(load_model(work / "model")[0].cluster_centers_,
                                  load_model(plain / "model")[0].cluster_centers_)


def test_server_binaries_are_found() -> None:
    """The suite runs against a real server: say loudly where it comes from."""
    from tests.transports.postgres_server import find_bin_dir

    folder = find_bin_dir()
    assert (folder / "postgres").exists()
    print(f"PostgreSQL from {folder}", file=sys.stderr)
    assert os.access(folder / "pg_ctl", os.X_OK)
