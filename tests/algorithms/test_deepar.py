"""DeepAR: series in (SageMaker's JSON lines), one LSTM across them, forecasts out.

The NumPy forecaster runs the torch network's arithmetic; forecasts are seeded; a series
arriving in stretches (by its id) trains on what came before; bad series name their file
and line; every likelihood trains and samples in its domain; the model beats the seasonal
naive forecast on related seasonal series; the CLI, ``predict`` and the server answer in
SageMaker's shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import onepass
from onepass.algorithms.deepar import DeepARState
from onepass.algorithms.deepar._metrics import forecast_metrics
from onepass.batch import Batch
from onepass.errors import BadRecordError, DataError
from onepass.sources._series import SeriesRows

P = 12
SMALL = {"prediction_length": P, "context_length": 24, "time_freq": "H", "num_cells": 16, "num_layers": 1,
         "mini_batch_size": 32, "learning_rate": 0.003, "windows_per_prediction_length": 4.0}


def related(n: int = 60, T: int = 240, seed: int = 0, ids: bool = False) -> list[dict]:
    """Hourly series sharing a daily shape (three groups of phase), scales 1 to 1000, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    out = []
    for i in range(n):
        group = i % 3
        level = 10 ** rng.uniform(0, 3)
        y = level * (2 + np.sin(2 * np.pi * (t + 8 * group) / 24) + 0.1 * rng.standard_normal(T))
        rec = {"start": "2026-03-01 00:00:00", "target": y.round(4).tolist(), "cat": [group]}
        if ids:
            rec["id"] = f"s{i}"
        out.append(rec)
    return out


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[onepass.DeepARModel, Path, list[dict]]:
    d = tmp_path_factory.mktemp("deepar")
    records = related()
    train = write(d / "train.jsonl", [{**r, "target": r["target"][:-P]} for r in records])
    result = onepass.train("deepar", train, params=SMALL, epochs=4, seed=0, batch_size=20, out=d / "model")
    return result.model, d, records


def test_the_numpy_forecaster_runs_the_torch_network(trained) -> None:
    """The model's LSTM and head, in NumPy, give what the state's torch network gives."""
    import torch

    model, d, records = trained
    state, _ = onepass.load_checkpoint(d / "model" / "state")
    rows = SeriesRows.of(records[:5])
    hist, scale, cov = model.inputs(rows, 0)
    from onepass.algorithms.deepar._features import window_inputs

    C, H = model.context_length, model.history_length
    x = np.concatenate([window_inputs(hist, model.lags, scale, H - C, C), cov[:, :C]], axis=2)
    state.network_.eval()
    with torch.no_grad():
        want = state.network_(torch.from_numpy(x), torch.from_numpy(rows.cat)).numpy()[:, -1]
    static = model._static(rows.cat)
    xs = np.concatenate([x, np.repeat(static[:, None, :], C, axis=1)], axis=2).astype(np.float32)
    hc = [(np.zeros((5, w.shape[0]), np.float32), np.zeros((5, w.shape[0]), np.float32)) for _, w, _ in model._lstm.layers]
    for t in range(C):
        top = model._lstm.step(xs[:, t], hc)
    np.testing.assert_allclose(model._head(top), want, rtol=1e-4, atol=1e-5)


def test_forecasts_beat_the_seasonal_naive_one(trained) -> None:
    model, _, records = trained
    got = model.evaluate(SeriesRows.of(records))
    actual = [np.array(r["target"][-P:]) for r in records]
    history = [np.array(r["target"][:-P]) for r in records]
    naive = [{"mean": h[-24:-24 + P].tolist(), "quantiles": {str(q): h[-24:-24 + P].tolist() for q in model.quantiles}}
             for h in history]
    baseline = forecast_metrics(actual, naive, model.quantiles, history, 24)
    assert got["mean_wQuantileLoss"] < 0.85 * baseline["mean_wQuantileLoss"], (got, baseline)
    assert got["RMSE"] < baseline["RMSE"]


def test_forecasts_are_seeded_and_shaped_like_sagemakers(trained) -> None:
    model, _, records = trained
    a = model.forecast(records[:3], num_samples=20, quantiles=[0.1, 0.9], output_types=["mean", "quantiles", "samples"],
                       seed=4)
    b = model.forecast(records[:3], num_samples=20, quantiles=[0.1, 0.9], output_types=["mean", "quantiles", "samples"],
                       seed=4)
    c = model.forecast(records[:3], num_samples=20, seed=5)
    assert a == b and a[0]["mean"] != c[0]["mean"]
    assert set(a[0]) == {"mean", "quantiles", "samples"} and set(a[0]["quantiles"]) == {"0.1", "0.9"}
    assert len(a[0]["mean"]) == P and np.array(a[0]["samples"]).shape == (20, P)
    assert all(lo <= hi for lo, hi in zip(a[0]["quantiles"]["0.1"], a[0]["quantiles"]["0.9"], strict=True))


def test_a_series_in_stretches_trains_on_what_came_before(tmp_path: Path) -> None:
    """Stretches of a series with an id extend it: windows span the stretches, and the
    state keeps the series' last points (checkpointed), never more than it needs."""
    records = related(n=6, T=120, ids=True)
    state = DeepARState(**SMALL, seed=0)
    for part in (slice(0, 20), slice(20, 50), slice(50, 120)):
        rows = SeriesRows.of([{**r, "target": r["target"][part],
                               "start": str(np.datetime64("2026-03-01T00:00:00") + np.timedelta64(part.start, "h"))}
                              for r in records])
        state.update(Batch(rows))
    keep = max(state.lags) + state.window
    assert set(state.tails_) == {f"s{i}" for i in range(6)}
    start, values, _ = state.tails_["s0"]
    assert len(values) == min(120, keep) and np.allclose(values, np.array(records[0]["target"])[-len(values):])
    assert start == np.datetime64("2026-03-01T00:00:00") + np.timedelta64(120 - len(values), "h")
    # the first stretch (20 points) is too short alone for a window of 12 + context; later ones are not
    assert state.n_short_series_ == 0 and state.n_windows_trained_ > 0
    meta, arrays = state.to_arrays()
    again = DeepARState.from_arrays(meta, arrays)
    assert list(again.tails_) == list(state.tails_)
    np.testing.assert_array_equal(again.tails_["s3"][1], state.tails_["s3"][1])


def test_bad_series_name_their_file_and_line(tmp_path: Path) -> None:
    lines = [{"start": "2026-01-01", "target": [1.0] * 30, "cat": [0]},
             {"start": "yesterday", "target": [1.0] * 30, "cat": [0]},
             {"start": "2026-01-01", "target": [1.0, "x"], "cat": [0]},
             {"start": "2026-01-01", "target": [1.0] * 30, "cat": [0], "dynamic_feat": [[1.0] * 10]},
             {"start": "2026-01-01", "target": [1.0] * 30, "cat": [7]}]
    path = write(tmp_path / "bad.jsonl", lines)
    params = {**SMALL, "time_freq": "D"}
    with pytest.raises(BadRecordError, match=r"line 2 of .*bad.jsonl.*'start'"):
        onepass.train("deepar", path, params=params)
    skipped = tmp_path / "q.jsonl"
    with pytest.raises(DataError, match=r"bad.jsonl:5: category 7 of cat\[0\] is not below its cardinality 1"):
        onepass.train("deepar", path, params=params, on_bad_record="quarantine", quarantine_file=skipped,
                      batch_size=1)  # the cardinality is the first batch's: line 1's
    reasons = [json.loads(line)["reason"] for line in skipped.read_text().splitlines()]
    assert len(reasons) == 3 and "not a number" in reasons[1] and "'dynamic_feat' has 10 points" in reasons[2]


@pytest.mark.parametrize("likelihood, target", [
    ("gaussian", lambda y: y), ("negative-binomial", lambda y: np.round(y)),
    ("beta", lambda y: 0.05 + 0.9 * y / (y.max() + 1)), ("deterministic-L1", lambda y: y)])
def test_every_likelihood_trains_and_samples_in_its_domain(likelihood: str, target) -> None:
    records = [{**r, "target": target(np.array(r["target"])).tolist()} for r in related(n=12, T=120)]
    state = DeepARState(**{**SMALL, "likelihood": likelihood}, seed=0)
    state.update(Batch(SeriesRows.of(records)))
    assert np.isfinite(state.loss_)
    paths = state.model().sample_paths(records[:4], num_samples=30, seed=0)
    assert paths.shape == (4, 30, P) and np.isfinite(paths).all()
    if likelihood == "negative-binomial":
        assert (paths >= 0).all() and np.array_equal(paths, np.round(paths))
    if likelihood == "beta":
        assert ((paths > 0) & (paths < 1)).all()
    if likelihood == "deterministic-L1":  # every path the same (to float32's last bits)
        np.testing.assert_allclose(paths, np.repeat(paths[:, :1], 30, axis=1), rtol=1e-5, atol=1e-5)


def test_the_cli_trains_predicts_and_the_server_answers_in_sagemakers_shape(trained, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from onepass.cli import main
    from tests.serve.test_app import loaded_app, request

    model, d, records = trained
    runner = CliRunner()
    out = tmp_path / "forecasts.jsonl"
    done = runner.invoke(main, ["predict", str(d / "model"), "--data", str(d / "train.jsonl"), "--out", str(out),
                                "--quantiles", "0.1,0.5,0.9", "--num-samples", "40", "--seed", "3",
                                "--plot", str(tmp_path / "forecasts.png")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "forecasts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == len(records) and set(lines[0]["quantiles"]) == {"0.1", "0.5", "0.9"}
    app = loaded_app(model)
    instances = [{**r, "target": r["target"][:-P]} for r in records[:5]]
    body = {"instances": instances, "configuration": {"num_samples": 40, "quantiles": ["0.1", "0.5", "0.9"],
                                                      "output_types": ["mean", "quantiles"], "seed": 3}}
    r = request(app, "POST", "/invocations", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    # the file's forecasts (same model, series, seed): the same draws, from network outputs
    # equal to float32's last bits (the server's batch holds 5 series, the file's 60)
    for got, want in zip(r.json()["predictions"], lines[:5], strict=True):
        np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-4)
        for q in ("0.1", "0.5", "0.9"):
            np.testing.assert_allclose(got["quantiles"][q], want["quantiles"][q], rtol=1e-4)
    bad = request(app, "POST", "/invocations", content=b'{"instances": [{"start": "2026-01-01", "target": "x"}]}',
                  headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "instance 0" in bad.json()["message"]


def test_the_sagemaker_container_trains_and_reports_the_test_channel(tmp_path: Path, capsys) -> None:
    """SageMaker DeepAR's job: JSON lines channels, the test channel's series forecast over
    their last prediction_length points, reported as SageMaker's #test_score lines; the
    scores are onepass tune's (score_models) on the same series."""
    from onepass.sagemaker import run_training_job
    from onepass.tune._from_state import score_models

    records = related(n=30, T=120)
    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    hyper = {"onepass_algorithm": "deepar", "prediction_length": str(P), "context_length": "24", "time_freq": "H",
             "epochs": "2", "num_cells": "8", "num_layers": "1", "mini_batch_size": "32"}
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyper))
    (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(
        {name: {"ContentType": "application/jsonlines", "TrainingInputMode": "File"} for name in ("train", "test")}))
    for name, recs in (("train", [{**r, "target": r["target"][:-P]} for r in records]), ("test", records)):
        (root / "input" / "data" / name).mkdir(parents=True)
        write(root / "input" / "data" / name / "part.jsonl", recs)
    assert run_training_job(root) == 0
    printed = capsys.readouterr().out
    model = onepass.load(root / "model")
    want = score_models([model], str(root / "input" / "data" / "test"), format="series")[0]
    assert f"#test_score (algo-1) : ('mean_wQuantileLoss', {want['mean_wQuantileLoss']!r})" in printed
    assert "('RMSE'," in printed and "('MASE'," in printed


def test_memory_is_fixed_by_max_series_not_by_the_series_seen() -> None:
    """Series with ids are kept (their last points) up to max_series, least recently seen
    out first: the state's arrays are as big after 10x more series."""
    state = DeepARState(**{**SMALL, "max_series": 40}, seed=0)
    sizes = []
    for part in range(10):
        records = [{**r, "id": f"p{part}-{i}"} for i, r in enumerate(related(n=40, T=60, seed=part))]
        state.update(Batch(SeriesRows.of(records)))
        sizes.append(sum(a.nbytes for a in state.to_arrays()[1].values()))
    assert len(state.tails_) == 40 and all(sid.startswith("p9-") for sid in state.tails_)
    assert sizes[-1] == sizes[0], sizes


def test_train_reports_a_test_channel(tmp_path: Path) -> None:
    """``onepass train deepar --test series.jsonl``: each test series' last prediction_length
    points forecast from the ones before, SageMaker's test:RMSE, test:mean_wQuantileLoss and
    MASE, as score_models gives them on the model written."""
    from click.testing import CliRunner

    from onepass.cli import main
    from onepass.tune._from_state import score_models

    records = related(n=20, T=120)
    train = write(tmp_path / "train.jsonl", [{**r, "target": r["target"][:-P]} for r in records])
    test = write(tmp_path / "test.jsonl", records)
    done = CliRunner().invoke(main, ["train", "deepar", "--data", str(train), "--test", str(test), "--prediction-length",
                                     str(P), "--context-length", "24", "--time-freq", "H", "--num-cells", "8",
                                     "--num-layers", "1", "--seed", "0", "--out", str(tmp_path / "m"),
                                     "--metrics", str(tmp_path / "metrics.jsonl"), "-q"])
    assert done.exit_code == 0, done.output
    want = score_models([onepass.load(tmp_path / "m")], str(test), format="series", seed=0)[0]
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record == {"event": "test", **{f"test:{k}": v for k, v in want.items()}}
    assert f"test:RMSE = {want['RMSE']:.6g}" in done.output


def test_dropout_draws_from_the_states_own_generator() -> None:
    """Two LSTM layers with dropout: the same seed gives the same network whatever torch's
    global generator holds (it seeded nothing before: runs in two processes differed)."""
    import torch

    records = SeriesRows.of(related(n=8, T=80))
    params = {**SMALL, "num_layers": 2, "dropout_rate": 0.3}
    torch.manual_seed(1)
    a = DeepARState(**params, seed=3)
    a.update(Batch(records))
    torch.manual_seed(2)
    b = DeepARState(**params, seed=3)
    b.update(Batch(records))
    for name, values in a.to_arrays()[1].items():
        np.testing.assert_array_equal(values, b.to_arrays()[1][name], err_msg=name)
    assert torch.initial_seed() == 2  # torch's own generator left as the caller set it
