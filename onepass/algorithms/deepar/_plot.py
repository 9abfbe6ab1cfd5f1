"""A picture of forecasts: a few series' last points, the mean forecast and its bands."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onepass._plotting import pyplot, save_figure
from onepass.errors import InvalidParameterError

__all__ = ["plot_forecasts"]


def plot_forecasts(model: Any, rows: Any, forecasts: Sequence[dict[str, Any]], path: str | os.PathLike[str], *,
                   n_series: int = 6, history: int | None = None) -> Path:
    """Draw up to ``n_series`` of ``rows`` (their last ``history`` points, default three
    forecast lengths) with their forecasts: the mean, and a band between each pair of
    quantiles around the median (outer pairs paler). PNG; needs matplotlib."""
    plt = pyplot()
    n = min(n_series, len(forecasts))
    if n == 0:
        raise InvalidParameterError("no series to plot")
    P = model.prediction_length
    back = history if history is not None else 3 * P
    cols = 2 if n > 1 else 1
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(6.2 * cols, 2.6 * ((n + cols - 1) // cols)),
                             dpi=100, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        target = rows.targets[i]
        start = len(target) - min(back, len(target))
        times = model.frequency.times(rows.starts[i:i + 1], len(target) - start + P, start)[0]
        past, future = times[: len(target) - start], times[len(target) - start:]
        ax.plot(past, target[start:], color="0.2", lw=1.2, label="observed")
        fc = forecasts[i]
        qs = sorted(fc.get("quantiles", {}).items(), key=lambda kv: float(kv[0]))
        for j in range(len(qs) // 2):
            (_, lo), (_, hi) = qs[j], qs[len(qs) - 1 - j]
            ax.fill_between(future, lo, hi, color="C0", alpha=0.12 + 0.5 * (j + 1) / max(1, len(qs)), lw=0,
                            label=f"{qs[j][0]}-{qs[len(qs) - 1 - j][0]}" if i == 0 else None)
        if "mean" in fc:
            ax.plot(future, fc["mean"], color="C3", lw=1.4, label="mean forecast")
        ax.set_title(rows.ids[i] or rows.where[i], fontsize=9)
        ax.tick_params(labelsize=7)
        for label in ax.get_xticklabels():
            label.set_rotation(20)
    axes.ravel()[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"DeepAR forecasts, {P} steps of {model.time_freq}", fontsize=10)
    return save_figure(fig, path)
