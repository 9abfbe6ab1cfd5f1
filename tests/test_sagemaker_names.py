"""SageMaker's hyperparameter names: the CLI's options, ``--hyperparameters`` JSON (string
values) and :func:`onepass.translate_hyperparameters` give the model onepass's own names
give; bad values and contradictions are clear errors naming the hyperparameter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import onepass
from onepass.algorithms._sagemaker_names import markdown_table
from onepass.cli import main
from onepass.errors import InvalidParameterError
from onepass.io import load_model
from onepass.state import ALGORITHMS

README = Path(__file__).resolve().parents[1] / "README.md"

# algorithm -> (SageMaker's names as SageMaker writes them, onepass's names, typed)
CASES = {
    "kmeans": ({"k": "3", "mini_batch_size": "100", "feature_dim": "4", "epochs": "2", "init_method": "kmeans++",
                "half_life_time_size": "0", "extra_center_factor": "4", "local_lloyd_max_iter": "50",
                "local_lloyd_num_trials": "3", "local_lloyd_tol": "0.001", "eval_metrics": '["msd"]'},
               {"n_clusters": 3, "batch_size": 100, "epochs": 2, "extra_center_factor": 4, "max_iter": 50,
                "n_trials": 3, "tol": 0.001}),
    "pca": ({"num_components": "2", "algorithm_mode": "randomized", "extra_components": "3", "subtract_mean": "false",
             "feature_dim": "4", "mini_batch_size": "100"},
            {"n_components": 2, "mode": "sketch", "extra_components": 3, "subtract_mean": False, "batch_size": 100}),
    "linear-learner": ({"predictor_type": "binary_classifier", "num_models": "2", "learning_rate": "0.05",
                        "l1": "auto", "wd": "0.0001", "mini_batch_size": "50", "num_point_for_scaler": "100",
                        "use_lr_scheduler": "false", "optimizer": "adam", "feature_dim": "4"},
                       {"num_models": 2, "learning_rate": 0.05, "wd": 0.0001, "mini_batch_size": 50,
                        "num_point_for_scaler": 100, "optimizer": "adam"}),
    "factorization-machines": ({"predictor_type": "binary_classifier", "num_factors": "2", "feature_dim": "4",
                                "eps": "1e-7", "factors_init_scale": "None", "linear_lr": "0.01"},
                               {"num_factors": 2, "feature_dim": 4, "epsilon": 1e-7, "linear_lr": 0.01}),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 rows: a 0/1 label first, then 4 features in three blobs (non-negative)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 1.0, (200, 4)) for c in (3.0, 8.0, 13.0)]).astype(np.float32)
    y = (X[:, 0] > 8).astype(np.float32)
    order = rng.permutation(len(X))
    path = tmp_path_factory.mktemp("sm") / "train.csv"
    np.savetxt(path, np.column_stack([y, X])[order], delimiter=",", fmt="%.5f")
    return path


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _flags(values: dict) -> list[str]:
    out: list[str] = []
    for name, value in values.items():
        out += [f"--{name.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return out


def _train(algorithm: str, data: Path, out: Path, *extra: str) -> np.ndarray:
    label = [] if algorithm in ("kmeans", "pca") else ["--label-column", "0"]
    skip = ["--label-column", "0"] if algorithm in ("kmeans", "pca") else []
    result = invoke("train", algorithm, "--data", str(data), *label, *skip, "--seed", "7", "--out", str(out), "-q",
                    *extra)
    assert result.exit_code == 0, result.output
    model, _ = load_model(out)
    X = np.loadtxt(data, delimiter=",", dtype=np.float32)[:50, 1:]
    return np.column_stack([np.asarray(v, dtype=np.float64).reshape(len(X), -1) for v in model.outputs(X).values()])


@pytest.mark.parametrize("algorithm", sorted(CASES))
def test_sagemaker_names_give_the_model_onepass_names_give(algorithm: str, data: Path, tmp_path: Path) -> None:
    sagemaker, own = CASES[algorithm]
    expected = _train(algorithm, data, tmp_path / "own", *_flags(own))
    by_flags = _train(algorithm, data, tmp_path / "flags", *_flags(sagemaker))
    (tmp_path / "hp.json").write_text(json.dumps(sagemaker))
    by_file = _train(algorithm, data, tmp_path / "file", "--hyperparameters", str(tmp_path / "hp.json"))
    np.testing.assert_array_equal(by_flags, expected)
    np.testing.assert_array_equal(by_file, expected)
    # the Python API: the same translation, handed to onepass.train
    hp = onepass.translate_hyperparameters(algorithm, sagemaker)
    label = {} if algorithm in ("kmeans", "pca") else {"label_column": 0}
    skip = {"label_column": 0} if algorithm in ("kmeans", "pca") else {}
    result = onepass.train(algorithm, str(data), seed=7, **label, **skip, **hp.train_kwargs())
    X = np.loadtxt(data, delimiter=",", dtype=np.float32)[:50, 1:]
    outputs = result.model.outputs(X)
    by_api = np.column_stack([np.asarray(v, dtype=np.float64).reshape(len(X), -1) for v in outputs.values()])
    np.testing.assert_array_equal(by_api, expected)


def test_ntm_names_reach_the_state() -> None:
    hp = onepass.translate_hyperparameters("ntm", {
        "num_topics": "5", "encoder_layers": "[30, 20]", "clip_gradient": "Inf", "batch_norm": "false",
        "optimizer": "adadelta", "mini_batch_size": "32", "epochs": "3", "feature_dim": "100"})
    assert hp.params == {"num_topics": 5, "encoder_layers": [30, 20], "clip_gradient": float("inf"),
                         "batch_norm": False, "optimizer": "adadelta", "mini_batch_size": 32, "feature_dim": 100}
    assert hp.train == {"epochs": 3}
    state = onepass.NTMState(**hp.params, seed=0)
    assert state.encoder_widths == [30, 20] and state.feature_dim == 100


def test_pca_modes_map_and_the_python_api_builds_the_state() -> None:
    hp = onepass.translate_hyperparameters("pca", {"num_components": "3", "algorithm_mode": "regular",
                                                   "extra_components": "-1"})
    assert hp.params == {"n_components": 3, "mode": "exact", "extra_components": "auto"}
    assert onepass.PCAState(**hp.params).mode == "exact"
    assert onepass.KMeansState(**onepass.translate_hyperparameters("kmeans", {"k": 10}).params).n_clusters == 10


@pytest.mark.parametrize(("algorithm", "given", "words"), [
    ("kmeans", {"k": "ten"}, ["k='ten'", "integer"]),
    ("kmeans", {"k": "0"}, ["k (onepass's n_clusters)", ">= 1"]),
    ("kmeans", {"k": "5", "n_clusters": 6}, ["k='5'", "n_clusters=6", "contradict"]),
    ("kmeans", {"init_method": "random"}, ["init_method='random'", "k-means++"]),
    ("kmeans", {"eval_metrics": '["ssd"]'}, ["eval_metrics", "msd"]),
    ("kmeans", {"local_lloyd_init_method": "forgy"}, ["local_lloyd_init_method='forgy'", "kmeans++"]),
    ("kmeans", {"clusters": "3"}, ["unknown hyperparameter clusters", "k,"]),
    ("pca", {"algorithm_mode": "fast"}, ["algorithm_mode='fast'", "regular, randomized"]),
    ("pca", {"subtract_mean": "yes"}, ["subtract_mean='yes'", "true or false"]),
    ("linear-learner", {"optimizer": "rmsprop"}, ["optimizer='rmsprop'", "adagrad"]),
    ("linear-learner", {"use_lr_scheduler": "true"}, ["use_lr_scheduler='true'", "schedule"]),
    ("linear-learner", {"init_method": "normal"}, ["init_method='normal'", "zero"]),
    ("linear-learner", {"positive_example_weight_mult": "auto"}, ["positive_example_weight_mult", "balanced"]),
    ("factorization-machines", {"clip_gradient": "5"}, ["clip_gradient='5'", "clip"]),
    ("ntm", {"encoder_layers": "[3, x]"}, ["encoder_layers='[3, x]'", "list of integers"]),
])
def test_bad_values_name_the_hyperparameter(algorithm: str, given: dict, words: list[str]) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        onepass.translate_hyperparameters(algorithm, given)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_contradictions_and_bad_widths_are_usage_errors(data: Path, tmp_path: Path) -> None:
    common = ("--data", str(data), "--label-column", "0", "-q", "--out", str(tmp_path / "m"))
    both = invoke("train", "kmeans", *common, "--k", "5", "--n-clusters", "6")
    assert both.exit_code == 2 and "k='5'" in both.output and "n_clusters=6" in both.output
    width = invoke("train", "kmeans", *common, "--k", "3", "--feature-dim", "5")
    assert width.exit_code == 2 and "feature_dim=5" in width.output and "4 features" in width.output
    (tmp_path / "hp.json").write_text(json.dumps({"k": "3", "mini_batch_size": "100"}))
    loop = invoke("train", "kmeans", *common, "--hyperparameters", str(tmp_path / "hp.json"), "--batch-size", "200")
    assert loop.exit_code == 2 and "mini_batch_size='100'" in loop.output and "batch_size=200" in loop.output
    agree = invoke("train", "kmeans", *common, "--hyperparameters", str(tmp_path / "hp.json"), "--n-clusters", "3")
    assert agree.exit_code == 0, agree.output
    (tmp_path / "bad.json").write_text('{"k": "3",')
    broken = invoke("train", "kmeans", *common, "--hyperparameters", str(tmp_path / "bad.json"))
    assert broken.exit_code == 2 and "bad.json" in broken.output and "not valid JSON" in broken.output
    (tmp_path / "list.json").write_text('["k", "3"]')
    not_object = invoke("train", "kmeans", *common, "--hyperparameters", str(tmp_path / "list.json"))
    assert not_object.exit_code == 2 and "JSON object" in not_object.output
    refused = invoke("train", "pca", *common, "--num-components", "2", "--algorithm-mode", "fast")
    assert refused.exit_code == 2 and "algorithm_mode='fast'" in refused.output


def test_readme_tables_are_the_declarations() -> None:
    readme = README.read_text()
    for algo in ALGORITHMS.values():
        assert algo.sagemaker_names, f"{algo.name} declares no SageMaker names"
        assert markdown_table(algo.sagemaker_names) in readme, f"README's table of {algo.name} is out of date"


def test_every_target_exists() -> None:
    """Each declaration names a real state keyword, finalize setting or loop setting."""
    import inspect

    from onepass.algorithms._sagemaker_names import TRAIN_SETTINGS

    for algo in ALGORITHMS.values():
        state = set(inspect.signature(algo.state.__init__).parameters)
        finalize = set(inspect.signature(algo.state.model).parameters)
        for name, spec in algo.sagemaker_names.items():
            if spec.to is None:
                continue
            where, _, setting = spec.to.rpartition(":")
            assert setting in {"": state, "finalize": finalize, "train": set(TRAIN_SETTINGS)}[where], (algo.name, name)
