"""Training killed with SIGKILL at random instants, and at the worst instants of a
checkpoint write, resumes each time and ends with the same model as a run never killed,
for every algorithm (K-Means, PCA exact, PCA sketch, Linear Learner in mini-batches and
row by row: its weights and leaderboard).

21 kills in all: 15 at random moments (startup, reading, updating, writing), and 6
through failpoints (onepass/_failpoints.py) inside the checkpoint write: with half an
array file written, with the checkpoint complete but not renamed into place, and with
it renamed but LATEST not yet updated.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from onepass.io import latest_checkpoint, load_checkpoint, load_model

N_ROWS = 400_000
RANDOM_KILLS = 15
FAILPOINTS = [
    "artifact.array_written:2",
    "artifact.array_written:9",
    "artifact.before_rename:1",
    "artifact.before_rename:3",
    "checkpoint.before_latest:1",
    "checkpoint.before_latest:2",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kill")
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, (8, 10))
    labels = rng.integers(0, 8, N_ROWS)
    X = centers[labels] + rng.standard_normal((N_ROWS, 10))
    # Two files, so resuming across a file boundary is exercised too.
    half = N_ROWS // 2
    np.savetxt(folder / "part-0.csv", X[:half], delimiter=",", fmt="%.6f")
    np.savetxt(folder / "part-1.csv", X[half:], delimiter=",", fmt="%.6f")
    # The same rows with a 0/1 label in column 0, for supervised algorithms.
    labelled = folder / "labelled"
    labelled.mkdir()
    y = (X @ rng.normal(0, 1, 10) + rng.logistic(0, 1, N_ROWS) > 0).astype(float)
    XY = np.column_stack([y, X])
    np.savetxt(labelled / "part-0.csv", XY[:half], delimiter=",", fmt="%.6f")
    np.savetxt(labelled / "part-1.csv", XY[half:], delimiter=",", fmt="%.6f")
    return folder


ALGORITHMS = {
    "kmeans": ["kmeans", "--n-clusters", "8"],
    "pca-exact": ["pca", "--n-components", "4", "--mode", "exact"],
    "pca-sketch": ["pca", "--n-components", "4", "--mode", "sketch"],
    # held-out validation rows, early stopping and the leaderboard all go through the kills
    "linear-learner": ["linear-learner", "--label-column", "0", "--num-models", "8", "--validation-fraction", "0.02",
                       "--validation-every-rows", "20000", "--early-stopping-patience", "2",
                       "--max-validation-rows", "2000"],
    # rows learned one at a time by the compiled loop (the default for sparse input)
    "linear-learner-rows": ["linear-learner", "--label-column", "0", "--num-models", "8", "--mini-batch-size", "1",
                            "--validation-every-rows", "20000", "--early-stopping-patience", "2"],
    # rows learned one at a time by the compiled loop, 4 models, progressive validation
    "factorization-machines": ["factorization-machines", "--label-column", "0", "--num-models", "4",
                               "--num-factors", "4", "--validation-every-rows", "20000",
                               "--early-stopping-patience", "2"],
}
LABELLED = {"linear-learner", "linear-learner-rows", "factorization-machines"}


def assert_same_arrays(got: tuple[dict, dict], want: tuple[dict, dict], what: str) -> None:
    assert got[1].keys() == want[1].keys(), what
    for name in want[1]:
        np.testing.assert_allclose(got[1][name], want[1][name], rtol=1e-9, atol=1e-6, err_msg=f"{what}: {name}")


def command(data: Path, work: Path, algorithm: str = "kmeans") -> list[str]:
    folder = data / "labelled" if algorithm in LABELLED else data
    return [
        sys.executable, "-m", "onepass.cli", "train", *ALGORITHMS[algorithm],
        "--data", str(folder / "*.csv"), "--seed", "7", "--batch-size", "2048",
        "--checkpoint-dir", str(work / "ckpt"), "--checkpoint-every-rows", "10000", "--resume",
        "--out", str(work / "model"), "--quiet",
    ]


def run_to_end(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def assert_last_checkpoint_loads(ckpt: Path) -> None:
    found = latest_checkpoint(ckpt)
    if found is not None:
        state, manifest = load_checkpoint(ckpt)
        assert state.n_rows_seen_ == manifest["rows_seen"]
        assert 0 < state.n_rows_seen_ <= N_ROWS


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_killed_runs_resume_to_the_same_model(data: Path, tmp_path: Path, algorithm: str) -> None:
    reference = tmp_path / "reference"
    started = time.perf_counter()
    done = run_to_end(command(data, reference, algorithm))
    run_seconds = time.perf_counter() - started  # start-up included
    assert done.returncode == 0, done.stderr
    ref_model, ref_manifest = load_model(reference / "model")
    assert ref_manifest["rows_seen"] == N_ROWS

    work = tmp_path / "killed"
    cmd = command(data, work, algorithm)
    kills = 0
    # The worst moments of a checkpoint write first, through failpoints.
    for point in FAILPOINTS:
        env = {**os.environ, "ONEPASS_FAILPOINT": point}
        result = run_to_end(cmd, env)
        assert result.returncode == -signal.SIGKILL, f"{point}: exit {result.returncode} {result.stderr}"
        kills += 1
        assert_last_checkpoint_loads(work / "ckpt")
    # Then random moments: SIGKILL after a random delay, whatever the process is doing
    # (starting, reading, updating, writing a checkpoint).
    rng = np.random.default_rng(2024)
    random_kills = 0
    for _ in range(80):
        if random_kills >= RANDOM_KILLS:
            break
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Anywhere in a whole run's span (start-up, reading, updating, checkpointing);
        # a resumed run is shorter, so some finish first: those start over from scratch.
        time.sleep(float(rng.uniform(0.15, 0.95)) * run_seconds)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            random_kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()
            model, manifest = load_model(work / "model")
            assert manifest["rows_seen"] == N_ROWS
            assert_same_arrays(model.to_arrays(), ref_model.to_arrays(), "model of a run that finished")
            shutil.rmtree(work)  # finished between kills: go again from scratch
        assert_last_checkpoint_loads(work / "ckpt")
    kills += random_kills
    assert kills >= 20, f"only {kills} kills landed"

    final = run_to_end(cmd)
    assert final.returncode == 0, final.stderr
    model, manifest = load_model(work / "model")
    assert manifest["rows_seen"] == N_ROWS
    assert_same_arrays(model.to_arrays(), ref_model.to_arrays(), "final model")
    assert model.to_arrays()[0].get("leaderboard") == ref_model.to_arrays()[0].get("leaderboard")
    state, _ = load_checkpoint(work / "ckpt")
    ref_state, _ = load_checkpoint(reference / "ckpt")
    assert state.n_rows_seen_ == ref_state.n_rows_seen_ == N_ROWS
    assert_same_arrays(state.to_arrays(), ref_state.to_arrays(), "final state")


def test_failpoint_during_model_replacement_keeps_a_whole_model(data: Path, tmp_path: Path) -> None:
    """Killed between moving the old --out directory aside and renaming the new one in:
    the old model still loads from where it was set aside, and the next write finishes."""
    cmd = command(data, tmp_path)
    first = run_to_end(cmd)
    assert first.returncode == 0, first.stderr
    old, _ = load_model(tmp_path / "model")
    cmd2 = [*cmd[: cmd.index("--checkpoint-dir")], "--out", str(tmp_path / "model"), "--quiet", "--n-clusters", "8"]
    env = {**os.environ, "ONEPASS_FAILPOINT": "artifact.old_moved_aside"}
    killed = run_to_end(cmd2, env)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "model").exists()
    again, _ = load_model(tmp_path / "model")  # served from the copy set aside
    np.testing.assert_array_equal(again.cluster_centers_, old.cluster_centers_)
    redo = run_to_end(cmd2)
    assert redo.returncode == 0, redo.stderr
    assert (tmp_path / "model" / "manifest.json").is_file()
    assert not list(tmp_path.glob(".model.old-*"))
