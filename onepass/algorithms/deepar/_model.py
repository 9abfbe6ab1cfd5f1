"""The finalized DeepAR model: the network in NumPy, forecasting sample paths.

``forecast`` runs the LSTM over each series' last ``context_length`` points (the values
as the network read them in training: lags divided by the series' scale, time features,
covariates, the log of the scale, category embeddings), then draws ``num_samples``
paths of ``prediction_length`` steps, each step's draw read back as the next step's
lag (ancestral sampling, as DeepAR's paper and SageMaker's DeepAR do). The answer per
series is SageMaker's: ``mean`` (of the samples), ``quantiles`` and, when asked,
``samples``. Same model, same request, same seed: the same samples. Each series draws from
a generator seeded by the seed and the series itself, so a series forecast alone or among
others gets the same draws (its network outputs may differ in the last bits of float32:
the products of a batch are not computed alike for every batch size).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar

import numpy as np

from onepass.algorithms.deepar._features import Frequency, mean_scale, parse_frequency, window_inputs
from onepass.algorithms.deepar._likelihoods import sample
from onepass.errors import DataError, InvalidParameterError
from onepass.state import ArraySpec

__all__ = ["DeepARModel", "OUTPUT_TYPES"]

OUTPUT_TYPES = ("mean", "quantiles", "samples")
PATHS_AT_ONCE = 20_000  # sample paths drawn side by side (series x samples), at most
MIN_PATHS_PER_THREAD = 1_000  # fewer paths than this on a thread cost more to hand off than they save
DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class _LSTM:
    """torch.nn.LSTM's arithmetic (gates input, forget, cell, output) on float32 NumPy arrays.

    The four gates go through one ``tanh``: sigmoid(x) = (1 + tanh(x / 2)) / 2, so the
    input, forget and output gates' pre-activations are halved first."""

    def __init__(self, arrays: dict[str, np.ndarray], num_layers: int) -> None:
        # per layer: [W_ih; W_hh] (inputs + cells, 4 cells) for one product with [x, h], and the biases
        self.layers = [(np.ascontiguousarray(np.concatenate([arrays[f"rnn__weight_ih_l{k}"].T,
                                                             arrays[f"rnn__weight_hh_l{k}"].T]), np.float32),
                        np.asarray(arrays[f"rnn__weight_hh_l{k}"], np.float32).T,
                        (arrays[f"rnn__bias_ih_l{k}"] + arrays[f"rnn__bias_hh_l{k}"]).astype(np.float32))
                       for k in range(num_layers)]
        cells = self.layers[0][1].shape[0] if self.layers else 0
        self.half = np.full(4 * cells, 0.5, np.float32)
        self.half[2 * cells: 3 * cells] = 1.0  # the cell gate takes tanh itself

    def step(self, x: np.ndarray, hc: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """One step of every layer from states ``hc`` (updated in place); the top layer's output."""
        for k, (w, _, b) in enumerate(self.layers):
            h, c = hc[k]
            n = h.shape[1]
            gates = np.concatenate([x.astype(np.float32, copy=False), h], axis=1) @ w
            gates += b
            gates *= self.half
            np.tanh(gates, out=gates)
            i, f, g, o = gates[:, :n], gates[:, n:2 * n], gates[:, 2 * n:3 * n], gates[:, 3 * n:]
            c = 0.5 * ((1.0 + f) * c + (1.0 + i) * g)
            h = 0.5 * (1.0 + o) * np.tanh(c)
            hc[k] = (h, c)
            x = h
        return x


class DeepARModel:
    """A finalized DeepAR network (NumPy only).

    Attributes
    ----------
    context_length, prediction_length : int
    time_freq : str
    likelihood : str
    lags : list of int
    cardinality : list of int
    n_dynamic : int
        Covariates per step (``dynamic_feat``) the model needs.
    n_rows_seen_ : int
    """

    kind: ClassVar[str] = "forecast"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {  # the network's parameters; the layers' count is num_layers
        "rnn__*": ArraySpec(("f4",), finite=True),
        "embeddings__*": ArraySpec(("f4",), (None, None), finite=True),
        "head__weight": ArraySpec(("f4",), ("outputs", None), finite=True),
        "head__bias": ArraySpec(("f4",), ("outputs",), finite=True),
    }

    def __init__(self, arrays: dict[str, np.ndarray], *, context_length: int, prediction_length: int,
                 time_freq: str, likelihood: str, lags: Sequence[int], cardinality: Sequence[int],
                 num_layers: int, n_dynamic: int, num_samples: int = 100,
                 quantiles: Sequence[float] = DEFAULT_QUANTILES, n_rows_seen: int = 0) -> None:
        self.arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        self.context_length, self.prediction_length = int(context_length), int(prediction_length)
        self.time_freq = str(time_freq)
        self.frequency: Frequency = parse_frequency(self.time_freq)
        self.likelihood = likelihood
        self.lags = [int(x) for x in lags]
        self.cardinality = [int(c) for c in cardinality]
        self.num_layers = int(num_layers)
        self.n_dynamic = int(n_dynamic)
        self.num_samples = int(num_samples)
        self.quantiles = [float(q) for q in quantiles]
        self.n_rows_seen_ = int(n_rows_seen)
        self._lstm = _LSTM(self.arrays, self.num_layers)

    @property
    def history_length(self) -> int:
        """Points of a series the forecast reads: the context and the longest lag before it."""
        return self.context_length + max(self.lags)

    # -- forecasting ------------------------------------------------------------------

    def _series(self, instances: Any) -> Any:
        from onepass.sources._series import SeriesRows

        if isinstance(instances, SeriesRows):
            return instances.on_grid(self.frequency)
        if not isinstance(instances, (list, tuple)):
            raise DataError("instances must be a list of series ({\"start\": ..., \"target\": [...]})")
        return SeriesRows.of(instances)

    def _check(self, rows: Any) -> None:
        for j, c in enumerate(self.cardinality):
            if rows.cat.shape[1] <= j:
                raise DataError(f"{rows.where[0] if len(rows) else 'a series'} has {rows.cat.shape[1]} categories "
                                f"('cat'), this model was trained with {len(self.cardinality)}")
            over = np.flatnonzero(rows.cat[:, j] >= c)
            if len(over):
                i = int(over[0])
                raise DataError(f"{rows.where[i]}: category {int(rows.cat[i, j])} of cat[{j}] was never seen in "
                                f"training (the model knows 0 to {c - 1})")
        if self.n_dynamic:
            for i in range(len(rows)):
                d = None if rows.dynamic_feat is None else rows.dynamic_feat[i]
                need = len(rows.targets[i]) + self.prediction_length
                if d is None or d.shape[0] != self.n_dynamic or d.shape[1] < need:
                    have = "none" if d is None else f"{d.shape[0]} of {d.shape[1]} points"
                    raise DataError(f"{rows.where[i]}: 'dynamic_feat' needs {self.n_dynamic} covariates of "
                                    f"{need} points (the target's and the {self.prediction_length} to forecast), "
                                    f"got {have}")

    def inputs(self, rows: Any, n_steps: int, end_offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(history, scale, covariates)`` of the series ``rows`` for the ``context_length``
        steps ending ``end_offset`` points before each target's end and ``n_steps`` more:
        history (n, history_length) with NaN before a series' start, scale (n,),
        covariates (n, context_length + n_steps, n_time + n_dynamic + 1)."""
        n, H, C = len(rows), self.history_length, self.context_length
        hist = np.full((n, H), np.nan, np.float32)
        ends = np.array([len(t) - end_offset for t in rows.targets])
        for i, t in enumerate(rows.targets):
            part = t[max(0, ends[i] - H): ends[i]]
            hist[i, H - len(part):] = part
        scale = mean_scale(hist[:, -C:])
        times = self.frequency.times(rows.starts, C + n_steps, ends - C)
        cov = [self.frequency.time_features(times)]
        if self.n_dynamic:
            d = np.zeros((n, self.n_dynamic, C + n_steps), np.float32)
            for i in range(n):
                lo = ends[i] - C
                src = rows.dynamic_feat[i][:, max(lo, 0): ends[i] + n_steps]
                d[i, :, d.shape[2] - src.shape[1]:] = src
            cov.append(d.transpose(0, 2, 1))
        cov.append(np.broadcast_to(np.log(scale)[:, None, None], (n, C + n_steps, 1)))
        return hist, scale, np.concatenate(cov, axis=2).astype(np.float32)

    def _static(self, cat: np.ndarray) -> np.ndarray:
        parts = [self.arrays[f"embeddings__{j}__weight"][cat[:, j]] for j in range(len(self.cardinality))]
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(cat), 0), np.float32)

    def _head(self, h: np.ndarray) -> np.ndarray:
        return (h @ self.arrays["head__weight"].T + self.arrays["head__bias"]).astype(np.float64)

    def sample_paths(self, instances: Any, num_samples: int | None = None, seed: int = 0) -> np.ndarray:
        """Sample paths (series, num_samples, prediction_length) following each series."""
        rows = self._series(instances)
        self._check(rows)
        S = self.num_samples if num_samples is None else int(num_samples)
        if S < 1:
            raise InvalidParameterError(f"num_samples={num_samples!r} must be >= 1")
        n, P = len(rows), self.prediction_length
        if n == 0:
            return np.zeros((0, S, P), np.float32)
        # at most ~20k paths side by side: memory bounded whatever the number of series (a
        # series' draws are its own, so chunks change nothing); each chunk's series in two
        # halves on two threads (NumPy's products and ufuncs release the GIL), BLAS on one each
        from onepass._parallel import blas_single_thread, run_together

        step = max(1, PATHS_AT_ONCE // S)
        out = []
        with blas_single_thread():
            for a in range(0, n, step):
                part = rows[a:a + step]
                half = (len(part) + 1) // 2 if len(part) * S >= 2 * MIN_PATHS_PER_THREAD else len(part)
                out += run_together(*(partial(self._paths, part[lo:lo + half], S, seed)
                                      for lo in range(0, len(part), half)))
        return np.concatenate(out)

    def _paths(self, rows: Any, S: int, seed: int) -> np.ndarray:
        n, C, P, H = len(rows), self.context_length, self.prediction_length, self.history_length
        hist, scale, cov = self.inputs(rows, P)
        static = self._static(rows.cat)
        lags = window_inputs(hist, self.lags, scale, H - C, C)
        x = np.concatenate([lags, cov[:, :C], np.repeat(static[:, None, :], C, axis=1)], axis=2).astype(np.float32)
        hc = [(np.zeros((n, w_hh.shape[0]), np.float32), np.zeros((n, w_hh.shape[0]), np.float32))
              for _, w_hh, _ in self._lstm.layers]
        for t in range(C):
            self._lstm.step(x[:, t], hc)
        # every series' state, num_samples times: paths side by side
        hc = [(np.repeat(h, S, axis=0), np.repeat(c, S, axis=0)) for h, c in hc]
        values = np.concatenate([np.repeat(hist, S, axis=0), np.full((n * S, P), np.nan, np.float32)], axis=1)
        scale_s, cov_s, static_s = np.repeat(scale, S), np.repeat(cov[:, C:], S, axis=0), np.repeat(static, S, axis=0)
        # one generator per series, seeded by the seed and the series itself: a series gets the
        # same samples whichever others are forecast with it
        rngs = [np.random.default_rng([seed, _fingerprint(rows, i)]) for i in range(n)]
        lag_idx = np.asarray(self.lags)
        for k in range(P):
            lag_values = np.nan_to_num(values[:, H + k - lag_idx] / scale_s[:, None], nan=0.0)
            xk = np.concatenate([lag_values, cov_s[:, k], static_s], axis=1)
            h = self._head(self._lstm.step(xk, hc))
            for i, rng in enumerate(rngs):
                at = slice(i * S, (i + 1) * S)
                values[at, H + k] = sample(self.likelihood, h[at], scale_s[at], rng)
        return values[:, H:].reshape(n, S, P).astype(np.float32)

    def forecast(self, instances: Any, *, num_samples: int | None = None, quantiles: Sequence[float] | None = None,
                 output_types: Sequence[str] = ("mean", "quantiles"), seed: int = 0) -> list[dict[str, Any]]:
        """SageMaker DeepAR's predictions for ``instances`` (a list of ``{"start",
        "target", "cat", "dynamic_feat"}`` or :class:`~onepass.sources._series.SeriesRows`):
        per series a dict with ``mean``, ``quantiles`` ({"0.1": [...]}) and ``samples``,
        as ``output_types`` asks."""
        unknown = [t for t in output_types if t not in OUTPUT_TYPES]
        if unknown:
            raise InvalidParameterError(f"output_types {unknown} are not among {', '.join(OUTPUT_TYPES)}")
        qs = self.quantiles if quantiles is None else [float(q) for q in quantiles]
        if any(not 0 < q < 1 for q in qs):
            raise InvalidParameterError(f"quantiles {qs} must lie strictly between 0 and 1")
        paths = self.sample_paths(instances, num_samples, seed).astype(np.float64)
        out: list[dict[str, Any]] = []
        qv = np.quantile(paths, qs, axis=1) if "quantiles" in output_types and len(paths) else None
        for i in range(len(paths)):
            rec: dict[str, Any] = {}
            if "mean" in output_types:
                rec["mean"] = paths[i].mean(axis=0).tolist()
            if qv is not None:
                rec["quantiles"] = {_label(q): qv[j, i].tolist() for j, q in enumerate(qs)}
            if "samples" in output_types:
                rec["samples"] = paths[i].tolist()
            out.append(rec)
        return out

    # -- the Model contract -----------------------------------------------------------

    def predict(self, X: Any) -> np.ndarray:
        """The mean forecast of each series: (series, prediction_length)."""
        return self.sample_paths(X).mean(axis=1)

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        return {"mean": self.predict(X)}

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the mean weighted quantile loss of forecasts of each series' last
        ``prediction_length`` points from the points before them (higher is better)."""
        return -self.evaluate(X)["mean_wQuantileLoss"]

    def evaluate(self, X: Any, seed: int = 0) -> dict[str, float]:
        """SageMaker DeepAR's test metrics: each series' last ``prediction_length`` points
        are forecast from the points before them: ``RMSE``, ``mean_wQuantileLoss``, ``MASE``."""
        from onepass.algorithms.deepar._metrics import forecast_metrics
        from onepass.sources._series import SeriesRows

        rows = self._series(X)
        P = self.prediction_length
        short = [rows.where[i] for i, t in enumerate(rows.targets) if len(t) <= P]
        if short:
            raise DataError(f"{short[0]}: a test series needs more than prediction_length={P} points "
                            "(the last ones are held out and forecast from the ones before)")
        cut = SeriesRows(rows.ids, rows.starts, [t[:-P] for t in rows.targets], rows.cat,
                         None if rows.dynamic_feat is None else
                         [d[:, :d.shape[1] - (P if d.shape[1] > len(t) else 0)] for d, t in
                          zip(rows.dynamic_feat, rows.targets, strict=True)], rows.where)
        forecasts = self.forecast(cut, quantiles=self.quantiles, seed=seed)
        return forecast_metrics([t[-P:] for t in rows.targets], forecasts, self.quantiles,
                                [t[:-P] for t in rows.targets], self.frequency.season)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"context_length": self.context_length, "prediction_length": self.prediction_length,
                "time_freq": self.time_freq, "likelihood": self.likelihood, "lags": self.lags,
                "cardinality": self.cardinality, "num_layers": self.num_layers, "n_dynamic": self.n_dynamic,
                "num_samples": self.num_samples, "quantiles": self.quantiles, "n_rows_seen": self.n_rows_seen_}
        return meta, dict(self.arrays)

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> DeepARModel:
        return cls(dict(arrays), context_length=meta["context_length"], prediction_length=meta["prediction_length"],
                   time_freq=meta["time_freq"], likelihood=meta["likelihood"], lags=meta["lags"],
                   cardinality=meta["cardinality"], num_layers=meta["num_layers"], n_dynamic=meta["n_dynamic"],
                   num_samples=meta["num_samples"], quantiles=meta["quantiles"], n_rows_seen=meta["n_rows_seen"])


def _fingerprint(rows: Any, i: int) -> int:
    """A number fixed by series ``i`` of ``rows`` (start, points, categories, covariates)."""
    import zlib

    parts = [np.asarray(rows.starts[i : i + 1], "datetime64[s]").tobytes(), rows.targets[i].tobytes(),
             rows.cat[i].tobytes()]
    if rows.dynamic_feat is not None:
        parts.append(rows.dynamic_feat[i].tobytes())
    return zlib.crc32(b"".join(parts))


def _label(q: float) -> str:
    """A quantile's key as SageMaker writes it: "0.1", "0.5", "0.95"."""
    return format(q, ".10g")
