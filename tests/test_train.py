"""The training loop through the Python API: seeds, resume, epochs, metrics, memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import onepass
from onepass.errors import EmptySourceError, IncompatibleStateError, InvalidParameterError
from onepass.io import load_checkpoint
from onepass.io._models import load_state
from onepass.training import train


def write_blobs(path: Path, n: int, seed: int = 0, d: int = 4) -> Path:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(0, 5, (5, d))
    X = centers[rng.integers(0, 5, n)] + rng.standard_normal((n, d))
    np.save(path, X.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_blobs(tmp_path_factory.mktemp("train") / "blobs.npy", 60_000)


def test_same_seed_same_model(data: Path) -> None:
    a = train("kmeans", data, params={"n_clusters": 5}, seed=3, batch_size=1000)
    b = train("kmeans", data, params={"n_clusters": 5}, seed=3, batch_size=1000)
    np.testing.assert_array_equal(a.model.cluster_centers_, b.model.cluster_centers_)
    assert a.n_rows_seen == 60_000


class Crash(Exception):
    pass


def test_crash_and_resume_equals_one_run(data: Path, tmp_path: Path) -> None:
    straight = train("kmeans", data, params={"n_clusters": 5}, seed=1, batch_size=1000)
    ckpt = tmp_path / "ck"
    seen = []

    def crash_after_25_batches(state, cursor) -> None:  # type: ignore[no-untyped-def]
        seen.append(cursor)
        if len(seen) == 25:
            raise Crash

    with pytest.raises(Crash):
        train("kmeans", data, params={"n_clusters": 5}, seed=1, batch_size=1000, checkpoint_dir=ckpt,
              checkpoint_every_rows=7000, on_batch=crash_after_25_batches)
    state, manifest = load_checkpoint(ckpt)
    assert manifest["rows_seen"] == 21_000 and manifest["finished"] is False
    assert manifest["cursor"] == seen[20]
    resumed = train("kmeans", data, params={"n_clusters": 5}, seed=1, batch_size=1000, checkpoint_dir=ckpt,
                    checkpoint_every_rows=7000, resume=True)
    assert resumed.n_rows_seen == 60_000
    np.testing.assert_array_equal(resumed.model.cluster_centers_, straight.model.cluster_centers_)
    # A finished job resumed again reads nothing and gives the same model.
    again = train("kmeans", data, params={"n_clusters": 5}, seed=1, batch_size=1000, checkpoint_dir=ckpt, resume=True)
    assert again.n_rows_seen == 60_000
    np.testing.assert_array_equal(again.model.cluster_centers_, straight.model.cluster_centers_)


def test_resume_without_checkpoint_starts_fresh_and_mismatch_is_refused(data: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "none-yet"
    result = train("kmeans", data, params={"n_clusters": 5}, seed=1, checkpoint_dir=ckpt, resume=True)
    assert result.n_rows_seen == 60_000
    with pytest.raises(IncompatibleStateError, match=r"n_clusters=5, this run asks n_clusters=6"):
        train("kmeans", data, params={"n_clusters": 6}, seed=1, checkpoint_dir=ckpt, resume=True)


def test_epochs_and_stdin(data: Path) -> None:
    two = train("kmeans", data, params={"n_clusters": 5}, seed=1, epochs=2)
    assert two.n_rows_seen == 120_000 and two.epochs == 2
    with pytest.raises(InvalidParameterError, match="stdin"):
        train("kmeans", "-", params={"n_clusters": 5}, epochs=2)


def test_bad_options_are_refused_at_the_boundary(data: Path) -> None:
    with pytest.raises(InvalidParameterError, match="unknown parameter.*n_cluster.*valid: n_clusters"):
        train("kmeans", data, params={"n_cluster": 5})
    with pytest.raises(InvalidParameterError, match="unknown algorithm 'kmeanz'.*kmeans"):
        train("kmeanz", data)
    with pytest.raises(InvalidParameterError, match="checkpoint_dir"):
        train("kmeans", data, checkpoint_every_rows=10)
    with pytest.raises(InvalidParameterError, match="epochs=0"):
        train("kmeans", data, epochs=0)


def test_empty_source(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(EmptySourceError, match="empty.csv"):
        train("kmeans", empty, params={"n_clusters": 2})


def test_metrics_lines_and_out_directory(data: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "m.jsonl"
    result = train("kmeans", data, params={"n_clusters": 5}, seed=0, metrics=metrics, out=tmp_path / "model",
                   checkpoint_dir=tmp_path / "ck", checkpoint_every_rows=20_000)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    events = [r["event"] for r in records]
    assert events[0] == "start" and events[-1] == "end" and events.count("checkpoint") == 2
    end = records[-1]
    assert end["rows"] == 60_000 and end["rows_per_s"] > 0 and end["msd"] > 0
    assert {"skipped", "quarantined", "elapsed_s", "epoch"} <= set(end)
    model = onepass.load(tmp_path / "model")
    np.testing.assert_array_equal(model.cluster_centers_, result.model.cluster_centers_)
    state, _ = load_state(tmp_path / "model")
    assert state.n_rows_seen_ == 60_000
    assert state.model(3).n_clusters == 3


def test_several_sources_in_order(tmp_path: Path) -> None:
    a = write_blobs(tmp_path / "a.npy", 5_000, seed=1)
    b = write_blobs(tmp_path / "b.npy", 7_000, seed=2)
    result = train("kmeans", [a, b], params={"n_clusters": 5}, seed=0)
    assert result.n_rows_seen == 12_000


def test_training_memory_does_not_grow_with_rows(tmp_path: Path) -> None:
    """Peak traced memory of a run over 4x the rows stays within 10% (streamed, not loaded).

    Both files hold several of the reader's 8 MB blocks, which bound its memory.
    """
    small = write_blobs(tmp_path / "small.npy", 600_000, d=8)
    large = write_blobs(tmp_path / "large.npy", 2_400_000, d=8)
    peaks = []
    for path in (small, large):
        train("kmeans", path, params={"n_clusters": 5}, seed=0)  # warm caches and compiled code
        tracemalloc.start()
        train("kmeans", path, params={"n_clusters": 5}, seed=0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.10 * peaks[0], f"peak traced memory {peaks[0]:,} -> {peaks[1]:,} bytes"
    assert peaks[1] < 2_400_000 * 8 * 4 / 2, "the run held more than half of the data in memory"


def test_progress_bar_on_stderr_only_when_asked(data: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    train("kmeans", data, params={"n_clusters": 5}, seed=0, progress=True)
    shown = capsys.readouterr()
    assert "rows" in shown.err and "60.0k" in shown.err and shown.out == ""
    train("kmeans", data, params={"n_clusters": 5}, seed=0, progress=None)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_max_rows_pauses_and_resume_continues_to_the_same_state(tmp_path):
    """Training in slices (pause at max_rows, resume) ends where one run ends: the row
    counter continues and the centers match, so tuning can stop and resume trials."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 4)).astype(np.float32)
    np.save(tmp_path / "d.npy", X)
    whole = train("kmeans", tmp_path / "d.npy", params={"n_clusters": 3}, batch_size=500, seed=1)
    ck = tmp_path / "ck"
    first = train("kmeans", tmp_path / "d.npy", params={"n_clusters": 3}, batch_size=500, seed=1,
                  checkpoint_dir=ck, max_rows=1200)
    assert first.paused and first.n_rows_seen == 1500  # the first batch boundary at or after 1200
    second = train("kmeans", tmp_path / "d.npy", params={"n_clusters": 3}, batch_size=500, seed=1,
                   checkpoint_dir=ck, resume=True, max_rows=3000)
    assert second.paused and second.n_rows_seen == 3000
    last = train("kmeans", tmp_path / "d.npy", params={"n_clusters": 3}, batch_size=500, seed=1,
                 checkpoint_dir=ck, resume=True, max_rows=10_000)
    assert not last.paused and last.n_rows_seen == 5000
    np.testing.assert_allclose(last.state.centers_, whole.state.centers_, atol=1e-6)
    with pytest.raises(InvalidParameterError, match="max_rows=0"):
        train("kmeans", tmp_path / "d.npy", params={"n_clusters": 3}, max_rows=0)
