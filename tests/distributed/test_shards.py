"""Shards: every row of every format read once across the shards, resumable at a cursor."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onepass.distributed._queue import ShardBook
from onepass.distributed._shards import iter_shard, plan_shards
from onepass.errors import InvalidParameterError

N, D = 5000, 4


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    return np.round(rng.normal(0, 3, (N, D)), 4).astype(np.float32)


def write(folder, fmt, X, header=True):
    if fmt == "csv":
        path = folder / "data.csv"
        head = ",".join(f"x{j}" for j in range(D)) + "\n" if header else ""
        path.write_text(head + "".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in X))
    elif fmt == "npy":
        path = folder / "data.npy"
        np.save(path, X)
    elif fmt == "parquet":
        path = folder / "data.parquet"
        pq.write_table(pa.table({f"x{j}": X[:, j] for j in range(D)}), path, row_group_size=700)
    else:
        path = folder / "data.jsonl"
        path.write_text("".join(json.dumps({"features": row.tolist()}) + "\n" for row in X))
    return path


def read_all(path, shards, batch_size=333):
    got, cursors = [], []
    for shard in shards:
        n = 0
        for batch in iter_shard(str(path), shard, {"batch_size": batch_size}):
            got.append(batch.X)
            n += batch.n_rows
            assert batch.cursor["rows"] == n  # cursors count from the shard's start
        cursors.append(n)
    return np.concatenate(got), cursors


@pytest.mark.parametrize("fmt,header", [("csv", True), ("csv", False), ("npy", True), ("parquet", True),
                                        ("jsonl", True)])
def test_every_row_once_across_shards(tmp_path, rows, fmt, header):
    path = write(tmp_path, fmt, rows, header)
    shards = plan_shards(str(path), shard_bytes=9000, shard_rows=1000)
    if fmt == "jsonl":
        assert [s["unit"] for s in shards] == ["file"]
    else:
        assert len(shards) >= 4, shards
    got, counts = read_all(path, shards)
    np.testing.assert_array_equal(got, rows)
    assert sum(counts) == N


def test_csv_cuts_fall_on_line_starts(tmp_path, rows):
    path = write(tmp_path, "csv", rows)
    data = path.read_bytes()
    shards = plan_shards(str(path), shard_bytes=1000)
    assert shards[0]["start"] == 0 and shards[-1]["stop"] == len(data)
    for a, b in zip(shards[:-1], shards[1:], strict=True):
        assert a["stop"] == b["start"]
        assert data[b["start"] - 1:b["start"]] == b"\n"


def test_parquet_shards_are_whole_row_groups(tmp_path, rows):
    path = write(tmp_path, "parquet", rows)
    shards = plan_shards(str(path), shard_rows=1500)
    assert [(s["start"], s["stop"]) for s in shards] == [(0, 2100), (2100, 4200), (4200, 5000)]


@pytest.mark.parametrize("fmt", ["csv", "npy", "parquet"])
def test_a_shard_resumes_at_its_cursor(tmp_path, rows, fmt):
    path = write(tmp_path, fmt, rows)
    shard = plan_shards(str(path), shard_bytes=40000, shard_rows=2100)[1]
    source = {"batch_size": 256}
    whole = np.concatenate([b.X for b in iter_shard(str(path), shard, source)])
    it = iter_shard(str(path), shard, source)
    first = [next(it) for _ in range(3)]
    it.close()
    rest = [b.X for b in iter_shard(str(path), shard, source, first[-1].cursor)]
    np.testing.assert_array_equal(np.concatenate([b.X for b in first] + rest), whole)
    # a cursor at the shard's end: nothing more, and no error
    last = list(iter_shard(str(path), shard, source))[-1].cursor
    assert list(iter_shard(str(path), shard, source, last)) == []


def test_shards_refuse_stdin_and_quarantine(tmp_path, rows):
    with pytest.raises(InvalidParameterError, match="stdin"):
        plan_shards("-")
    path = write(tmp_path, "npy", rows)
    shard = plan_shards(str(path))[0]
    with pytest.raises(InvalidParameterError, match="quarantine"):
        list(iter_shard(str(path), shard, {"on_bad_record": "quarantine"}))


def test_bad_records_counted_per_shard(tmp_path, rows):
    path = write(tmp_path, "csv", rows)
    lines = path.read_text().splitlines()
    for i in (10, 2500, 4999):
        lines[i] = "1,2,oops,4"
    path.write_text("\n".join(lines) + "\n")
    shards = plan_shards(str(path), shard_bytes=20000)
    book = ShardBook(shards)
    n = 0
    for shard in shards:
        last = None
        for batch in iter_shard(str(path), shard, {"on_bad_record": "skip"}):
            n += batch.n_rows
            last = batch.cursor
        book.commit(shard["id"], last, 0, True)
    assert n == N - 3 and book.total("skipped") == 3


def test_book_gives_a_lost_shard_back_at_its_cursor():
    book = ShardBook([{"id": i} for i in range(3)])
    a, b = book.take(), book.take()
    book.commit(a, {"rows": 10}, 10, False)
    book.give_back(a)
    assert book.take() == a and book.progress[a]["cursor"] == {"rows": 10}
    book.commit(b, {"rows": 5}, 5, True)
    again = ShardBook.from_json(json.loads(json.dumps(book.to_json())))
    assert [again.take(), again.take(), again.take()] == [0, 2, None]
    assert again.n_rows == 15 and again.n_done == 1


def test_a_distributed_checkpoint_is_not_resumed_by_one_process(tmp_path, rows):
    import onepass
    from onepass.errors import IncompatibleStateError
    from onepass.io import save_checkpoint
    from onepass.training import make_state

    path = write(tmp_path, "npy", rows)
    save_checkpoint(tmp_path / "ckpt", make_state("kmeans", {"n_clusters": 3}, 0),
                    extra={"algorithm": "kmeans", "distributed": {"shards": [], "progress": []}})
    with pytest.raises(IncompatibleStateError, match="--workers"):
        onepass.train("kmeans", str(path), params={"n_clusters": 3}, checkpoint_dir=tmp_path / "ckpt", resume=True)
