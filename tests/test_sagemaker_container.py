"""``onepass sagemaker train|serve``: SageMaker's container contract on a temporary
``/opt/ml`` tree (``--opt-ml``), with data written by the SageMaker SDK v2: File and
Pipe mode give the model ``onepass train`` gives on the same rows, CSV channels carry
the label first, a failure leaves its reason in ``output/failure``, a job SIGKILLed
mid-training and started again ends with the model of one never killed, and the
model it wrote is served on ``$SAGEMAKER_BIND_TO_PORT``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import onepass

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
common = pytest.importorskip("sagemaker.amazon.common", reason="the SageMaker Python SDK v2 is a dev dependency")

CLI = [sys.executable, "-m", "onepass.cli"]
X = (np.random.default_rng(0).normal(size=(3000, 5)) + np.repeat(np.eye(5)[:3] * 8, 1000, axis=0)).astype(np.float32)
X = X[np.random.default_rng(1).permutation(len(X))]
KMEANS_HP = {"k": "3", "mini_batch_size": "500", "feature_dim": "5"}


def tree(root: Path, hyper: dict, channels: dict, files: dict[str, bytes] | None = None) -> Path:
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyper))
    (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(channels))
    for name, data in (files or {}).items():
        path = root / "input" / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def recordio(X: np.ndarray, y: np.ndarray | None = None) -> bytes:
    import io

    buf = io.BytesIO()
    common.write_numpy_to_dense_tensor(buf, X, y)
    return buf.getvalue()


def job(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "sagemaker", "train", "--opt-ml", str(root), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def same_model(a: Path, b: Path) -> None:
    ma, mb = onepass.load(a), onepass.load(b)
    for name, values in ma.outputs(X[:200]).items():
        np.testing.assert_array_equal(values, mb.outputs(X[:200])[name], err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """K-Means through ``onepass train`` with onepass's own names, seed 0."""
    d = tmp_path_factory.mktemp("reference")
    (d / "rows.rec").write_bytes(recordio(X))
    done = subprocess.run([*CLI, "train", "kmeans", "--data", str(d / "rows.rec"), "--n-clusters", "3", "--batch-size",
                           "500", "--seed", "0", "--out", str(d / "model")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return d / "model"


def test_file_mode_trains_the_model_onepass_train_does(tmp_path: Path, reference: Path) -> None:
    root = tree(tmp_path / "ml", KMEANS_HP, {"train": {"ContentType": "application/x-recordio-protobuf",
                                                       "TrainingInputMode": "File"}},
                {"train/part-0.rec": recordio(X)})
    done = job(root, "--algorithm", "kmeans")
    assert done.returncode == 0, done.stderr
    assert '"rows": 3000' in done.stdout and done.stdout.startswith("#metrics ")
    same_model(root / "model", reference)
    assert any((root / "checkpoints").iterdir())  # the final checkpoint, for a job started again
    assert not (root / "output" / "failure").exists()


@pytest.mark.parametrize("epochs", [1, 2])
def test_pipe_mode_reads_a_fifo_per_epoch_to_the_file_modes_model(tmp_path: Path, reference: Path,
                                                                   epochs: int) -> None:
    channels = {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe"}}
    root = tree(tmp_path / "ml", {**KMEANS_HP, "onepass_algorithm": "kmeans", "epochs": str(epochs)}, channels)
    (root / "input" / "data").mkdir(parents=True)
    data = recordio(X)

    def feed(fifo: Path) -> None:  # SageMaker streams the channel into each epoch's FIFO as the job reads it
        with open(fifo, "wb") as f:
            for i in range(0, len(data), 8192):
                f.write(data[i:i + 8192])

    for epoch in range(epochs):
        os.mkfifo(root / "input" / "data" / f"train_{epoch}")
        threading.Thread(target=feed, args=(root / "input" / "data" / f"train_{epoch}",), daemon=True).start()
    done = job(root)
    assert done.returncode == 0, done.stderr
    assert f'"epochs": {epochs}' in done.stdout
    if epochs == 1:
        same_model(root / "model", reference)
    else:  # File mode, the same epochs
        files = tree(tmp_path / "files", {**KMEANS_HP, "epochs": str(epochs)},
                     {"train": {"ContentType": "application/x-recordio-protobuf"}}, {"train/part.rec": data})
        assert job(files, "--algorithm", "kmeans").returncode == 0
        same_model(root / "model", files / "model")


def test_a_csv_channel_has_no_header_and_the_label_first(tmp_path: Path) -> None:
    y = (X[:, 0] > 4).astype(np.float32)
    rows = "".join(f"{int(t)}," + ",".join(f"{v:.6g}" for v in r) + "\n" for t, r in zip(y, X, strict=True))
    root = tree(tmp_path / "ml", {"predictor_type": "binary_classifier", "mini_batch_size": "100", "epochs": "1"},
                {"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}}, {"train/rows.csv": rows.encode()})
    done = job(root, "--algorithm", "linear-learner")
    assert done.returncode == 0, done.stderr
    (tmp_path / "rows.csv").write_text(rows)
    direct = subprocess.run([*CLI, "train", "linear-learner", "--data", str(tmp_path / "rows.csv"), "--no-header",
                             "--label-column", "0", "--predictor-type", "binary_classifier", "--mini-batch-size",
                             "100", "--seed", "0", "--out", str(tmp_path / "direct")], capture_output=True, text=True)
    assert direct.returncode == 0, direct.stderr
    same_model(root / "model", tmp_path / "direct")
    assert onepass.load(root / "model").n_features == 5


@pytest.mark.parametrize("hyper, channels, words", [
    ({"k": "zero"}, {"train": {}}, "k"),
    (KMEANS_HP, {"validation": {}}, "no 'train' channel"),
    (KMEANS_HP, {"train": {}, "auxiliary": {}}, "auxiliary"),
    (KMEANS_HP, {"train": {"ContentType": "image/png"}}, "image/png"),
    ({**KMEANS_HP, "feature_dim": "7"}, {"train": {"ContentType": "application/x-recordio-protobuf"}}, "feature_dim"),
])
def test_a_failure_says_why_in_output_failure(tmp_path: Path, hyper: dict, channels: dict, words: str) -> None:
    root = tree(tmp_path / "ml", hyper, channels, {"train/part.rec": recordio(X[:100])})
    done = job(root, "--algorithm", "kmeans")
    assert done.returncode != 0
    reason = (root / "output" / "failure").read_text()
    assert words in reason and words in done.stderr


def test_a_job_killed_and_started_again_ends_with_the_model_of_one_never_killed(tmp_path: Path,
                                                                                 reference: Path) -> None:
    root = tree(tmp_path / "ml", KMEANS_HP, {"train": {"ContentType": "application/x-recordio-protobuf"}},
                {"train/part-0.rec": recordio(X)})
    killed = job(root, "--algorithm", "kmeans", env={"ONEPASS_CHECKPOINT_EVERY_ROWS": "500",
                                                     "ONEPASS_FAILPOINT": "checkpoint.before_latest:3"})
    assert killed.returncode == -9, killed.stderr  # SIGKILL, as a spot interruption
    assert not (root / "model").exists()
    again = job(root, "--algorithm", "kmeans", env={"ONEPASS_CHECKPOINT_EVERY_ROWS": "500"})
    assert again.returncode == 0, again.stderr
    same_model(root / "model", reference)


def test_sagemaker_serve_serves_the_jobs_model_on_its_port(tmp_path: Path, reference: Path) -> None:
    import shutil

    import httpx

    root = tmp_path / "ml"
    shutil.copytree(reference, root / "model")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*CLI, "sagemaker", "serve", "--opt-ml", str(root), "--host", "127.0.0.1"],
                            env={**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60  # a bound on waiting, not a measurement
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", content=recordio(X[:3]),
                       headers={"content-type": "application/x-recordio-protobuf", "accept": "application/json"})
        assert r.status_code == 200, r.text
        got = [p["closest_cluster"] for p in r.json()["predictions"]]
        assert got == onepass.load(reference).outputs(X[:3])["closest_cluster"].tolist()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    missing = subprocess.run([*CLI, "sagemaker", "serve", "--opt-ml", str(tmp_path / "none")], capture_output=True,
                             text=True)
    assert missing.returncode == 3 and "model" in missing.stderr


SDK_JOBS = {
    "kmeans": {"k": "3", "mini_batch_size": "500"},
    "pca": {"num_components": "2", "algorithm_mode": "regular", "mini_batch_size": "500"},
    "linear-learner": {"predictor_type": "binary_classifier", "mini_batch_size": "200"},
}


@pytest.mark.parametrize("layout, mode", [("dense", "File"), ("sparse", "File"), ("sparse", "Pipe")])
@pytest.mark.parametrize("algorithm", list(SDK_JOBS))
def test_sdk_written_matrices_train_each_algorithm_as_onepass_train_does(tmp_path: Path, algorithm: str, layout: str,
                                                                         mode: str) -> None:
    """A matrix the SDK wrote (write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor,
    labels included) through ``onepass sagemaker train`` and through ``onepass train``."""
    import io

    import scipy.sparse as sp

    rows = np.where(np.abs(X) > 1.0, X, 0).astype(np.float32)[:1500]
    y = (rows[:, 0] > 4).astype(np.float32)
    buf = io.BytesIO()
    if layout == "dense":
        common.write_numpy_to_dense_tensor(buf, rows, y)
    else:
        common.write_spmatrix_to_sparse_tensor(buf, sp.csr_matrix(rows), y)
    data = buf.getvalue()
    hyper = SDK_JOBS[algorithm]
    channels = {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": mode}}
    root = tree(tmp_path / "ml", hyper, channels, None if mode == "Pipe" else {"train/part.rec": data})
    if mode == "Pipe":
        (root / "input" / "data").mkdir(parents=True)
        fifo = root / "input" / "data" / "train_0"
        os.mkfifo(fifo)
        threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True).start()
    done = job(root, "--algorithm", algorithm)
    assert done.returncode == 0, done.stderr
    (tmp_path / "rows.rec").write_bytes(data)
    (tmp_path / "hp.json").write_text(json.dumps(hyper))
    direct = subprocess.run([*CLI, "train", algorithm, "--data", str(tmp_path / "rows.rec"), "--hyperparameters",
                             str(tmp_path / "hp.json"), "--seed", "0", "--out", str(tmp_path / "direct")],
                            capture_output=True, text=True)
    assert direct.returncode == 0, direct.stderr
    a, b = onepass.load(root / "model"), onepass.load(tmp_path / "direct")
    assert a.n_rows_seen_ == b.n_rows_seen_ == len(rows)
    for name, values in a.outputs(rows[:100]).items():
        np.testing.assert_array_equal(values, b.outputs(rows[:100])[name], err_msg=name)


def _feed_fifo(fifo: Path, data: bytes) -> threading.Thread:
    """SageMaker's side of a Pipe-mode channel: the data into the FIFO, as the job reads it
    (a job killed mid-read leaves the writer a broken pipe)."""
    def feed() -> None:
        try:
            with open(fifo, "wb") as f:
                for i in range(0, len(data), 8192):
                    f.write(data[i:i + 8192])
        except BrokenPipeError:
            pass

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("content_type", ["application/x-recordio-protobuf", "text/csv"])
def test_a_pipe_mode_job_killed_mid_fifo_resumes_when_the_channel_starts_again(tmp_path: Path, reference: Path,
                                                                               content_type: str) -> None:
    """Started again, the job gets its channel from the start again; it reads forward to its
    checkpoint's offset and ends with the model of a job never killed."""
    data = recordio(X) if content_type != "text/csv" else "".join(
        ",".join(repr(float(v)) for v in r) + "\n" for r in X).encode()
    root = tree(tmp_path / "ml", KMEANS_HP, {"train": {"ContentType": content_type, "TrainingInputMode": "Pipe"}})
    (root / "input" / "data").mkdir(parents=True)
    fifo = root / "input" / "data" / "train_0"
    os.mkfifo(fifo)
    _feed_fifo(fifo, data)
    killed = job(root, "--algorithm", "kmeans", env={"ONEPASS_CHECKPOINT_EVERY_ROWS": "500",
                                                     "ONEPASS_FAILPOINT": "checkpoint.before_latest:3"})
    assert killed.returncode == -9, killed.stderr
    _feed_fifo(fifo, data).join(timeout=0.1)
    again = job(root, "--algorithm", "kmeans", env={"ONEPASS_CHECKPOINT_EVERY_ROWS": "500"})
    assert again.returncode == 0, again.stderr
    assert '"rows": 3000' in again.stdout
    if content_type != "text/csv":
        same_model(root / "model", reference)
    else:  # the same rows as text: the model of an unkilled File-mode job on them
        files = tree(tmp_path / "files", KMEANS_HP, {"train": {"ContentType": "text/csv"}}, {"train/rows.csv": data})
        assert job(files, "--algorithm", "kmeans").returncode == 0
        same_model(root / "model", files / "model")


def test_a_test_channel_is_scored_as_onepass_tune_scores_and_printed_as_sagemaker_does(tmp_path: Path) -> None:
    from onepass.tune._from_state import score_models

    y = (X[:, 0] > 4).astype(np.float32)
    root = tree(tmp_path / "ml", {"predictor_type": "binary_classifier"},
                {"train": {"ContentType": "application/x-recordio-protobuf"},
                 "test": {"ContentType": "application/x-recordio-protobuf"}},
                {"train/part.rec": recordio(X[:2000], y[:2000]), "test/part.rec": recordio(X[2000:], y[2000:])})
    (root / "input" / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-2"}))
    done = job(root, "--algorithm", "linear-learner")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("#test_score (algo-2) : ('auc', ")]
    assert len(lines) == 1
    want = score_models([onepass.load(root / "model")], str(root / "input" / "data" / "test"),
                        format="recordio-protobuf")[0]["auc"]
    assert float(lines[0].rsplit(", ", 1)[1].rstrip(")")) == pytest.approx(want, rel=1e-12)
    assert want > 0.9


@pytest.mark.parametrize("command", [["serve", "{model}"], ["sagemaker", "serve", "--opt-ml", "{root}"]])
def test_exposure_warning_from_serve_but_not_from_a_sagemaker_container(
        tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """``onepass serve --host 0.0.0.0`` without keys warns; ``onepass sagemaker serve`` (on
    0.0.0.0 by the container contract, its callers admitted by the platform) does not.
    Nothing is bound: the server's start is replaced by one that records its address."""
    import shutil

    from click.testing import CliRunner

    import onepass.serve._server as server_module
    from onepass.cli import main

    root = tmp_path / "ml"
    shutil.copytree(reference, root / "model")
    started: list[tuple[str, int]] = []
    monkeypatch.setattr(server_module, "run_server", lambda model_dir, *, host, port, **kw: started.append((host, port)))
    args = [a.format(model=root / "model", root=root) for a in command]
    result = CliRunner().invoke(main, [*args, *(["--host", "0.0.0.0", "--port", "8080"] if command[0] == "serve"
                                                 else ["--port", "8080"])])
    assert result.exit_code == 0, result.output
    assert started == [("0.0.0.0", 8080)]
    assert ("without --api-key-file" in result.output) == (command[0] == "serve")
