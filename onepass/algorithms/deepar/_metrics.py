"""Accuracy of probabilistic forecasts: what SageMaker DeepAR's test channel reports.

SageMaker DeepAR scores a test channel with ``RMSE``, ``mean_wQuantileLoss`` and
``wQuantileLoss[q]`` per quantile; GluonTS's ``Evaluator`` (``gluonts.evaluation``,
``_base.py`` and ``metrics.py``) computes the same and ``MASE``. The definitions here are
GluonTS's, so a onepass forecast and a GluonTS or statsforecast forecast are scored by
one set of functions, and the figures compare with GluonTS's own:

- quantile loss of level ``q`` on one series: ``2 * sum |(f_q - y) * (1{y <= f_q} - q)|``;
- ``wQuantileLoss[q]``: the quantile losses summed over every point of every series,
  over ``sum |y|`` on the same points; ``mean_wQuantileLoss``: their mean over the levels;
- ``RMSE``: the square root of the mean over series of each series' mean squared error of
  the *mean* forecast (GluonTS averages per-series MSEs, so with equal lengths and no
  missing value it is the RMSE over all points);
- ``MASE``: the mean over series of each series' mean absolute error of the *median*
  forecast (the 0.5 quantile, as GluonTS takes it) over its seasonal error, the mean of
  ``|x[t] - x[t - season]|`` over the series' in-sample values (lag 1 when the history is
  not longer than the season);
- ``ND``: the absolute error of the median summed over all points, over ``sum |y|``.

Missing actuals (NaN, or inf) are left out of every sum and mean, as GluonTS's
``ignore_invalid_values`` does; a series with no actual left is left out of the means
over series. A seasonal error of zero makes that series' MASE infinite, which the mean
keeps (GluonTS's ``aggregate_no_nan``).

NumPy only: no torch, so the measures load where the models do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from onepass.errors import DataError, InvalidParameterError

__all__ = ["DEFAULT_QUANTILES", "forecast_metrics", "quantile_loss", "seasonal_error"]

DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _series(values, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise DataError(f"{name} must be a 1-d sequence of numbers, got shape {a.shape}")
    return a


def _level(q) -> float:
    try:
        level = float(q)
    except (TypeError, ValueError):
        level = float("nan")
    if not 0.0 < level < 1.0:
        raise InvalidParameterError(f"quantile {q!r}: expected a number strictly between 0 and 1, such as 0.1")
    return level


def quantile_loss(actual, forecast, q: float) -> float:
    """GluonTS's quantile loss of the level-``q`` forecast of one series, summed.

    ``2 * sum |(forecast - actual) * (1{actual <= forecast} - q)|`` over the points whose
    actual is finite: twice the pinball loss, so that at ``q = 0.5`` it is the absolute
    error.

    Parameters
    ----------
    actual : array-like of float, shape (n,)
        The observed values; NaN (or inf) where missing.
    forecast : array-like of float, shape (n,)
        The level-``q`` quantile forecast of the same points.
    q : float
        The quantile level, strictly between 0 and 1.

    Returns
    -------
    float

    Examples
    --------
    >>> quantile_loss([1.0, 2.0, float("nan")], [2.0, 0.0, 5.0], 0.9)
    3.8
    """
    level = _level(q)
    y, f = _series(actual, "actual"), _series(forecast, "forecast")
    if y.shape != f.shape:
        raise DataError(f"actual has {y.size} points but forecast has {f.size}; give one forecast per actual")
    ok = np.isfinite(y)
    y, f = y[ok], f[ok]
    return float(2.0 * np.sum(np.abs((f - y) * ((y <= f) - level))))


def seasonal_error(insample, season: int) -> float:
    """Mean of ``|x[t] - x[t - season]|`` over a series' history (GluonTS's seasonal error).

    Pairs with a missing value are left out; lag 1 is used when the history is not longer
    than ``season``; NaN when no pair is left.

    Examples
    --------
    >>> seasonal_error([1.0, 2.0, 4.0, 3.0], season=2)
    2.0
    >>> seasonal_error([1.0, 3.0], season=24)
    2.0
    """
    x = _series(insample, "insample")
    lag = season if season < x.size else 1
    d = np.abs(x[:-lag] - x[lag:]) if x.size > lag else np.empty(0)
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else float("nan")


def _quantile_forecasts(fc: Mapping, levels: Sequence[float], i: int, n: int) -> dict[float, np.ndarray]:
    given = fc.get("quantiles")
    if not isinstance(given, Mapping):
        raise DataError(f"forecast {i}: no 'quantiles' object; expected {{'mean': [...], 'quantiles': "
                        "{'0.1': [...], ...}}, SageMaker's response shape")
    by_level: dict[float, object] = {}
    for key, values in given.items():
        try:
            by_level[float(key)] = values
        except (TypeError, ValueError):
            raise DataError(f"forecast {i}: quantile key {key!r} is not a number such as '0.1'") from None
    out = {}
    for q in levels:
        if q not in by_level:
            raise DataError(f"forecast {i}: no {q:g} quantile among {sorted(by_level)}; forecast with quantiles "
                            f"including {q:g}")
        out[q] = _checked_forecast(by_level[q], f"forecast {i}, quantile {q:g}", n)
    return out


def _checked_forecast(values, where: str, n: int) -> np.ndarray:
    a = _series(values, where)
    if a.size != n:
        raise DataError(f"{where}: {a.size} points, but the actuals have {n}; forecast prediction_length points")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{where}: holds NaN or inf; a forecast must be finite")
    return a


def forecast_metrics(actuals, forecasts, quantiles, insample, season: int) -> dict:
    """Score forecasts of many series as SageMaker DeepAR's test channel and GluonTS do.

    Parameters
    ----------
    actuals : sequence of array-like of float
        Per series, the observed values of the forecast horizon; NaN where missing.
    forecasts : sequence of dict
        Per series, SageMaker DeepAR's response shape: ``{"mean": [...], "quantiles":
        {"0.1": [...], ...}}`` (other keys, such as ``"samples"``, are ignored). The
        quantiles must include every level of ``quantiles`` and 0.5 (for MASE).
    quantiles : sequence of float
        The levels scored, such as :data:`DEFAULT_QUANTILES` (0.1 to 0.9, GluonTS's default).
    insample : sequence of array-like of float
        Per series, its history before the horizon (the training target), for MASE's
        seasonal error.
    season : int
        The seasonal lag of MASE's naive forecast (GluonTS's default for hourly data: 24).

    Returns
    -------
    dict
        ``RMSE``, ``MSE``, ``mean_wQuantileLoss``, ``wQuantileLoss[q]`` and
        ``QuantileLoss[q]`` per level (keys formatted as GluonTS's: ``wQuantileLoss[0.1]``),
        ``MASE``, ``ND``, ``abs_error``, ``abs_target_sum``, ``n_series`` and ``n_points``
        (the finite actuals scored).

    Examples
    --------
    >>> m = forecast_metrics(
    ...     actuals=[[3.0, float("nan")], [1.0, 2.0]],
    ...     forecasts=[{"mean": [2.0, 9.0], "quantiles": {"0.5": [2.0, 9.0]}},
    ...                {"mean": [1.0, 4.0], "quantiles": {"0.5": [1.0, 4.0]}}],
    ...     quantiles=[0.5], insample=[[1.0, 2.0, 3.0], [0.0, 2.0, 0.0]], season=1)
    >>> m["wQuantileLoss[0.5]"], m["RMSE"], m["MASE"]
    (0.5, 1.224744871391589, 0.75)
    """
    levels = [_level(q) for q in quantiles]
    if len(set(levels)) != len(levels) or not levels:
        raise InvalidParameterError(f"quantiles={list(quantiles)!r}: expected distinct levels, at least one")
    if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 1:
        raise InvalidParameterError(f"season={season!r}: expected a positive integer lag, such as 24 for hourly data")
    actuals, forecasts, insample = list(actuals), list(forecasts), list(insample)
    if not len(actuals) == len(forecasts) == len(insample):
        raise DataError(f"{len(actuals)} actual series, {len(forecasts)} forecasts and {len(insample)} in-sample "
                        "series: give one of each per series, in the same order")
    if not actuals:
        raise DataError("no series to score")

    ql_sum = dict.fromkeys(levels, 0.0)
    abs_target_sum = abs_error = 0.0
    n_points = 0
    series_mse, series_mase = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, (actual, fc, history) in enumerate(zip(actuals, forecasts, insample, strict=True)):
            y = _series(actual, f"actual series {i}")
            if not isinstance(fc, Mapping) or "mean" not in fc:
                raise DataError(f"forecast {i}: expected a dict with 'mean' and 'quantiles', got "
                                f"{type(fc).__name__}")
            mean = _checked_forecast(fc["mean"], f"forecast {i}, mean", y.size)
            qf = _quantile_forecasts(fc, sorted({*levels, 0.5}), i, y.size)
            ok = np.isfinite(y)
            n = int(ok.sum())
            if n == 0:
                continue
            y, mean, median = y[ok], mean[ok], qf[0.5][ok]
            n_points += n
            abs_target_sum += float(np.abs(y).sum())
            err = float(np.abs(y - median).sum())
            abs_error += err
            series_mse.append(float(np.mean((y - mean) ** 2)))
            mase = np.float64(err / n) / np.float64(seasonal_error(history, int(season)))
            if not np.isnan(mase):
                series_mase.append(float(mase))
            for q in levels:
                f = qf[q][ok]
                ql_sum[q] += float(2.0 * np.sum(np.abs((f - y) * ((y <= f) - q))))

        mse = float(np.mean(series_mse)) if series_mse else float("nan")
        out = {"RMSE": float(np.sqrt(mse)), "MSE": mse}
        wql = {q: float(np.float64(ql_sum[q]) / np.float64(abs_target_sum)) for q in levels}
    out["mean_wQuantileLoss"] = float(np.mean(list(wql.values())))
    for q in levels:
        out[f"wQuantileLoss[{q:g}]"] = wql[q]
    for q in levels:
        out[f"QuantileLoss[{q:g}]"] = ql_sum[q]
    out["MASE"] = float(np.mean(series_mase)) if series_mase else float("nan")
    out["ND"] = abs_error / abs_target_sum if abs_target_sum else float("nan")
    out.update(abs_error=abs_error, abs_target_sum=abs_target_sum, n_series=len(actuals), n_points=n_points)
    return out
