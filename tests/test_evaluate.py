"""``onepass evaluate``: one read of labelled (or unlabelled) data, each algorithm's own
measures, checked against an independent computation (scikit-learn, NumPy); a table for
people, one JSON object for tools, a picture; and one definition of each unit across
``tune``, ``evaluate``, ``inspect`` and the metrics file (issue 21, items 1 and 7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onepass.cli import main
from onepass.errors import InvalidParameterError
from onepass.evaluation import evaluate
from onepass.io import load_model
from onepass.training import train


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _labelled_csv(path: Path, kind: str, n: int = 2500, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    W = np.random.default_rng(99).normal(size=(d, 3))  # one truth; rows and noise by seed
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    if kind == "binary_classifier":
        y = (X @ W[:, 0] + rng.logistic(size=n) > 0.3).astype(np.float32)
    elif kind == "multiclass_classifier":
        y = np.argmax(X @ W + rng.gumbel(size=(n, 3)), axis=1).astype(np.float32)
    else:
        y = (X @ W[:, 0] + 0.5 * rng.normal(size=n)).astype(np.float32)
    X = np.round(X, 5)  # what the file holds
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.5f",
               header=",".join([f"x{j}" for j in range(d)] + ["label"]), comments="")
    return X, y


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    d = tmp_path_factory.mktemp("binary")
    _labelled_csv(d / "train.csv", "binary_classifier", seed=0)
    X, y = _labelled_csv(d / "test.csv", "binary_classifier", seed=1)
    train("linear-learner", d / "train.csv", label_column="label",
          params={"predictor_type": "binary_classifier", "num_models": 4}, seed=0, out=d / "model")
    return d / "model", d / "test.csv", X, y


def test_binary_classifier_measures_match_scikit_learn(binary) -> None:
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    model_dir, test, X, y = binary
    model, _ = load_model(model_dir)
    result = evaluate(model_dir, test)  # the label column: the one the model was trained with
    m = result.measures
    assert result.n_rows == len(y) and result.task == "binary_classifier"
    p = model.predict_proba(X)[:, 1]
    pred = model.predict(X)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-3)  # from a 16,384-bin histogram
    assert m["cross_entropy"] == pytest.approx(log_loss(y, p), rel=1e-4)
    # at the model's own threshold: exact counts
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["f1"] == pytest.approx(f1_score(y, pred), abs=1e-12)
    assert m["precision"] == pytest.approx(precision_score(y, pred), abs=1e-12)
    assert m["recall"] == pytest.approx(recall_score(y, pred), abs=1e-12)
    assert result.details["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert result.model["threshold"] == pytest.approx(_sigmoid(model.threshold_), rel=1e-12)
    fpr, tpr = result.curves["roc_fpr"], result.curves["roc_tpr"]
    assert fpr[0] == tpr[0] == 1.0 and fpr[-1] == tpr[-1] == 0.0 and np.all(np.diff(fpr) <= 0)
    # calibration: each bin's mean predicted probability and the share of positives in it
    kept = result.curves["calibration_rows"]
    assert kept.sum() == len(y)
    assert np.all(np.abs(result.curves["calibration_predicted"] - result.curves["calibration_observed"]) < 0.1)


@pytest.mark.parametrize("kind", ["multiclass_classifier", "regressor"])
def test_multiclass_and_regression_measures_match_scikit_learn(tmp_path: Path, kind: str) -> None:
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        log_loss,
        mean_absolute_error,
        mean_squared_error,
        r2_score,
    )

    _labelled_csv(tmp_path / "train.csv", kind, n=2000, seed=2)
    X, y = _labelled_csv(tmp_path / "test.csv", kind, n=1500, seed=3)
    params = {"predictor_type": kind, "num_models": 2, **({"num_classes": 3} if kind == "multiclass_classifier" else {})}
    model = train("linear-learner", tmp_path / "train.csv", label_column="label", params=params, seed=0).model
    result = evaluate(model, tmp_path / "test.csv", label_column="label", batch_size=400)
    m = result.measures
    if kind == "multiclass_classifier":
        pred = model.predict(X)
        assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
        assert m["cross_entropy"] == pytest.approx(log_loss(y, model.predict_proba(X), labels=[0, 1, 2]), rel=1e-4)
        assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)
        assert result.details["confusion_matrix"] == confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    else:
        pred = model.predict(X).astype(np.float64)
        assert m["rmse"] == pytest.approx(mean_squared_error(y, pred) ** 0.5, rel=1e-5)
        assert m["mae"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-5)
        assert m["r2"] == pytest.approx(r2_score(y, pred), rel=1e-5)
        assert len(result.curves["predicted"]) == 1500  # the residual sample: every row, up to 2,000


def test_factorization_machines_binary_measures(tmp_path: Path) -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    _labelled_csv(tmp_path / "train.csv", "binary_classifier", n=2000, seed=4)
    X, y = _labelled_csv(tmp_path / "test.csv", "binary_classifier", n=1000, seed=5)
    model = train("factorization-machines", tmp_path / "train.csv", label_column="label",
                  params={"predictor_type": "binary_classifier", "num_factors": 2}, seed=0).model
    m = evaluate(model, tmp_path / "test.csv", label_column="label").measures
    p = model.predict_proba(X)[:, 1]
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-3)
    assert m["cross_entropy"] == pytest.approx(log_loss(y, p), rel=1e-4)
    assert m["accuracy"] == pytest.approx(float((model.predict(X) == y).mean()), abs=1e-12)


def _blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8]], dtype=np.float64)
    return (centers[rng.integers(0, 4, n)] + rng.normal(size=(n, 3))).astype(np.float32)


def test_kmeans_inertia_in_total_and_per_row_and_cluster_sizes(tmp_path: Path) -> None:
    from sklearn.metrics import silhouette_score

    np.save(tmp_path / "train.npy", _blobs(3000, 0))
    X = _blobs(1500, 1)  # fewer than the silhouette's 2,000-row sample: it sees every row
    np.save(tmp_path / "test.npy", X)
    model = train("kmeans", tmp_path / "train.npy", params={"n_clusters": 4}, seed=0).model
    result = evaluate(model, tmp_path / "test.npy", batch_size=500)
    d2 = ((X[:, None, :].astype(np.float64) - model.cluster_centers_[None].astype(np.float64)) ** 2).sum(axis=2)
    labels = d2.argmin(axis=1)
    assert result.measures["inertia"] == pytest.approx(d2.min(axis=1).sum(), rel=1e-5)
    assert result.measures["inertia_per_row"] == pytest.approx(d2.min(axis=1).mean(), rel=1e-5)
    assert result.details["cluster_sizes"] == np.bincount(labels, minlength=4).tolist()
    assert result.measures["silhouette"] == pytest.approx(silhouette_score(X, labels), abs=1e-5)


def test_pca_explained_variance_ratio_per_component_of_the_rows_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scales = np.array([6.0, 4, 2, 1, 0.5, 0.25])
    X = (rng.normal(size=(2000, 6)) * scales + 3).astype(np.float32)
    np.save(tmp_path / "train.npy", X)
    H = (rng.normal(size=(800, 6)) * scales * np.array([1, 1, 1, 3, 1, 1]) + 3).astype(np.float32)
    np.save(tmp_path / "held.npy", H)
    model = train("pca", tmp_path / "train.npy", params={"n_components": 3}, seed=0).model
    # On the training rows, the ratios are the model's own (the same definition).
    on_train = evaluate(model, tmp_path / "train.npy", batch_size=300)
    ratios = [c["explained_variance_ratio"] for c in on_train.details["components"]]
    np.testing.assert_allclose(ratios, model.explained_variance_ratio_, rtol=1e-5)
    assert on_train.measures["validation_explained_variance"] == pytest.approx(model.explained_variance_ratio_.sum(),
                                                                               rel=1e-5)
    # Held-out rows, by NumPy: each axis' share of the rows' squared distances to the mean.
    held = evaluate(model, tmp_path / "held.npy", batch_size=300)
    centered = H.astype(np.float64) - model.mean_
    Z = centered @ model.components_.T
    want = (Z**2).sum(axis=0) / (centered**2).sum()
    np.testing.assert_allclose([c["explained_variance_ratio"] for c in held.details["components"]], want, rtol=1e-6)
    assert held.measures["validation_explained_variance"] == pytest.approx(want.sum(), rel=1e-6)
    recon = Z @ model.components_ + model.mean_
    assert held.measures["reconstruction_error"] == pytest.approx(((H - recon) ** 2).sum(axis=1).mean(), rel=1e-5)
    assert want.sum() < model.explained_variance_ratio_.sum() - 0.05  # the held-out rows differ: it shows


def test_topic_model_measures_are_the_models_own(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from onepass.algorithms.ntm._quality import npmi_coherence, topic_uniqueness

    rng = np.random.default_rng(0)
    beta = np.random.default_rng(123).dirichlet(np.full(30, 0.05), size=3)
    docs = np.vstack([rng.multinomial(30, p) for p in rng.dirichlet(np.full(3, 0.1), size=1200) @ beta])
    np.save(tmp_path / "train.npy", docs[:1000].astype(np.float32))
    np.save(tmp_path / "test.npy", docs[1000:].astype(np.float32))
    model = train("ntm", tmp_path / "train.npy", params={"num_topics": 3}, seed=0).model
    X = docs[1000:].astype(np.float32)
    whole = evaluate(model, tmp_path / "test.npy", batch_size=1000)  # one batch: the model's evaluate exactly
    expected = model.evaluate(X)
    for name in ("perplexity", "total_loss", "npmi", "topic_uniqueness"):
        assert whole.measures[name] == pytest.approx(expected[name], rel=1e-6), name
    assert whole.measures["npmi"] == pytest.approx(npmi_coherence(model.topic_word_, X).mean(), rel=1e-9)
    assert whole.measures["topic_uniqueness"] == pytest.approx(topic_uniqueness(model.topic_word_), rel=1e-12)
    # streamed in batches: NPMI's co-document counts add up exactly
    batched = evaluate(model, tmp_path / "test.npy", batch_size=64)
    assert batched.measures["npmi"] == pytest.approx(whole.measures["npmi"], rel=1e-12)
    assert [t["top_words"] for t in batched.details["topics"]] == model.top_words_


def test_forecaster_measures_are_the_test_channels(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from onepass.sources._series import SeriesRows

    rng = np.random.default_rng(0)
    t = np.arange(72)
    records = [{"start": "2026-03-01 00:00:00",
                "target": (10 * (2 + np.sin(2 * np.pi * (t + 8 * (i % 3)) / 24)) + rng.normal(size=72)).round(3).tolist()}
               for i in range(8)]
    (tmp_path / "series.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    model = train("deepar", tmp_path / "series.jsonl", seed=0, params={
        "prediction_length": 6, "context_length": 12, "time_freq": "H", "num_cells": 4, "num_layers": 1,
        "num_eval_samples": 20}).model
    result = evaluate(model, tmp_path / "series.jsonl", seed=3)
    rows = SeriesRows.of(records)
    expected = model.evaluate(rows, seed=3)
    assert set(expected) <= set(result.measures)
    for name, value in expected.items():
        assert result.measures[name] == pytest.approx(value, rel=1e-9), name
    # RMSE by NumPy: the mean forecast of each series' last 6 points from the ones before
    cut = [{**r, "target": r["target"][:-6]} for r in records]
    means = np.array([f["mean"] for f in model.forecast(SeriesRows.of(cut), seed=3)])
    actual = np.array([r["target"][-6:] for r in records])
    assert result.measures["RMSE"] == pytest.approx(np.sqrt(((means - actual) ** 2).mean()), rel=1e-6)
    assert result.task == "forecast"


def test_the_cli_prints_a_table_json_and_a_plot(binary, tmp_path: Path) -> None:
    model_dir, test, _, _ = binary
    shown = invoke("evaluate", str(model_dir), "--data", str(test), "--plot", str(tmp_path / "roc.png"))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("linear-learner (binary classifier) on 2,500 rows")
    assert "decision threshold" in lines[1]
    for name in ("auc", "cross_entropy", "accuracy", "f1", "precision", "recall"):
        assert any(line.split()[:1] == [name] for line in lines), name
    assert "confusion matrix (rows: actual label, columns: predicted label)" in shown.stdout
    assert (tmp_path / "roc.png").stat().st_size > 10_000
    as_json = invoke("evaluate", str(model_dir), "--data", str(test), "--json")
    assert as_json.exit_code == 0
    record = json.loads(as_json.stdout)  # one JSON object, nothing else on stdout
    api = evaluate(model_dir, test)
    assert record["measures"] == pytest.approx(api.measures)
    assert record["rows"] == 2500 and record["details"]["confusion_matrix"] == api.details["confusion_matrix"]


def test_a_classifier_without_labels_is_a_usage_error_naming_the_option(binary, tmp_path: Path) -> None:
    from onepass.io import save_model

    model_dir, test, X, _ = binary
    model, _ = load_model(model_dir)
    save_model(tmp_path / "bare", model)  # a manifest recording no label column
    np.savetxt(tmp_path / "unlabelled.csv", X, delimiter=",", fmt="%.5f")
    shown = invoke("evaluate", str(tmp_path / "bare"), "--data", str(tmp_path / "unlabelled.csv"))
    assert shown.exit_code == 2
    assert "needs the labels: give --label-column" in shown.stderr and "records no label column" in shown.stderr
    with pytest.raises(InvalidParameterError, match="needs the labels"):
        evaluate(model, tmp_path / "unlabelled.csv")


def test_plot_without_matplotlib_names_the_extra_before_reading(binary, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    model_dir, _, _, _ = binary
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    shown = invoke("evaluate", str(model_dir), "--data", "no-such-file.csv", "--plot", "x.png")
    assert shown.exit_code == 2
    assert "'plot' extra" in shown.stderr and "pip install 'onepass[plot]'" in shown.stderr  # not a missing file


# -- units: one definition across tune, evaluate, inspect and the metrics file (item 7) ------------


def test_inertia_is_one_definition_in_tune_evaluate_inspect_and_the_metrics_file(tmp_path: Path) -> None:
    from onepass.tune import tune

    np.save(tmp_path / "train.npy", _blobs(3000, 2))
    V = _blobs(1000, 3)
    np.save(tmp_path / "val.npy", V)
    metrics = tmp_path / "metrics.jsonl"
    done = invoke("train", "kmeans", "--data", str(tmp_path / "train.npy"), "--n-clusters", "4", "--seed", "0",
                  "--out", str(tmp_path / "model"), "--test", str(tmp_path / "val.npy"), "--metrics", str(metrics),
                  "--quiet")
    assert done.exit_code == 0, done.output
    model, manifest = load_model(tmp_path / "model")
    exact = model.inertia(V)  # the model's definition: a total
    board = tune(tmp_path / "model", validation=tmp_path / "val.npy", params=["n_clusters=4"])
    assert board[0]["inertia"] == pytest.approx(exact, rel=1e-5)
    assert board[0]["inertia_per_row"] == pytest.approx(exact / len(V), rel=1e-5)
    result = evaluate(tmp_path / "model", tmp_path / "val.npy")
    assert result.measures["inertia"] == pytest.approx(board[0]["inertia"], rel=1e-9)
    test = next(json.loads(line) for line in metrics.read_text().splitlines() if '"test"' in line)
    assert test["test:inertia"] == pytest.approx(exact, rel=1e-5)
    assert test["test:inertia_per_row"] == pytest.approx(exact / len(V), rel=1e-5)
    # the model's own (training) numbers: a total, and per row over the rows' weight
    meta = manifest["meta"]
    assert meta["inertia"] == pytest.approx(model.inertia_)
    assert meta["inertia_per_row"] == pytest.approx(model.inertia_ / model.cluster_weights_.sum())
    assert sum(meta["cluster_sizes"]) == pytest.approx(3000)
    summary = invoke("inspect", str(tmp_path / "model")).stdout
    from onepass.evaluation._text import format_number

    assert f"inertia          {format_number(model.inertia_)}" in summary
    assert f"inertia_per_row  {format_number(meta['inertia_per_row'])}" in summary


def test_the_threshold_shown_is_the_probability_predict_uses(binary, tmp_path: Path) -> None:
    from onepass.serve import predict_file
    from onepass.tune import tune

    model_dir, test, X, _ = binary
    board = tune(model_dir, validation=test, params=["rank=0:1"], label_column="label", metric="f1",
                 out=tmp_path / "tuned")
    shown = board.chosen["threshold_f1"]
    assert 0 < shown < 1  # a probability, not a logit
    tuned, manifest = load_model(tmp_path / "tuned")
    assert _sigmoid(tuned.threshold_) == pytest.approx(shown, rel=1e-9)
    assert manifest["tune"]["threshold_unit"] == "score"
    predict_file(tuned, str(test), tmp_path / "p.csv", label_column="label")
    out = np.genfromtxt(tmp_path / "p.csv", delimiter=",", names=True)
    clear = np.abs(out["score"] - shown) > 1e-6  # float32 scores: rows at the threshold itself aside
    assert clear.sum() > len(out) * 0.99
    assert np.array_equal(out["predicted_label"][clear] == 1, out["score"][clear] >= shown)
    # evaluate and inspect show the same number
    assert evaluate(tmp_path / "tuned", test).model["threshold"] == pytest.approx(shown, rel=1e-9)
    from onepass.evaluation._text import format_number

    summary = invoke("inspect", str(tmp_path / "tuned")).stdout
    assert f"decision threshold: {format_number(shown, 4)} (on the probability" in summary


def test_what_a_report_keeps_is_fixed_by_the_model_not_the_rows() -> None:
    from onepass.algorithms.linear import LinearLearnerModel
    from onepass.batch import Batch
    from onepass.tune._scorers import scorer_for

    rng = np.random.default_rng(0)
    sizes = []
    for predictor_type in ("regressor", "binary_classifier"):
        model = LinearLearnerModel(rng.normal(size=(3, 1)).astype(np.float32), np.zeros(1, np.float32),
                                   predictor_type=predictor_type, loss="logistic")
        scorer = scorer_for(model.kind)([model], detailed=True)
        for _ in range(6):
            X = rng.normal(size=(1000, 3)).astype(np.float32)
            scorer.update(Batch(X, (rng.random(1000) < 0.5).astype(np.float32)))
            kept = [scorer.hist, scorer.pairs.array(), *(c for c in scorer.confusion if c is not None)]
            sizes.append(sum(a.nbytes for a in kept))
        report = scorer.report(0)
        if predictor_type == "regressor":
            assert len(report["curves"]["predicted"]) == 2000  # a uniform sample of the 6,000 rows
        else:
            assert np.array(report["details"]["confusion_matrix"]).sum() == 6000
    assert sizes[2] == sizes[5] and sizes[8] == sizes[11]  # flat once the sample is full
