"""Training killed with SIGKILL at random instants, and at the worst instants of a
checkpoint write, resumes each time and ends with the same model as a run never killed,
for every algorithm (K-Means, PCA exact, PCA sketch, Linear Learner in mini-batches and
row by row: its weights and leaderboard; Factorization Machines; the Neural Topic Model:
its network, optimizer moments and generator; DeepAR: its network, moments, generator
and the series it keeps).

6 kills per algorithm, 48 in all. 3 through failpoints (onepass/_failpoints.py) inside
the checkpoint write, one of each kind: with part of the arrays written, with the
checkpoint complete but not renamed into place, and with it renamed but LATEST not yet
updated (the hit of each alternates between two, so across the algorithms all six
failpoint hits are run). Then 3 at random instants: one during start-up, before the
run's first checkpoint, and two while reading and updating rows, one in each half of
what is left of the run (in a checkpoint write whenever the draw lands on one).

The Neural Topic Model trains on the first 20,000 rows, DeepAR on 6,000 series records,
the others on 100,000: every run still writes 20 checkpoints. (The row-by-row learners on
20,000 rows ran so fast after start-up, once numba's cache was warm, that the random kills
missed them.)
"""

from __future__ import annotations

import json
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
from tests.checkpoints_seen import rows_checkpointed

N_ROWS = 100_000
EVERY_ROWS = 5_000  # checkpoints and validations: 20 in a run, as at 400k rows every 20k
SERIES_ROWS = 6_000  # series records (stretches of 10 points): a forecaster steps on 2 windows each
# A network runs on the first rows only, still checkpointed 20 times: the suite's time,
# not the kills, is cut.
FEW_ROWS = 20_000
# One failpoint of each kind per algorithm; the hit (N) alternates between algorithms.
FAILPOINTS = [
    ("artifact.array_written:2", "artifact.array_written:9"),
    ("artifact.before_rename:1", "artifact.before_rename:3"),
    ("checkpoint.before_latest:2", "checkpoint.before_latest:1"),
]
RANDOM_KILLS_WHILE_TRAINING = 2


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
    # The rows as word counts (rounded absolute values), for topic models.
    counts = folder / "counts"
    counts.mkdir()
    np.savetxt(counts / "part-0.csv", np.round(np.abs(X[:half])), delimiter=",", fmt="%d")
    np.savetxt(counts / "part-1.csv", np.round(np.abs(X[half:])), delimiter=",", fmt="%d")
    few, counts_few = FEW_ROWS // 2, folder / "counts-few"
    counts_few.mkdir()
    np.savetxt(counts_few / "part-0.csv", np.round(np.abs(X[:few])), delimiter=",", fmt="%d")
    np.savetxt(counts_few / "part-1.csv", np.round(np.abs(X[few:FEW_ROWS])), delimiter=",", fmt="%d")
    # Stretches of 10 daily points of 500 series (by id), for forecasters: each record extends
    # a series the state keeps the last points of, through the kills too.
    series = folder / "series"
    series.mkdir()
    n_series, stretch = 500, 10
    days = np.arange(SERIES_ROWS // n_series * stretch)
    for part in range(2):
        with open(series / f"part-{part}.jsonl", "w") as f:
            for r in range(part * SERIES_ROWS // 2, (part + 1) * SERIES_ROWS // 2):
                sid, k = r % n_series, r // n_series
                t = days[k * stretch:(k + 1) * stretch]
                y = (5 + sid % 7) * (2 + np.sin(2 * np.pi * (t + sid) / 7)) + rng.standard_normal(stretch)
                start = str(np.datetime64("2026-01-01") + np.timedelta64(int(t[0]), "D"))
                f.write(json.dumps({"id": f"s{sid}", "start": start, "target": y.round(3).tolist(),
                                    "cat": [sid % 3]}) + "\n")
    return folder


EVERY = str(EVERY_ROWS)
ALGORITHMS = {
    "kmeans": ["kmeans", "--n-clusters", "8"],
    "pca-exact": ["pca", "--n-components", "4", "--mode", "exact"],
    "pca-sketch": ["pca", "--n-components", "4", "--mode", "sketch"],
    # held-out validation rows, early stopping and the leaderboard all go through the kills
    "linear-learner": ["linear-learner", "--label-column", "0", "--num-models", "8", "--validation-fraction", "0.02",
                       "--validation-every-rows", EVERY, "--early-stopping-patience", "2",
                       "--max-validation-rows", "2000"],
    # rows learned one at a time by the compiled loop (the default for sparse input)
    "linear-learner-rows": ["linear-learner", "--label-column", "0", "--num-models", "8", "--mini-batch-size", "1",
                            "--validation-every-rows", EVERY, "--early-stopping-patience", "2"],
    # rows learned one at a time by the compiled loop, 4 models, progressive validation
    "factorization-machines": ["factorization-machines", "--label-column", "0", "--num-models", "4",
                               "--num-factors", "4", "--validation-every-rows", EVERY,
                               "--early-stopping-patience", "2"],
    # a network and Adam's moments (torch), held-out validation documents, the noise generator
    "ntm": ["ntm", "--num-topics", "4", "--max-validation-rows", "200", "--mini-batch-size", "512"],
    # an LSTM and Adam's moments, the window generator, and the last points of 500 series
    "deepar": ["deepar", "--prediction-length", "5", "--context-length", "10", "--time-freq", "D",
               "--num-cells", "8", "--num-layers", "1", "--mini-batch-size", "256",
               "--windows-per-prediction-length", "1"],
}
LABELLED = {"linear-learner", "linear-learner-rows", "factorization-machines"}
DOCUMENTS = {"ntm"}
SERIES = {"deepar"}
FEW = {"ntm"}


def n_rows(algorithm: str) -> int:
    return SERIES_ROWS if algorithm in SERIES else FEW_ROWS if algorithm in FEW else N_ROWS


def every_rows(algorithm: str) -> int:
    """Rows between checkpoints: 20 checkpoints in every run."""
    return n_rows(algorithm) // 20


def assert_same_arrays(got: tuple[dict, dict], want: tuple[dict, dict], what: str) -> None:
    assert got[1].keys() == want[1].keys(), what
    for name in want[1]:
        if np.asarray(want[1][name]).dtype.kind in "USb":  # names (a forecaster's series ids), flags
            np.testing.assert_array_equal(got[1][name], want[1][name], err_msg=f"{what}: {name}")
        else:
            np.testing.assert_allclose(got[1][name], want[1][name], rtol=1e-9, atol=1e-6, err_msg=f"{what}: {name}")


def command(data: Path, work: Path, algorithm: str = "kmeans") -> list[str]:
    folder = data / "labelled" if algorithm in LABELLED else data / "counts" if algorithm in DOCUMENTS else data
    files, every, batch = "*.csv", EVERY, "2048"
    if algorithm in FEW:
        folder, every = folder.with_name(folder.name + "-few"), str(every_rows(algorithm))
    if algorithm in SERIES:
        folder, files, every, batch = data / "series", "*.jsonl", str(every_rows(algorithm)), "400"
    return [
        sys.executable, "-m", "onepass.cli", "train", *ALGORITHMS[algorithm],
        "--data", str(folder / files), "--seed", "7", "--batch-size", batch,
        "--checkpoint-dir", str(work / "ckpt"), "--checkpoint-every-rows", every, "--resume",
        "--out", str(work / "model"), "--quiet",
    ]


def run_to_end(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def timed_reference(cmd: list[str], ckpt: Path) -> tuple[float, float]:
    """Run ``cmd`` to the end; return the seconds to its first checkpoint (start-up:
    imports, compiling, opening the source, the first rows) and to its end."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    while proc.poll() is None:
        if first is None and (ckpt / "LATEST").exists():
            first = time.perf_counter() - started
        time.sleep(0.01)
    total = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr.read().decode()
    return (first if first is not None else total), total


def assert_last_checkpoint_loads(ckpt: Path, n: int) -> None:
    found = latest_checkpoint(ckpt)
    if found is not None:
        state, manifest = load_checkpoint(ckpt)
        assert state.n_rows_seen_ == manifest["rows_seen"]
        assert 0 < state.n_rows_seen_ <= n


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_killed_runs_resume_to_the_same_model(data: Path, tmp_path: Path, algorithm: str) -> None:
    n = n_rows(algorithm)
    reference = tmp_path / "reference"
    startup_seconds, run_seconds = timed_reference(command(data, reference, algorithm), reference / "ckpt")
    training_seconds = max(run_seconds - startup_seconds, 0.2)
    ref_model, ref_manifest = load_model(reference / "model")
    assert ref_manifest["rows_seen"] == n

    work = tmp_path / "killed"
    cmd = command(data, work, algorithm)
    # The worst moments of a checkpoint write first, through failpoints.
    which = sorted(ALGORITHMS).index(algorithm) % 2
    for point in (pair[which] for pair in FAILPOINTS):
        before = rows_checkpointed(work / "ckpt")
        env = {**os.environ, "ONEPASS_FAILPOINT": point}
        result = run_to_end(cmd, env)
        assert result.returncode == -signal.SIGKILL, f"{point}: exit {result.returncode} {result.stderr}"
        assert_last_checkpoint_loads(work / "ckpt", n)
        assert before <= rows_checkpointed(work / "ckpt") < n, point
    # Then SIGKILL at a random instant, whatever the process is doing: once during
    # start-up, then once in each half of the rows a resumed run has left: when its
    # checkpoints have passed a row drawn in that half, at a random instant of the next
    # checkpoint interval (reading, updating, or writing a checkpoint). Aimed by rows, not
    # by the clock, so a busy machine does not make the kills miss. A run that finishes
    # first must end with the reference model; the kills then start over from scratch.
    rng = np.random.default_rng(2024)
    interval_seconds = training_seconds * every_rows(algorithm) / n
    k = RANDOM_KILLS_WHILE_TRAINING
    planned = ["start-up"] + [f"training, part {i + 1} of {k}" for i in range(k)]
    landed = []
    for _ in range(3 * len(planned)):
        if len(landed) == len(planned):
            break
        phase = planned[len(landed)]
        done = rows_checkpointed(work / "ckpt")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if phase == "start-up":
            time.sleep(rng.uniform(0.3, 0.9) * startup_seconds)
        else:
            part = len(landed) - 1
            target = done + rng.uniform(part / k, (part + 1) / k) * (n - done)
            while proc.poll() is None and rows_checkpointed(work / "ckpt") < target:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 1) * interval_seconds)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed.append(phase)
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()
            model, manifest = load_model(work / "model")
            assert manifest["rows_seen"] == n
            assert_same_arrays(model.to_arrays(), ref_model.to_arrays(), "model of a run that finished")
            shutil.rmtree(work)  # finished between kills: go again from scratch
        assert_last_checkpoint_loads(work / "ckpt", n)
    assert landed == planned, f"only these random kills landed: {landed}"

    final = run_to_end(cmd)
    assert final.returncode == 0, final.stderr
    model, manifest = load_model(work / "model")
    assert manifest["rows_seen"] == n
    assert_same_arrays(model.to_arrays(), ref_model.to_arrays(), "final model")
    assert model.to_arrays()[0].get("leaderboard") == ref_model.to_arrays()[0].get("leaderboard")
    state, _ = load_checkpoint(work / "ckpt")
    ref_state, _ = load_checkpoint(reference / "ckpt")
    assert state.n_rows_seen_ == ref_state.n_rows_seen_ == n
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
