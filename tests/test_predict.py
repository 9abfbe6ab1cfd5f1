"""Batch prediction (``onepass predict`` / :func:`onepass.serve.predict_file`).

What a user relies on: every input row gets one output row, in input order, equal to
what the model's ``outputs()`` says for that row, whatever the input and output
formats; a failed run leaves no half-written file; memory does not grow with the data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import onepass
from onepass.cli import main
from onepass.errors import BadRecordError, InvalidParameterError
from onepass.serve import predict_file
from onepass.training import train

N_ROWS = 1000
BATCH = 128  # several batches per file, and a last partial one


def invoke(*args: str, input: str | None = None):  # noqa: ANN201 (click's Result)
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def _blobs(n_rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 5.0, 5.0], [5.0, 0.0, 5.0]])
    X = centers[rng.integers(0, len(centers), n_rows)] + rng.normal(scale=0.7, size=(n_rows, 3))
    # Values a float32 holds exactly once written with 9 significant digits, so every
    # format hands the model the very same numbers.
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return _blobs(N_ROWS, seed=3)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    np.save(folder / "train.npy", _blobs(3000, seed=1))
    result = train("kmeans", folder / "train.npy", params={"n_clusters": 4}, seed=0, out=folder / "model")
    return result.out


@pytest.fixture(scope="module")
def model(model_dir: Path):  # noqa: ANN201
    return onepass.load(model_dir)


def write_csv(path: Path, X: np.ndarray) -> Path:
    np.savetxt(path, X, fmt="%.9g", delimiter=",", header="f0,f1,f2", comments="")
    return path


def write_jsonl(path: Path, X: np.ndarray) -> Path:
    path.write_text("".join(json.dumps({"f0": float(r[0]), "f1": float(r[1]), "f2": float(r[2])}) + "\n"
                            for r in X))
    return path


def write_parquet(path: Path, X: np.ndarray) -> Path:
    pq.write_table(pa.table({f"f{j}": X[:, j] for j in range(X.shape[1])}), path, row_group_size=300)
    return path


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}


def read_output(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(closest_cluster, distance_to_cluster) from a prediction file of any format."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        assert table.column_names == ["closest_cluster", "distance_to_cluster"]
        return table.column("closest_cluster").to_numpy(), table.column("distance_to_cluster").to_numpy()
    if path.suffix == ".jsonl":
        return parse_jsonl(path.read_text())
    header, *rows = path.read_text().splitlines()
    assert header == "closest_cluster,distance_to_cluster"
    table = np.array([row.split(",") for row in rows], dtype=np.float64).reshape(-1, 2)
    assert np.array_equal(table[:, 0], np.round(table[:, 0]))
    return table[:, 0].astype(np.int64), table[:, 1]


def parse_jsonl(text: str) -> tuple[np.ndarray, np.ndarray]:
    records = [json.loads(line) for line in text.splitlines()]
    assert all(set(r) == {"closest_cluster", "distance_to_cluster"} for r in records)
    return (np.array([r["closest_cluster"] for r in records]),
            np.array([r["distance_to_cluster"] for r in records]))


def assert_same_as_model(model, X: np.ndarray, labels: np.ndarray, distances: np.ndarray) -> None:  # noqa: ANN001
    expected = model.outputs(X)
    assert labels.shape == distances.shape == (X.shape[0],)
    np.testing.assert_array_equal(labels, expected["closest_cluster"])
    # The model computes in float32: a value written as text and read back as float32
    # is the same float32 (9 significant digits round-trip it).
    np.testing.assert_array_equal(distances.astype(np.float32), expected["distance_to_cluster"])


# -- outputs equal the model's, in input order ----------------------------------------------


@pytest.mark.parametrize("out_format", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("in_format", ["csv", "jsonl", "parquet"])
def test_outputs_equal_model_outputs_in_input_order(tmp_path, model, model_dir, X, in_format, out_format):
    data = WRITERS[in_format](tmp_path / f"in.{in_format}", X)
    out = tmp_path / f"pred.{out_format}"
    result = invoke("predict", str(model_dir), "--data", str(data), "--out", str(out), "--batch-size", str(BATCH))
    assert result.exit_code == 0, result.stderr
    assert f"{N_ROWS:,} predictions written" in result.stderr
    assert_same_as_model(model, X, *read_output(out))


def test_model_really_separates_the_rows(model, X):
    # Guards the equality tests above against a degenerate model (one cluster for all).
    labels = model.outputs(X)["closest_cluster"]
    assert len(np.unique(labels)) == 4


@pytest.mark.parametrize("spelling", ["glob", "folder", "repeated"])
def test_many_files_keep_file_then_row_order(tmp_path, model, model_dir, X, spelling):
    parts = np.array_split(X, 3)
    folder = tmp_path / "parts"
    folder.mkdir()
    # Names sort in file order; sizes are not multiples of the batch size.
    paths = [write_csv(folder / f"part-{i}.csv", part) for i, part in enumerate(parts)]
    data = {"glob": ["--data", str(folder / "part-*.csv")],
            "folder": ["--data", str(folder)],
            "repeated": [a for p in paths for a in ("--data", str(p))]}[spelling]
    out = tmp_path / "pred.parquet"
    result = invoke("predict", str(model_dir), *data, "--out", str(out), "--batch-size", str(BATCH))
    assert result.exit_code == 0, result.stderr
    assert_same_as_model(model, X, *read_output(out))


def test_mixed_input_formats_work_or_fail_clearly(tmp_path, model, X):
    a, b = np.array_split(X, 2)
    paths = [str(write_csv(tmp_path / "a.csv", a)), str(write_parquet(tmp_path / "b.parquet", b))]
    try:
        predict_file(model, paths, tmp_path / "pred.jsonl", batch_size=BATCH)
    except onepass.OnePassError as error:
        assert "b.parquet" in str(error) and "format" in str(error)
        assert "PAR1" not in str(error)  # the parquet magic bytes
    else:
        assert_same_as_model(model, X, *read_output(tmp_path / "pred.jsonl"))


def test_label_column_is_left_out_of_the_features(tmp_path, model, model_dir, X):
    y = np.arange(N_ROWS) % 7
    table = np.column_stack([y, X])
    np.savetxt(tmp_path / "labelled.csv", table, fmt=["%d", "%.9g", "%.9g", "%.9g"], delimiter=",",
               header="y,f0,f1,f2", comments="")
    out = tmp_path / "pred.csv"
    result = invoke("predict", str(model_dir), "--data", str(tmp_path / "labelled.csv"), "--label-column", "y",
                    "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert_same_as_model(model, X, *read_output(out))


# -- stdout -----------------------------------------------------------------------------------


def test_out_dash_jsonl_goes_to_stdout(tmp_path, model, model_dir, X):
    data = write_csv(tmp_path / "in.csv", X)
    result = invoke("predict", str(model_dir), "--data", str(data), "--out", "-", "--output-format", "jsonl",
                    "--batch-size", str(BATCH))
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == N_ROWS
    assert_same_as_model(model, X, *parse_jsonl(result.stdout))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_stdin_to_stdout_in_a_real_pipe(tmp_path, model, model_dir, X):
    data = write_csv(tmp_path / "in.csv", X)
    proc = subprocess.run(
        [sys.executable, "-m", "onepass.cli", "predict", str(model_dir), "--data", "-", "--out", "-",
         "--output-format", "csv"], stdin=data.open("rb"), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    (tmp_path / "pred.csv").write_bytes(proc.stdout)
    assert_same_as_model(model, X, *read_output(tmp_path / "pred.csv"))


@pytest.mark.parametrize("args, message", [
    (["--out", "-"], "needs an output format"),
    (["--out", "-", "--output-format", "parquet"], "parquet output cannot go to stdout"),
    (["--out", "{tmp}/pred.txt"], "'.txt'"),
    (["--out", "{tmp}/pred"], "cannot tell the output format"),
    (["--out", "{tmp}/pred.csv", "--output-format", "xml"], "'xml' is not one of"),
])
def test_output_format_usage_errors(tmp_path, model_dir, X, args, message):
    data = write_csv(tmp_path / "in.csv", X[:10])
    result = invoke("predict", str(model_dir), "--data", str(data), *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_unknown_extension_message_lists_the_known_ones(tmp_path, model, X):
    write_csv(tmp_path / "in.csv", X[:10])
    with pytest.raises(InvalidParameterError) as info:
        predict_file(model, tmp_path / "in.csv", tmp_path / "pred.xlsx")
    for known in (".csv", ".jsonl", ".parquet"):
        assert known in str(info.value)


def test_feature_count_mismatch_exit_3(tmp_path, model_dir):
    np.savetxt(tmp_path / "wide.csv", np.ones((5, 4)), delimiter=",")
    result = invoke("predict", str(model_dir), "--data", str(tmp_path / "wide.csv"), "--out",
                    str(tmp_path / "pred.csv"))
    assert result.exit_code == 3
    assert "4 features" in result.stderr and "3" in result.stderr
    assert not (tmp_path / "pred.csv").exists()


# -- failures leave nothing half-written ---------------------------------------------------


@pytest.mark.parametrize("out_format", ["csv", "jsonl", "parquet"])
def test_failed_predict_leaves_no_partial_output(tmp_path, model, X, out_format):
    folder = tmp_path / "in"
    folder.mkdir()
    # The first file is predicted and written in full before the second one fails.
    write_csv(folder / "a.csv", X)
    (folder / "b.csv").write_text("f0,f1,f2\n1,2,3\n4,oops,6\n")
    out = tmp_path / f"pred.{out_format}"
    with pytest.raises(BadRecordError) as info:
        predict_file(model, str(folder / "*.csv"), out, batch_size=BATCH, on_bad_record="fail")
    assert info.value.line == 3 and info.value.column == "f1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_failed_predict_keeps_the_previous_output(tmp_path, model_dir, X):
    write_csv(tmp_path / "good.csv", X)
    (tmp_path / "bad.csv").write_text("f0,f1,f2\n1,2,3\n4,5\n")
    out = tmp_path / "pred.csv"
    first = invoke("predict", str(model_dir), "--data", str(tmp_path / "good.csv"), "--out", str(out))
    assert first.exit_code == 0
    before = out.read_bytes()
    failed = invoke("predict", str(model_dir), "--data", str(tmp_path / "good.csv"), "--data",
                    str(tmp_path / "bad.csv"), "--out", str(out), "--batch-size", str(BATCH))
    assert failed.exit_code == 3
    assert "line 3 of" in failed.stderr and "bad.csv" in failed.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv", "pred.csv"]


def test_skip_bad_records_predicts_the_good_ones(tmp_path, model, X):
    lines = ["f0,f1,f2", *(",".join(f"{v:.9g}" for v in row) for row in X[:50])]
    lines.insert(11, "1,2,nope")  # between rows 10 and 11
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    quarantine = tmp_path / "q.jsonl"
    summary = predict_file(model, tmp_path / "in.csv", tmp_path / "pred.csv", on_bad_record="quarantine",
                           quarantine_file=quarantine, batch_size=16)
    assert (summary.n_rows, summary.n_skipped, summary.n_quarantined) == (50, 0, 1)
    assert_same_as_model(model, X[:50], *read_output(tmp_path / "pred.csv"))
    assert [json.loads(line)["raw"] for line in quarantine.read_text().splitlines()] == ["1,2,nope"]


def test_predict_skip_reports_how_many_records_were_dropped(tmp_path, model_dir):
    (tmp_path / "bad.csv").write_text("f0,f1,f2\n1,2,3\n4,x,6\n7,8\n1,1,1\n")
    result = invoke("predict", str(model_dir), "--data", str(tmp_path / "bad.csv"), "--out",
                    str(tmp_path / "pred.csv"), "--on-bad-record", "skip")
    assert result.exit_code == 0, result.stderr
    assert len((tmp_path / "pred.csv").read_text().splitlines()) == 1 + 2
    assert "skipped 2" in result.stderr


def test_distance_to_cluster_is_accurate_far_from_the_origin(tmp_path):
    centers = np.array([[1000.0, 1000.0], [1010.0, 1010.0]], dtype=np.float32)
    far = onepass.KMeansModel(centers, cluster_weights=np.ones(2), inertia=0.0)
    X = np.array([[1000.1, 1000.0], [1000.0, 1000.01], [1009.0, 1010.0]], dtype=np.float32)
    exact = np.sqrt(((X.astype(np.float64)[:, None] - centers.astype(np.float64)) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(far.outputs(X)["distance_to_cluster"], exact, rtol=1e-3)


# -- memory ---------------------------------------------------------------------------------

# Runs in its own process so the numbers are this prediction's alone. A warm-up
# prediction first loads every library and JIT-compiled kernel; then a sampler thread
# records resident memory every 2 ms while 2M rows are predicted.
_MEMORY_PROBE = textwrap.dedent("""
    import json, sys, threading, time
    import psutil
    import onepass
    from onepass.serve import predict_file

    model_dir, data, warm, out = sys.argv[1:5]
    model = onepass.load(model_dir)
    predict_file(model, warm, out + ".warm.parquet")
    proc = psutil.Process()

    def sample():
        m = proc.memory_info()
        return m.rss, m.rss - m.shared   # all resident pages; private (anonymous) ones

    base = sample()
    peak = list(base)
    done = threading.Event()

    def watch():
        while not done.is_set():
            rss, private = sample()
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], private)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    n = predict_file(model, data, out).n_rows
    done.set()
    watcher.join()
    print(json.dumps({"rows": n, "rss_growth": peak[0] - base[0], "private_growth": peak[1] - base[1]}))
""")

BIG_ROWS, BIG_FEATURES = 2_000_000, 10
MB = 1 << 20
# Bound on memory growth while predicting 2M rows x 10 float32 features:
# - holding the input would take 2M * 10 * 4 B = 80 MB, the outputs 2M * (8 + 4) B = 24 MB;
# - one step's working set is far smaller: the .npy reader converts 8 MB slices, a
#   65,536-row batch is 2.6 MB, its distances to 4 centers 1 MB, its outputs 0.8 MB,
#   plus a parquet row group in flight: 25-30 MB measured in all.
# 48 MB leaves room for allocator slack and fails if the input (or 60% of it) is held.
# Measured are private memory (RSS less file-backed pages) and RSS itself: the .npy
# reader streams blocks rather than memory-mapping, so RSS stays flat too.
MEMORY_BOUND = 48 * MB


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("memory")
    rng = np.random.default_rng(0)
    big = np.lib.format.open_memmap(folder / "big.npy", mode="w+", dtype=np.float32,
                                    shape=(BIG_ROWS, BIG_FEATURES))
    for start in range(0, BIG_ROWS, 250_000):
        big[start:start + 250_000] = rng.standard_normal((250_000, BIG_FEATURES), dtype=np.float32)
    big.flush()
    del big
    np.save(folder / "warm.npy", rng.standard_normal((70_000, BIG_FEATURES), dtype=np.float32))
    out = train("kmeans", folder / "warm.npy", params={"n_clusters": 4}, seed=0, out=folder / "model").out
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(out), str(folder / "big.npy"), str(folder / "warm.npy"),
         str(folder / "pred.parquet")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    report["output_rows"] = pq.ParquetFile(folder / "pred.parquet").metadata.num_rows
    return report


def test_predict_memory_is_one_batch_not_the_data(memory_run):
    assert memory_run["rows"] == memory_run["output_rows"] == BIG_ROWS
    assert memory_run["private_growth"] < MEMORY_BOUND, (
        f"private memory grew {memory_run['private_growth'] / MB:.1f} MB predicting {BIG_ROWS:,} rows")


def test_predict_resident_memory_does_not_grow_with_the_file(memory_run):
    assert memory_run["rss_growth"] < MEMORY_BOUND, (
        f"resident memory grew {memory_run['rss_growth'] / MB:.1f} MB predicting {BIG_ROWS:,} rows")
