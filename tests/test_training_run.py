"""A training run is one described thing (``onepass.training.TrainingRun``) that every
caller builds and one loop runs: the keyword API, the CLI, Ray's ``train_distributed``
and the SageMaker container. These tests check that each builds the run it should and
that what cannot run is refused from the description, before anything is read."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import onepass
from onepass.errors import InvalidParameterError
from onepass.training import Checkpoints, Data, TrainingRun, Workers

CLI = [sys.executable, "-m", "onepass.cli"]


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4)) + np.repeat(np.eye(4)[:3] * 6, 1000, axis=0)
    path = tmp_path_factory.mktemp("run") / "blobs.csv"
    np.savetxt(path, X[rng.permutation(len(X))], delimiter=",", header="a,b,c,d", comments="", fmt="%.6f")
    return path


def test_the_keyword_api_and_the_description_run_the_same(blobs: Path, tmp_path: Path) -> None:
    spec = TrainingRun.of("kmeans", str(blobs), params={"n_clusters": 3}, batch_size=500, seed=4,
                          checkpoint_dir=tmp_path / "a", checkpoint_every_rows=1000)
    assert spec.data == Data((str(blobs),)) and spec.checkpoints == Checkpoints(tmp_path / "a", 1000)
    a = spec.run()
    b = onepass.train("kmeans", blobs, params={"n_clusters": 3}, batch_size=500, seed=4)
    np.testing.assert_array_equal(a.state.to_arrays()[1]["centers"], b.state.to_arrays()[1]["centers"])
    # three checkpoints at 1000-row marks, one at the end
    assert a.n_rows_seen == b.n_rows_seen == 3000 and a.checkpoint is not None and a.checkpoint.name == "ckpt-000004"
    # a paused run described again with more rows goes on from its checkpoint
    paused = replace(spec, max_rows=1000, checkpoints=Checkpoints(tmp_path / "c", resume=True)).run()
    assert paused.paused and paused.n_rows_seen == 1000
    resumed = replace(spec, checkpoints=Checkpoints(tmp_path / "c", resume=True)).run()
    np.testing.assert_array_equal(resumed.state.to_arrays()[1]["centers"], a.state.to_arrays()[1]["centers"])


@pytest.mark.parametrize("change, name", [
    ({"epochs": 2}, "epochs"),
    ({"max_rows": 100}, "max_rows"),
    ({"feature_dim": 4}, "feature_dim"),
    ({"data": Data(("x.csv",), on_bad_record="quarantine", quarantine_file="q.jsonl")}, "quarantine_file"),
])
def test_what_workers_cannot_do_is_refused_from_the_description(change: dict, name: str) -> None:
    """Refused before Ray starts or a file is opened (``x.csv`` does not exist)."""
    spec = replace(TrainingRun("kmeans", Data(("x.csv",)), workers=Workers(2)), **change)
    with pytest.raises(InvalidParameterError, match=name):
        spec.check()
    with pytest.raises(InvalidParameterError, match=name):
        spec.run()


def test_the_cli_refuses_the_same_with_the_same_words(blobs: Path, tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "train", "kmeans", "--data", str(blobs), "--k", "3", "--workers", "2",
                           "--epochs", "2", "-q", "--out", str(tmp_path / "m")], capture_output=True, text=True)
    assert done.returncode != 0 and "epochs" in done.stderr and "Traceback" not in done.stderr


def test_the_sagemaker_container_describes_its_run(tmp_path: Path) -> None:
    """A File-mode job with a CSV channel: the label first, no header, checkpoints under
    ``checkpoints/`` resumed, the model to ``model/``, the hyperparameters translated."""
    from onepass.sagemaker._training import OptML, TrainingJob

    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "data" / "train").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"predictor_type": "binary_classifier", "mini_batch_size": "100", "epochs": "3", "feature_dim": "4"}))
    (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(
        {"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}}))
    opt_ml = OptML(root)
    spec = TrainingJob.read(opt_ml, "linear-learner").training_run(opt_ml)
    assert spec.data == Data((str(root / "input" / "data" / "train"),), format="csv", header=False, label_column=0)
    assert (spec.epochs, spec.feature_dim, spec.seed, spec.params["mini_batch_size"]) == (3, 4, 0, 100)
    assert spec.checkpoints.dir == str(root / "checkpoints") and spec.checkpoints.resume
    assert spec.out == str(root / "model") and spec.params["predictor_type"] == "binary_classifier"
    spec.check()
