"""DeepAR's forecast metrics against hand-computed cases (GluonTS's definitions), and
against GluonTS's own Evaluator where gluonts is installed (the bench extra)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from onepass.errors import DataError, InvalidParameterError

# loaded by path: the module imports nothing from its package, which may import torch
_PATH = Path(__file__).parents[2] / "onepass" / "algorithms" / "deepar" / "_metrics.py"
_spec = importlib.util.spec_from_file_location("deepar_metrics_under_test", _PATH)
M = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(M)

NAN = float("nan")
Q3 = [0.1, 0.5, 0.9]


def fc(mean, **quantiles):
    return {"mean": mean, "quantiles": {k.replace("q", "0."): v for k, v in quantiles.items()}}


# two series, season 2; series B has a missing actual whose forecasts must not count
ACTUALS = [[10.0, 20.0], [1.0, NAN, 3.0]]
HISTORY = [[0.0, 5.0, 10.0, 20.0], [1.0, 1.0, 2.0, 2.0]]
FORECASTS = [fc([12.0, 18.0], q1=[8.0, 15.0], q5=[11.0, 19.0], q9=[14.0, 25.0]),
             fc([1.0, 100.0, 5.0], q1=[0.0, 0.0, 1.0], q5=[2.0, 50.0, 3.0], q9=[4.0, 200.0, 4.0])]


def test_quantile_loss_by_hand():
    # 2 * (0.1 * 1 [over] + 0.9 * 2 [under]); the NaN point is left out
    assert M.quantile_loss([1.0, 2.0, NAN], [2.0, 0.0, 5.0], 0.9) == pytest.approx(3.8)
    # at the median it is the absolute error
    y, f = np.array([3.0, -1.0, 7.0]), np.array([1.0, 2.0, 7.5])
    assert M.quantile_loss(y, f, 0.5) == pytest.approx(np.abs(y - f).sum())
    assert M.quantile_loss([5.0], [5.0], 0.3) == 0.0


def test_forecast_metrics_by_hand():
    m = M.forecast_metrics(ACTUALS, FORECASTS, Q3, HISTORY, season=2)
    # sum |y| over the 4 finite actuals: 10 + 20 + 1 + 3
    assert m["abs_target_sum"] == 34.0 and m["n_points"] == 4 and m["n_series"] == 2
    # 2 * the pinball losses: q=0.1, every actual above its forecast: 0.1*(2+5+1+2); q=0.5: 0.5*(1+1+1+0);
    # q=0.9, every actual below: 0.1*(4+5+3+1)
    assert m["QuantileLoss[0.1]"] == pytest.approx(2.0)
    assert m["QuantileLoss[0.5]"] == pytest.approx(3.0)
    assert m["QuantileLoss[0.9]"] == pytest.approx(2.6)
    assert m["wQuantileLoss[0.1]"] == pytest.approx(2.0 / 34)
    assert m["wQuantileLoss[0.5]"] == pytest.approx(3.0 / 34)
    assert m["wQuantileLoss[0.9]"] == pytest.approx(2.6 / 34)
    assert m["mean_wQuantileLoss"] == pytest.approx(7.6 / 3 / 34)
    # mean forecast: series MSEs (4 + 4) / 2 and (0 + 4) / 2
    assert m["RMSE"] == pytest.approx(math.sqrt(3.0))
    # median forecast: MAE 1 over seasonal error mean(|10-0|, |20-5|) = 12.5; MAE 0.5 over 1
    assert m["MASE"] == pytest.approx((1 / 12.5 + 0.5 / 1.0) / 2)
    assert m["ND"] == pytest.approx(3.0 / 34)


def test_rmse_is_the_root_of_the_mean_of_series_mse():
    # GluonTS averages per-series MSEs: (9 + 1) / 2, not the pooled (9 + 1 + 1 + 1) / 4
    actuals = [[0.0, NAN, NAN], [0.0, 0.0, 0.0]]
    forecasts = [fc([3.0, 0.0, 0.0], q5=[0.0, 0.0, 0.0]), fc([1.0, -1.0, 1.0], q5=[0.0, 0.0, 0.0])]
    m = M.forecast_metrics(actuals, forecasts, [0.5], [[1.0, 2.0]] * 2, season=1)
    assert m["RMSE"] == pytest.approx(math.sqrt(5.0))


def test_mase_scores_the_median_not_the_mean():
    actuals, history = [[4.0, 4.0]], [[0.0, 2.0, 0.0]]  # seasonal error (lag 1) 2
    good_median = M.forecast_metrics(actuals, [fc([0.0, 0.0], q5=[4.0, 4.0])], [0.5], history, 1)
    good_mean = M.forecast_metrics(actuals, [fc([4.0, 4.0], q5=[0.0, 0.0])], [0.5], history, 1)
    assert good_median["MASE"] == 0.0 and good_median["RMSE"] == 4.0
    assert good_mean["MASE"] == 2.0 and good_mean["RMSE"] == 0.0


def test_missing_actuals_are_ignored():
    base = M.forecast_metrics(ACTUALS, FORECASTS, Q3, HISTORY, 2)
    # a series with no finite actual adds nothing, not even to the means over series
    more = M.forecast_metrics([*ACTUALS, [NAN, NAN]], [*FORECASTS, fc([1e6, 1e6], q1=[0, 0], q5=[0, 0], q9=[9, 9])],
                              Q3, [*HISTORY, [1.0, 5.0, 2.0]], 2)
    for key in ("RMSE", "MASE", "mean_wQuantileLoss", "ND"):
        assert more[key] == pytest.approx(base[key])
    assert more["n_series"] == 3 and more["n_points"] == 4


def test_seasonal_error():
    assert M.seasonal_error([0.0, 5.0, 10.0, 20.0], 2) == 12.5
    # a history not longer than the season falls back to lag 1 (GluonTS's calculate_seasonal_error)
    assert M.seasonal_error([1.0, 4.0, 2.0], 3) == 2.5
    # pairs with a missing value are left out
    assert M.seasonal_error([1.0, NAN, 2.0, 6.0], 1) == 4.0
    assert math.isnan(M.seasonal_error([1.0], 1))


def test_flat_history_gives_infinite_mase_as_gluonts():
    m = M.forecast_metrics([[2.0]], [fc([1.0], q5=[1.0])], [0.5], [[3.0, 3.0, 3.0]], 1)
    assert m["MASE"] == math.inf


def test_bad_input_raises():
    with pytest.raises(DataError, match="no 0.5 quantile"):
        M.forecast_metrics([[1.0]], [fc([1.0], q1=[1.0])], [0.1], [[1.0, 2.0]], 1)
    with pytest.raises(DataError, match="NaN or inf"):
        M.forecast_metrics([[1.0]], [fc([NAN], q5=[1.0])], [0.5], [[1.0, 2.0]], 1)
    with pytest.raises(DataError, match="2 points, but the actuals have 1"):
        M.forecast_metrics([[1.0]], [fc([1.0, 2.0], q5=[1.0, 2.0])], [0.5], [[1.0, 2.0]], 1)
    with pytest.raises(DataError, match="one of each per series"):
        M.forecast_metrics([[1.0], [2.0]], [fc([1.0], q5=[1.0])], [0.5], [[1.0, 2.0]], 1)
    with pytest.raises(InvalidParameterError, match="strictly between 0 and 1"):
        M.forecast_metrics([[1.0]], [fc([1.0], q5=[1.0])], [1.5], [[1.0, 2.0]], 1)
    with pytest.raises(InvalidParameterError, match="season=0"):
        M.forecast_metrics([[1.0]], [fc([1.0], q5=[1.0])], [0.5], [[1.0, 2.0]], 0)


def test_matches_gluonts_evaluator_when_installed():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("gluonts")
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import QuantileForecast

    levels = list(M.DEFAULT_QUANTILES)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        actuals, forecasts, history, series, gluon = [], [], [], [], []
        for _ in range(5):
            n_past, horizon, scale = int(rng.integers(3, 50)), 6, 10 ** rng.uniform(0, 3)
            past, y = rng.normal(size=n_past) * scale, rng.normal(size=horizon) * scale
            past[rng.random(n_past) < 0.1] = np.nan
            y[rng.random(horizon) < 0.2] = np.nan
            mean, qs = rng.normal(size=horizon) * scale, np.sort(rng.normal(size=(9, horizon)) * scale, axis=0)
            actuals.append(y)
            history.append(past)
            forecasts.append({"mean": mean.tolist(), "quantiles": {str(q): qs[j].tolist() for j, q in enumerate(levels)}})
            index = pd.period_range("2026-01-01", periods=n_past + horizon, freq="h")
            series.append(pd.DataFrame(np.concatenate([past, y]), index=index))
            gluon.append(QuantileForecast(np.vstack([qs, mean[None]]), start_date=index[n_past],
                                          forecast_keys=[str(q) for q in levels] + ["mean"]))
        with np.errstate(all="ignore"):
            theirs, _ = Evaluator(quantiles=levels, seasonality=5, num_workers=0)(series, gluon)
        ours = M.forecast_metrics(actuals, forecasts, levels, history, 5)
        for key in ("RMSE", "mean_wQuantileLoss", "MASE", "ND", *(f"wQuantileLoss[{q}]" for q in levels)):
            assert ours[key] == pytest.approx(float(theirs[key]), rel=1e-9), key
