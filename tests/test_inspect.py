"""``onepass inspect``: a summary for people by default (the algorithm, what it was trained
on, its hyperparameters, its headline numbers, the leaderboard as a table, the arrays in
one block, no checksums), the manifest as JSON with ``--json``, everything on stdout
(issue 21, item 6)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onepass.cli import main
from onepass.evaluation import summarize
from onepass.evaluation._text import format_number
from onepass.io._artifact import read_manifest
from onepass.training import train

CHECKSUM = re.compile(r"\b[0-9a-f]{64}\b")


def inspect(*args: str):  # noqa: ANN201
    result = CliRunner().invoke(main, ["inspect", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def kmeans_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("kmeans")
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
    np.save(d / "x.npy", (centers[rng.integers(0, 3, 2000)] + rng.normal(size=(2000, 2))).astype(np.float32))
    train("kmeans", d / "x.npy", params={"n_clusters": 3}, seed=0, out=d / "model")
    return d / "model"


def test_kmeans_summary_has_the_headline_numbers_and_no_checksums(kmeans_model: Path) -> None:
    result = inspect(kmeans_model)
    text, meta = result.stdout, read_manifest(kmeans_model)["meta"]
    assert result.stderr == ""
    assert text.startswith(f"kmeans model at {kmeans_model}\n  trained on 2,000 rows, 1 epoch(s), from ")
    assert "n_clusters" in text and "extra_center_factor" in text  # the hyperparameters
    assert f"inertia          {format_number(meta['inertia'])}" in text
    assert f"inertia_per_row  {format_number(meta['inertia_per_row'])}" in text
    assert meta["inertia_per_row"] == pytest.approx(meta["inertia"] / 2000)
    sizes = text[text.index("cluster sizes"):].splitlines()[2:5]  # the header line, then one line per cluster
    assert [int(line.split()[0]) for line in sizes] == [0, 1, 2]
    assert sum(float(line.split()[1].replace(",", "")) for line in sizes) == pytest.approx(2000)
    assert "cluster_centers  float32  3 x 2" in text  # the arrays, one line each
    assert not CHECKSUM.search(text) and "sha256" not in text
    assert "its state is kept in state/" in text
    assert len(text.splitlines()) < 40


def test_json_is_the_manifest_on_stdout(kmeans_model: Path) -> None:
    result = inspect(kmeans_model, "--json")
    shown = json.loads(result.stdout)  # one JSON document, nothing else
    assert shown == {**read_manifest(kmeans_model), "path": str(kmeans_model)}
    assert result.stderr == ""


def test_pca_summary_shows_each_components_explained_variance(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", (rng.normal(size=(1500, 5)) * [5, 3, 2, 1, 0.5]).astype(np.float32))
    model = train("pca", tmp_path / "x.npy", params={"n_components": 3}, seed=0, out=tmp_path / "m").model
    text = inspect(tmp_path / "m").stdout
    ratios = model.explained_variance_ratio_
    total = float(ratios.sum())
    assert f"3 components explain {total:.4g} of the training variance ({100 * total:.2f}%)" in text
    rows = text[text.index("explained variance ratio per component"):].splitlines()[2:5]
    assert [line.split()[1] for line in rows] == [format_number(float(r)) for r in ratios]
    assert rows[-1].split()[2] == format_number(float(np.cumsum(ratios)[-1]))


def test_linear_learner_summary_shows_the_chosen_model_and_the_leaderboard_on_stdout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 4))
    y = (X @ [1.0, -2.0, 0.5, 0.0] + rng.logistic(size=2000) > 1.0).astype(float)
    np.savetxt(tmp_path / "t.csv", np.column_stack([X, y]), delimiter=",", fmt="%.5f",
               header="a,b,c,d,label", comments="")
    model = train("linear-learner", tmp_path / "t.csv", label_column="label", seed=0, out=tmp_path / "m",
                  params={"predictor_type": "binary_classifier", "num_models": 3}).model
    result = inspect(tmp_path / "m")
    text = result.stdout
    assert result.stderr == ""  # the leaderboard too is on stdout
    assert "4 features: a, b, c, d; label column 'label'" in text
    probability = 1 / (1 + np.exp(-model.threshold_))
    assert f"decision threshold: {format_number(probability, 4)} (on the probability predict writes" in text
    assert f"chosen: model {model.chosen_['model']} (rank 0 of 3)" in text
    lines = text.splitlines()
    at = lines.index("leaderboard (validation scores; thresholds on predict's score)") + 1
    at += lines[at].startswith("  same for every model")
    header = lines[at].split()
    assert header[:2] == ["rank", "model"] and "threshold" in header
    board = [dict(zip(header, line.split(), strict=True)) for line in lines[at + 1:at + 4]]
    assert [int(r["rank"]) for r in board] == [0, 1, 2]
    for row, rec in zip(board, model.leaderboard_, strict=True):  # the logits stored, probabilities shown
        assert row["threshold"] == format_number(float(1 / (1 + np.exp(-rec["threshold"]))), 4)
    assert json.loads(inspect(tmp_path / "m", "--json").stdout)["meta"]["threshold"] == model.threshold_


def test_topic_and_forecast_models_from_their_manifests() -> None:
    ntm = summarize({"algorithm": "ntm", "kind": "ntm", "role": "model", "rows_seen": 500,
                     "meta": {"num_topics": 2, "decoder": "mixture", "topics": [["river", "boat"], ["judge", "court"]]}})
    assert "2 topics, mixture decoder" in ntm
    assert re.search(r"^\s+0\s+river boat$", ntm, re.M) and re.search(r"^\s+1\s+judge court$", ntm, re.M)
    deepar = summarize({"algorithm": "deepar", "kind": "forecast", "role": "model", "rows_seen": 20,
                        "meta": {"prediction_length": 12, "context_length": 24, "time_freq": "H",
                                 "likelihood": "student-T", "quantiles": [0.1, 0.5, 0.9]},
                        "metrics": {"validation_mean_wQuantileLoss": 0.0812}})
    assert re.search(r"^\s+prediction_length\s+12$", deepar, re.M)
    assert re.search(r"^\s+likelihood\s+student-T$", deepar, re.M)
    assert "validation_mean_wQuantileLoss  0.0812" in deepar


def test_a_model_written_before_headline_numbers_still_loads_and_inspects(kmeans_model: Path, tmp_path: Path) -> None:
    import shutil

    from onepass.io import load_model

    old = tmp_path / "old"
    shutil.copytree(kmeans_model, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for key in ("inertia_per_row", "cluster_sizes"):
        del manifest["meta"][key]
    (old / "manifest.json").write_text(json.dumps(manifest))
    model, _ = load_model(old)
    assert model.n_clusters == 3
    text = inspect(old).stdout
    assert f"inertia          {format_number(manifest['meta']['inertia'])}" in text
    assert "inertia_per_row  (not recorded)" in text and "cluster sizes" not in text
    # an older linear model's threshold: a logit in the manifest, a probability on screen
    shown = summarize({"kind": "linear-learner", "role": "model",
                       "meta": {"predictor_type": "binary_classifier", "loss": "logistic", "threshold": -0.296}})
    assert "decision threshold: 0.4265 (on the probability" in shown


def test_a_checkpoint_directory_shows_its_newest_checkpoint(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", rng.normal(size=(600, 3)).astype(np.float32))
    train("kmeans", tmp_path / "x.npy", params={"n_clusters": 2}, seed=0, batch_size=200,
          checkpoint_dir=tmp_path / "ckpt", checkpoint_every_rows=200)
    text = inspect(tmp_path / "ckpt").stdout
    assert text.startswith("kmeans checkpoint at ") and "ckpt-" in text.splitlines()[0]
    assert "trained on 600 rows" in text and "finished reading its data (epoch 1)" in text
    assert "'onepass finalize' makes a model of it" in text and not CHECKSUM.search(text)


def test_damaged_arrays_are_said(kmeans_model: Path, tmp_path: Path) -> None:
    """Issue 20, point 7: inspect said nothing of damaged arrays. A file of the wrong size
    shows at once; a flipped byte with --verify (its checksum)."""
    import shutil

    def run(path: Path, *flags: str):  # noqa: ANN202
        return CliRunner().invoke(main, ["inspect", str(path), *flags])

    assert run(kmeans_model).exit_code == 0 and run(kmeans_model, "--verify").exit_code == 0
    truncated = shutil.copytree(kmeans_model, tmp_path / "truncated")
    centers = truncated / "cluster_centers.npy"
    centers.write_bytes(centers.read_bytes()[:-4])
    result = run(truncated)
    assert result.exit_code == 3 and "damaged: cluster_centers.npy" in result.stderr and "truncated" in result.stderr
    flipped = shutil.copytree(kmeans_model, tmp_path / "flipped")
    data = bytearray((flipped / "cluster_centers.npy").read_bytes())
    data[-1] ^= 0x40
    (flipped / "cluster_centers.npy").write_bytes(bytes(data))
    assert run(flipped).exit_code == 0  # the size fits: only reading tells
    verified = run(flipped, "--verify")
    assert verified.exit_code == 3 and "checksum mismatch" in verified.stderr
