"""DeepAR's training state: windows sampled from series as they stream past, one LSTM
learned across all of them."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np

from onepass.algorithms._hyper import is_int, require, require_choice
from onepass.algorithms.deepar._features import mean_scale, parse_frequency, window_inputs
from onepass.algorithms.deepar._likelihoods import check_likelihood
from onepass.algorithms.deepar._model import DEFAULT_QUANTILES, DeepARModel
from onepass.batch import Batch
from onepass.errors import DataError, IncompatibleStateError, InvalidParameterError
from onepass.neural import EarlyStopping, TorchState
from onepass.neural._optimizers import OPTIMIZERS
from onepass.state import ArraySpec, become_copy

__all__ = ["DeepARState"]


def _series_rows(batch: Batch, frequency: Any) -> Any:
    from onepass.sources._series import SeriesRows

    if not isinstance(batch.X, SeriesRows):
        raise DataError("DeepAR learns from time series: read them with format='series' (--format series), "
                        "SageMaker's JSON lines {\"start\": ..., \"target\": [...]}")
    return batch.X.on_grid(frequency)


def _parse_cardinality(value: Any) -> Any:
    if value in ("auto", "ignore"):
        return value
    if isinstance(value, str):
        try:
            value = [int(p) for p in value.replace(" ", "").strip("[]").split(",") if p]
        except ValueError:
            raise InvalidParameterError(f"cardinality={value!r} must be 'auto', 'ignore' or a list of whole numbers "
                                        "(one per categorical feature), e.g. [3, 10]") from None
    if not isinstance(value, (list, tuple)) or not all(is_int(c) and c >= 1 for c in value):
        raise InvalidParameterError(f"cardinality={value!r} must be 'auto', 'ignore' or a list of whole numbers >= 1")
    return [int(c) for c in value]


class DeepARState(TorchState):
    """State of SageMaker's DeepAR (Salinas et al. 2020), trained on a stream of series.

    One autoregressive LSTM learned across many related series. As each series (or a
    new stretch of a known one, by its ``id``) passes, windows of ``context_length +
    prediction_length`` steps are drawn from its new points (about
    ``windows_per_prediction_length`` per ``prediction_length`` new points), each with the
    ``max(lags)`` points before it the lags read; a window's values are divided by the
    mean absolute value of its context (the series' scale), and the network learns the
    likelihood of every observed value of the window from the values before it (missing
    values are read as 0 and not learned). Steps are taken over ``mini_batch_size``
    windows at a time.

    Parameters
    ----------
    prediction_length : int, default=24
        Steps forecast (SageMaker requires it).
    context_length : int or None, default=None
        Steps the network reads before forecasting (None: ``prediction_length``). The lags
        reach further back (a week of hours for hourly series).
    time_freq : str, default="H"
        The series' frequency: ``min``, ``H``, ``D``, ``W``, ``M`` with a multiple if needed
        (``15min``); fixes the lags and time features (SageMaker requires it).
    num_cells, num_layers : int, default=40, 2
        LSTM width and depth.
    dropout_rate : float, default=0.1
        Dropout between LSTM layers in training.
    likelihood : {"student-T", "gaussian", "negative-binomial", "beta", "deterministic-L1"}
        Default ``"student-T"``. Counts: negative-binomial; values in (0, 1): beta.
    cardinality : "auto", "ignore" or list of int, default="auto"
        Categories per categorical feature (``cat``); "auto" takes them from the first
        batch (a larger category later is an error naming its series); "ignore" drops
        ``cat``.
    embedding_dimension : "auto" or int, default="auto"
        Width of each categorical feature's embedding; "auto" is GluonTS's ``min(50,
        (cardinality + 1) // 2)`` per feature (SageMaker's default is 10: on the bench's
        2,000 series of 8 groups, 4 gave mean wQuantileLoss 0.1063 where 10 gave 0.1126).
    num_dynamic_feat : "auto", "ignore" or int, default="auto"
        Covariates per step (``dynamic_feat``); "auto" from the first batch.
    mini_batch_size : int, default=32
        Windows per optimizer step. SageMaker's 128 (and learning rate 0.001) assume many
        epochs; in one pass over 200 hourly series of 400 points (predicting 24 from 48),
        128 windows at 0.001 forecast at mean_wQuantileLoss 0.22, 32 at 0.003 at 0.038.
    learning_rate : float, default=0.003
    optimizer : {"adam", "adadelta", "adagrad", "rmsprop", "sgd"}, default="adam"
    clip_gradient : float, default=10.0
        Each gradient value clipped to ``[-clip_gradient, clip_gradient]``.
    weight_decay : float, default=1e-8
    windows_per_prediction_length : float, default=4.0
        Windows drawn per ``prediction_length`` new points of a series (not a SageMaker
        setting: SageMaker's epochs over stored series play its part). Each point is read
        by about ``4 * (context_length + prediction_length) / prediction_length`` windows
        in one pass; 8 gave 0.034 against 4's 0.038 (above) in twice the time.
    max_series : int, default=100000
        Series whose last points are kept (least recently seen first out) so that new
        points of a known series form windows with its earlier ones: memory is fixed by
        it, whatever the number of series.
    early_stopping_patience : int or None, default=None
        Epochs without improvement of the validation ``mean_wQuantileLoss`` before training
        stops (None: never).
    num_eval_samples : int, default=100
        Sample paths per series of forecasts and evaluations.
    test_quantiles : list of float, default=[0.1, ..., 0.9]
        Quantiles of forecasts and of ``mean_wQuantileLoss``.
    max_validation_series : int, default=500
        Validation series kept (``add_validation``).
    device : str, default="auto"
    seed : int or None

    Attributes
    ----------
    n_rows_seen_ : int
        Series records learned from (lines of the source).
    n_points_seen_ : int
    n_windows_trained_ : int
    n_short_series_ : int
        Records too short for a window (fewer than ``prediction_length + 1`` points with what is kept).
    cardinality_ : list of int
    n_dynamic_ : int
    tails_ : OrderedDict
        ``id -> (start, values, dynamic_feat)``: each known series' last points.
    """

    kind: ClassVar[str] = "forecast"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {
        **TorchState.network_array_specs(),
        **{f"{kept}__{name}": ArraySpec(dtypes, tuple(f"{kept} {d}" if d else d for d in dims),
                                        required=kept == "tails")
           for kept in ("tails", "validation")
           for name, dtypes, dims in (("ids", ("U",), ("series",)), ("has_id", ("b1",), ("series",)),
                                      ("starts", ("i8",), ("series",)), ("lengths", ("i8",), ("series",)),
                                      ("cat", ("i8",), ("series", None)), ("values", ("f4",), ("points",)),
                                      ("dynamic", ("f4",), (None, "points")))},
    }

    def __init__(self, prediction_length: int = 24, *, context_length: int | None = None, time_freq: str = "H",
                 num_cells: int = 40, num_layers: int = 2, dropout_rate: float = 0.1,
                 likelihood: str = "student-T", cardinality: Any = "auto", embedding_dimension: Any = "auto",
                 num_dynamic_feat: Any = "auto", mini_batch_size: int = 32, learning_rate: float = 0.003,
                 optimizer: str = "adam", clip_gradient: float = 10.0, weight_decay: float = 1e-8,
                 windows_per_prediction_length: float = 4.0, max_series: int = 100_000,
                 early_stopping_patience: int | None = None, num_eval_samples: int = 100,
                 test_quantiles: Any = DEFAULT_QUANTILES, max_validation_series: int = 500,
                 device: str = "auto", seed: int | None = None) -> None:
        if embedding_dimension != "auto":
            require("int>=1", embedding_dimension=embedding_dimension)
        require("int>=1", prediction_length=prediction_length, num_cells=num_cells, num_layers=num_layers,
                mini_batch_size=mini_batch_size, max_series=max_series,
                num_eval_samples=num_eval_samples)
        require("int>=0", max_validation_series=max_validation_series)
        if context_length is not None:
            require("int>=1", context_length=context_length)
        if early_stopping_patience is not None:
            require("int>=1", early_stopping_patience=early_stopping_patience)
        require("[0,1)", dropout_rate=dropout_rate)
        require(">0", learning_rate=learning_rate, clip_gradient=clip_gradient,
                windows_per_prediction_length=windows_per_prediction_length)
        require(">=0", weight_decay=weight_decay)
        require_choice("optimizer", optimizer, OPTIMIZERS)
        self.frequency = parse_frequency(time_freq)
        check_likelihood(likelihood)
        self.cardinality = _parse_cardinality(cardinality)
        if not (num_dynamic_feat in ("auto", "ignore") or (is_int(num_dynamic_feat) and num_dynamic_feat >= 0)):
            raise InvalidParameterError(f"num_dynamic_feat={num_dynamic_feat!r} must be 'auto', 'ignore' or an "
                                        "integer >= 0")
        if isinstance(test_quantiles, str):
            test_quantiles = [float(q) for q in test_quantiles.strip("[]").split(",") if q.strip()]
        if not test_quantiles or any(not 0 < float(q) < 1 for q in test_quantiles):
            raise InvalidParameterError(f"test_quantiles={test_quantiles!r} must be quantiles strictly between 0 and 1")
        self.prediction_length = int(prediction_length)
        self.context_length = int(context_length) if context_length is not None else self.prediction_length
        self.time_freq = time_freq
        self.num_cells, self.num_layers = int(num_cells), int(num_layers)
        self.dropout_rate = float(dropout_rate)
        self.likelihood = likelihood
        self.embedding_dimension = embedding_dimension if embedding_dimension == "auto" else int(embedding_dimension)
        self.num_dynamic_feat = num_dynamic_feat
        self.mini_batch_size = int(mini_batch_size)
        self.learning_rate = float(learning_rate)
        self.optimizer = optimizer
        self.clip_gradient = float(clip_gradient)
        self.rescale_gradient = 1.0
        self.weight_decay = float(weight_decay)
        self.windows_per_prediction_length = float(windows_per_prediction_length)
        self.max_series = int(max_series)
        self.early_stopping_patience = early_stopping_patience
        self.num_eval_samples = int(num_eval_samples)
        self.test_quantiles = [float(q) for q in test_quantiles]
        self.max_validation_series = int(max_validation_series)
        self.device = device
        self.seed = seed
        self.lags = self.frequency.lags()
        self._init_training()
        self.cardinality_: list[int] = []
        self.n_dynamic_ = 0
        self.n_points_seen_ = 0
        self.n_windows_trained_ = 0
        self.n_short_series_ = 0
        self.loss_ = math.nan  # the mean loss of the last batch's steps
        self.tails_: OrderedDict[str, tuple[np.datetime64, np.ndarray, np.ndarray | None]] = OrderedDict()
        self.validation_: Any = None
        self.early_stopping_ = EarlyStopping(early_stopping_patience or 0, 0.0)

    def hyperparameters(self) -> dict[str, Any]:
        return {"prediction_length": self.prediction_length, "context_length": self.context_length,
                "time_freq": self.time_freq, "num_cells": self.num_cells, "num_layers": self.num_layers,
                "dropout_rate": self.dropout_rate, "likelihood": self.likelihood,
                "cardinality": self.cardinality if isinstance(self.cardinality, str) else list(self.cardinality),
                "embedding_dimension": self.embedding_dimension, "num_dynamic_feat": self.num_dynamic_feat,
                "mini_batch_size": self.mini_batch_size, "learning_rate": self.learning_rate,
                "optimizer": self.optimizer, "clip_gradient": self.clip_gradient, "weight_decay": self.weight_decay,
                "windows_per_prediction_length": self.windows_per_prediction_length, "max_series": self.max_series,
                "early_stopping_patience": self.early_stopping_patience, "num_eval_samples": self.num_eval_samples,
                "test_quantiles": self.test_quantiles, "max_validation_series": self.max_validation_series,
                "device": self.device, "seed": self.seed}

    # -- the network ------------------------------------------------------------------

    @property
    def window(self) -> int:
        return self.context_length + self.prediction_length

    @property
    def max_lag(self) -> int:
        return max(self.lags)

    def _n_inputs(self) -> int:
        return len(self.lags) + len(self.frequency.time_feature_names) + self.n_dynamic_ + 1

    def _make_network(self, n_features: int) -> Any:
        from onepass.algorithms.deepar._network import DeepARNetwork

        return DeepARNetwork(n_features, self.cardinality_, self.embedding_dims_, self.num_cells,
                             self.num_layers, self.dropout_rate, self.likelihood)

    def _initial_array(self, name: str, shape: tuple[int, ...], init: np.random.Generator) -> np.ndarray:
        if name.startswith("rnn.bias_hh"):  # the forget gates start open (Jozefowicz et al. 2015)
            bias = np.zeros(shape, np.float32)
            bias[shape[0] // 4: shape[0] // 2] = 1.0
            return bias
        if name.startswith("rnn.weight"):  # torch's LSTM start: uniform in +-1/sqrt(cells)
            bound = 1.0 / math.sqrt(self.num_cells)
            return init.uniform(-bound, bound, size=shape).astype(np.float32)
        return super()._initial_array(name, shape, init)

    def _width_of(self, parameters: dict[str, np.ndarray]) -> int:
        return int(np.shape(parameters["param__rnn__weight_ih_l0"])[1]) - sum(self.embedding_dims_)

    @property
    def embedding_dims_(self) -> list[int]:
        """Each categorical feature's embedding width."""
        if self.embedding_dimension == "auto":
            return [min(50, (c + 1) // 2) for c in self.cardinality_]
        return [int(self.embedding_dimension)] * len(self.cardinality_)

    def set_parameters(self, parameters: dict[str, np.ndarray]) -> None:
        """Take shared parameters (a parameter server's); a fresh state reads its categories
        from the embeddings and its covariates from the network's width."""
        if self.network_ is None:
            self.cardinality_ = [int(np.shape(parameters[f"param__embeddings__{j}__weight"])[0])
                                 for j in range(sum(k.startswith("param__embeddings__") for k in parameters))]
            self.n_dynamic_ = 0
            self.n_dynamic_ = self._width_of(parameters) - self._n_inputs()
        super().set_parameters(parameters)

    def _start(self, rows: Any) -> None:
        """Fix categories and covariates from the first series, and build the network."""
        if self.cardinality == "ignore":
            self.cardinality_ = []
        elif self.cardinality == "auto":
            self.cardinality_ = [int(rows.cat[:, j].max()) + 1 for j in range(rows.cat.shape[1])] if len(rows) else []
        else:
            self.cardinality_ = list(self.cardinality)
        if self.num_dynamic_feat == "ignore":
            self.n_dynamic_ = 0
        elif self.num_dynamic_feat == "auto":
            self.n_dynamic_ = 0 if rows.dynamic_feat is None else max((d.shape[0] for d in rows.dynamic_feat), default=0)
        else:
            self.n_dynamic_ = int(self.num_dynamic_feat)
        self._build(self._n_inputs())

    def _check(self, rows: Any) -> None:
        """Categories within the cardinality and covariates as many as the network reads:
        a DataError naming the series' file and line otherwise."""
        if self.cardinality != "ignore":
            extra = rows.cat[:, len(self.cardinality_):]  # categories past the network's (0: none given)
            if extra.size and (extra != 0).any():
                i = int(np.flatnonzero((extra != 0).any(axis=1))[0])
                raise DataError(f"{rows.where[i]}: 'cat' has {rows.cat.shape[1]} categories, the network was "
                                f"built for {len(self.cardinality_)} (cardinality {self.cardinality_})")
            for j, c in enumerate(self.cardinality_):
                if j < rows.cat.shape[1] and (over := np.flatnonzero(rows.cat[:, j] >= c)).size:
                    i = int(over[0])
                    raise DataError(
                        f"{rows.where[i]}: category {int(rows.cat[i, j])} of cat[{j}] is not below its cardinality "
                        f"{c} ({'taken from the first batch: give cardinality' if self.cardinality == 'auto' else 'as given'})")
        if self.n_dynamic_:
            for i in range(len(rows)):
                d = None if rows.dynamic_feat is None else rows.dynamic_feat[i]
                if d is None or d.shape[0] != self.n_dynamic_:
                    raise DataError(f"{rows.where[i]}: 'dynamic_feat' has {0 if d is None else d.shape[0]} covariates, "
                                    f"the network reads {self.n_dynamic_}")
        if not len(rows):
            return
        # the batch's values checked at once; the record at fault found only when there is one
        rules = {"negative-binomial": (lambda v: v < 0, "counts >= 0"),
                 "beta": (lambda v: (v <= 0) | (v >= 1), "values in (0, 1)")}
        values = np.concatenate(rows.targets)
        outside = rules[self.likelihood][0] if self.likelihood in rules else None
        bad = np.isinf(values) | (outside(values) & ~np.isnan(values) if outside else False)
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            i = int(np.searchsorted(np.cumsum([len(t) for t in rows.targets]), at, side="right"))
            v = float(values[at])
            if np.isinf(v):
                raise DataError(f"{rows.where[i]}: the target holds {v} at point {at - sum(len(t) for t in rows.targets[:i])}: "
                                "infinite values are not allowed (NaN marks a missing one)")
            raise DataError(f"{rows.where[i]}: the {self.likelihood} likelihood needs {rules[self.likelihood][1]}, the "
                            f"target has {v}")

    # -- series ---------------------------------------------------------------------

    def _history(self, sid: str | None, start: np.datetime64, target: np.ndarray, dyn: np.ndarray | None
                 ) -> tuple[np.datetime64, np.ndarray, np.ndarray, int]:
        """``(start, values, covariates, new points)``: the record's points after what is
        kept of its series (when they follow on from it)."""
        dyn = np.zeros((self.n_dynamic_, len(target)), np.float32) if not self.n_dynamic_ else dyn[:, :len(target)]
        if sid is None or sid not in self.tails_:
            return start, target, dyn, len(target)
        t_start, t_values, t_dyn = self.tails_[sid]
        gap = self.frequency.steps_between(self.frequency.after(t_start, len(t_values)), start)
        if gap != int(gap) or gap < 0 or gap > self.max_lag + self.window:  # off the grid, back in time, far ahead
            return start, target, dyn, len(target)
        g = int(gap)
        if g:
            t_values = np.concatenate([t_values, np.full(g, np.nan, np.float32)])
            t_dyn = np.concatenate([t_dyn, np.zeros((self.n_dynamic_, g), np.float32)], axis=1)
        return t_start, np.concatenate([t_values, target]), np.concatenate([t_dyn, dyn], axis=1), len(target)

    def _remember(self, sid: str, start: np.datetime64, values: np.ndarray, dyn: np.ndarray) -> None:
        cut = max(0, len(values) - self.max_lag - self.window)
        if cut:
            start = self.frequency.after(start, cut)
        self.tails_[sid] = (np.datetime64(start, "s"), values[cut:].copy(), dyn[:, cut:].copy())
        self.tails_.move_to_end(sid)
        if len(self.tails_) > self.max_series:
            self.tails_.popitem(last=False)

    def _windows(self, rows: Any) -> _Windows | None:
        """The windows drawn from ``rows``' new points (and remembered tails updated): each
        record's history (its kept points, then its own) in one flat buffer, a window an
        index into it, gathered a mini-batch at a time."""
        W, L, P = self.window, self.max_lag, self.prediction_length
        n = len(rows)
        values, covs, starts = [], [], np.empty(n, "datetime64[s]")
        n_new = np.empty(n, np.int64)
        for i in range(n):
            sid = rows.ids[i]
            start, v, c, n_new[i] = self._history(sid, rows.starts[i], rows.targets[i],
                                                  None if rows.dynamic_feat is None else rows.dynamic_feat[i])
            if sid is not None:
                self._remember(sid, start, v, c)
            values.append(v)
            covs.append(c)
            starts[i] = start
        lengths = np.array([len(v) for v in values], np.int64)
        lo, hi = np.maximum(lengths - n_new + 1, P + 1), lengths
        usable = lo <= hi
        self.n_short_series_ += int((~usable).sum())
        expected = self.windows_per_prediction_length * n_new / P
        k = (np.floor(expected) + (self.rng_.random(n) < expected - np.floor(expected))).astype(np.int64)
        k[~usable] = 0
        rec = np.repeat(np.arange(n), k)
        if not len(rec):
            return None
        ends = lo[rec] + np.floor(self.rng_.random(len(rec)) * (hi - lo + 1)[rec]).astype(np.int64)
        pad = W + L  # NaN before each history: windows may start before their series
        sizes = lengths + pad
        nan = np.full(pad, np.nan, np.float32)
        cat = rows.cat[:, :len(self.cardinality_)]
        if cat.shape[1] < len(self.cardinality_):
            cat = np.pad(cat, ((0, 0), (0, len(self.cardinality_) - cat.shape[1])))
        cbuf = None
        if self.n_dynamic_:
            zeros = np.zeros((self.n_dynamic_, pad), np.float32)
            cbuf = np.concatenate([p for c in covs for p in (zeros, c)], axis=1)
        return _Windows(np.concatenate([p for v in values for p in (nan, v)]), cbuf, np.cumsum(sizes) - sizes,
                        starts, cat, rec, ends, W, L, self.frequency)

    # -- training ---------------------------------------------------------------------

    def update(self, batch: Batch) -> None:
        """Learn from one batch of series records, in steps of ``mini_batch_size`` windows."""
        rows = _series_rows(batch, self.frequency)
        if self.network_ is None:
            self._start(rows)
        self._check(rows)
        self.n_rows_seen_ += len(rows)
        self.n_points_seen_ += int(sum(len(t) for t in rows.targets))
        windows = self._windows(rows)
        if windows is None:
            return
        n = len(windows.rec)
        order = self.rng_.permutation(n)
        self.network_.train()
        losses = []
        for a in range(0, n, self.mini_batch_size):
            losses.append(self._learn(windows.take(order[a:a + self.mini_batch_size])))
        self.n_windows_trained_ += n
        self.loss_ = float(np.mean(losses))

    def _inputs(self, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(network inputs (m, W, n_inputs), targets (m, W), scale (m,)) of windows ``w``."""
        L, C, W = self.max_lag, self.context_length, self.window
        values = w["values"]
        scale = mean_scale(values[:, L:L + C]) if self.likelihood != "beta" else np.ones(len(values), np.float32)
        parts = [window_inputs(values, self.lags, scale, L, W), self.frequency.time_features(w["times"])]
        if self.n_dynamic_:
            parts.append(w["dynamic"])
        parts.append(np.broadcast_to(np.log(scale)[:, None, None], (len(values), W, 1)))
        return np.concatenate(parts, axis=2).astype(np.float32), values[:, L:], scale

    def _learn(self, w: dict[str, np.ndarray]) -> float:
        import torch

        from onepass.algorithms.deepar._network import negative_log_likelihood

        x, y, scale = self._inputs(w)
        observed = ~np.isnan(y)
        if not observed.any():
            return math.nan
        cat = torch.from_numpy(w["cat"].astype(np.int64)).to(self.torch_device)
        if self.dropout_rate > 0 and self.num_layers > 1:
            # the LSTM's dropout draws from torch's global generator: seed it from the state's own
            # (checkpointed) generator, inside a fork so torch's global state is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(self.rng_.integers(2**62)))
                h = self.network_(self._tensor(x), cat)
        else:
            h = self.network_(self._tensor(x), cat)
        nll = negative_log_likelihood(self.likelihood, h, self._tensor(np.nan_to_num(y, nan=0.0)),
                                      self._tensor(scale)[:, None])
        mask = self._tensor(observed)
        loss = (nll * mask).sum() / mask.sum()
        self._step(loss)
        return float(loss.detach())

    # -- validation, early stopping -----------------------------------------------------

    def add_validation(self, batch: Batch) -> int:
        """Keep series of a validation source (up to ``max_validation_series``): each one's
        last ``prediction_length`` points are forecast from the points before them."""
        from onepass.sources._series import SeriesRows

        rows = _series_rows(batch, self.frequency)
        if self.network_ is None:
            self._start(rows)
        self._check(rows)
        have = 0 if self.validation_ is None else len(self.validation_)
        keep = [i for i, t in enumerate(rows.targets) if len(t) > self.prediction_length]
        keep = keep[:max(0, self.max_validation_series - have)]
        if keep:
            part = SeriesRows.concat([rows[i:i + 1] for i in keep])
            self.validation_ = part if self.validation_ is None else SeriesRows.concat([self.validation_, part])
        return len(keep)

    @property
    def wants_validation(self) -> bool:
        return self.validation_ is None or len(self.validation_) < self.max_validation_series

    def evaluate(self, X: Any = None) -> dict[str, float]:
        """SageMaker's test metrics (RMSE, mean_wQuantileLoss, MASE) on series ``X`` (the
        validation series by default)."""
        rows = self.validation_ if X is None else X
        if rows is None or len(rows) == 0:
            return {}
        return self.model().evaluate(rows, seed=0)

    def end_epoch(self) -> None:
        if self.network_ is None or self.validation_ is None or self.early_stopping_patience is None:
            return
        self.early_stopping_.observe(self.evaluate()["mean_wQuantileLoss"])

    @property
    def is_stopped(self) -> bool:
        return self.early_stopping_.is_stopped

    def metrics(self) -> dict[str, float]:
        out = {"windows_trained": float(self.n_windows_trained_), "points": float(self.n_points_seen_),
               "series_kept": float(len(self.tails_)), "short_series": float(self.n_short_series_)}
        if math.isfinite(self.loss_):
            out["train_loss"] = self.loss_
        return out

    # -- merge ------------------------------------------------------------------------

    def merge(self, other: DeepARState) -> None:
        """Average the networks (weighted by rows seen); counts add up; the series each
        kept are pooled (up to ``max_series``)."""
        if not isinstance(other, DeepARState):
            raise IncompatibleStateError(f"cannot merge {type(other).__name__} into DeepARState")
        mine, theirs = self.hyperparameters(), other.hyperparameters()
        for h in (mine, theirs):
            h.pop("seed"), h.pop("device")
        if mine != theirs:
            raise IncompatibleStateError("cannot merge DeepAR states with different hyperparameters: "
                                         f"{sorted(k for k in mine if mine[k] != theirs[k])}")
        if other.network_ is None:
            return
        if self.network_ is None and self.n_rows_seen_ == 0:
            become_copy(self, other)
            return
        if self.cardinality_ != other.cardinality_ or self.n_dynamic_ != other.n_dynamic_:
            raise IncompatibleStateError(f"cannot merge DeepAR states of categories {self.cardinality_} and "
                                         f"{other.cardinality_}, covariates {self.n_dynamic_} and {other.n_dynamic_}")
        self._merge_networks(other)
        self.n_rows_seen_ += other.n_rows_seen_
        self.n_points_seen_ += other.n_points_seen_
        self.n_windows_trained_ += other.n_windows_trained_
        self.n_short_series_ += other.n_short_series_
        for sid, tail in other.tails_.items():
            if sid not in self.tails_:
                self.tails_[sid] = tail
        while len(self.tails_) > self.max_series:
            self.tails_.popitem(last=False)

    # -- arrays -----------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        from onepass.sources._series import SeriesRows

        meta = {"hyperparameters": self.hyperparameters(), **self._training_meta(),
                "cardinality_": self.cardinality_, "n_dynamic_": self.n_dynamic_,
                "n_points_seen": self.n_points_seen_, "n_windows_trained": self.n_windows_trained_,
                "n_short_series": self.n_short_series_, "loss": None if math.isnan(self.loss_) else self.loss_,
                "early_stopping": self.early_stopping_.to_meta()}
        tails = SeriesRows(list(self.tails_), np.array([t[0] for t in self.tails_.values()], "datetime64[s]"),
                           [t[1] for t in self.tails_.values()], np.zeros((len(self.tails_), 0), np.int64),
                           [t[2] for t in self.tails_.values()])
        arrays = {**self.network_arrays(), **_series_arrays("tails", tails)}
        if self.validation_ is not None:
            arrays.update(_series_arrays("validation", self.validation_))
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> DeepARState:
        state = cls(**meta["hyperparameters"])
        state.cardinality_ = [int(c) for c in meta["cardinality_"]]
        state.n_dynamic_ = int(meta["n_dynamic_"])
        state._restore_training(meta, arrays)
        state.n_points_seen_ = int(meta["n_points_seen"])
        state.n_windows_trained_ = int(meta["n_windows_trained"])
        state.n_short_series_ = int(meta["n_short_series"])
        state.loss_ = math.nan if meta["loss"] is None else float(meta["loss"])
        state.early_stopping_.restore(meta["early_stopping"])
        tails = _series_from_arrays("tails", arrays)
        state.tails_ = OrderedDict((str(sid), (start, values, dyn)) for sid, start, values, dyn in
                                   zip(tails.ids, tails.starts, tails.targets, tails.dynamic_feat or [], strict=True))
        if "validation__starts" in arrays:
            state.validation_ = _series_from_arrays("validation", arrays)
        return state

    # -- finalize ---------------------------------------------------------------------

    def model(self) -> DeepARModel:
        """The forecaster: the network as NumPy arrays (no torch needed to forecast or serve)."""
        if self.network_ is None:
            from onepass.errors import NotFittedError

            raise NotFittedError("this DeepAR state has seen no series; train it first")
        arrays = {k.partition("__")[2]: v for k, v in self.parameters().items() if k.startswith("param__")}
        return DeepARModel(arrays, context_length=self.context_length, prediction_length=self.prediction_length,
                           time_freq=self.time_freq, likelihood=self.likelihood, lags=self.lags,
                           cardinality=self.cardinality_, num_layers=self.num_layers, n_dynamic=self.n_dynamic_,
                           num_samples=self.num_eval_samples, quantiles=self.test_quantiles,
                           n_rows_seen=self.n_rows_seen_)


class _Windows:
    """The windows of one batch: the histories in a flat buffer (covariates in another),
    each window a record and the end of its steps in that record's history."""

    def __init__(self, buffer: np.ndarray, covariates: np.ndarray | None, offsets: np.ndarray, starts: np.ndarray,
                 cat: np.ndarray, rec: np.ndarray, ends: np.ndarray, window: int, max_lag: int, frequency: Any) -> None:
        self.buffer, self.covariates, self.offsets, self.starts = buffer, covariates, offsets, starts
        self.cat, self.rec, self.ends = cat, rec, ends
        self.window, self.max_lag, self.frequency = window, max_lag, frequency

    def take(self, which: np.ndarray) -> dict[str, np.ndarray]:
        """Windows ``which``: their values (with the lags' reach before them), times,
        categories and covariates."""
        W, L = self.window, self.max_lag
        rec, ends = self.rec[which], self.ends[which]
        at = self.offsets[rec] + ends  # the padded history's index of each window's first lag
        out = {"values": self.buffer[at[:, None] + np.arange(W + L)],
               "times": self.frequency.times(self.starts[rec], W, ends - W), "cat": self.cat[rec]}
        if self.covariates is not None:
            out["dynamic"] = self.covariates[:, (at + L)[:, None] + np.arange(W)].transpose(1, 2, 0)
        return out


def _series_arrays(prefix: str, rows: Any) -> dict[str, np.ndarray]:
    """Series as flat arrays (ids, starts, targets and covariates by offsets, categories)."""
    lengths = np.array([len(t) for t in rows.targets], np.int64)
    dyn = rows.dynamic_feat or [np.zeros((0, n), np.float32) for n in lengths]
    n_dyn = max((d.shape[0] for d in dyn), default=0)
    return {f"{prefix}__ids": np.array(["" if i is None else i for i in rows.ids], dtype=str),
            f"{prefix}__has_id": np.array([i is not None for i in rows.ids], bool),
            f"{prefix}__starts": rows.starts.astype("datetime64[s]").astype(np.int64),
            f"{prefix}__lengths": lengths,
            f"{prefix}__values": np.concatenate(rows.targets).astype(np.float32) if len(rows) else np.zeros(0, np.float32),
            f"{prefix}__dynamic": (np.concatenate([d if d.shape[0] == n_dyn else np.zeros((n_dyn, d.shape[1]), np.float32)
                                                   for d in dyn], axis=1) if len(rows) else np.zeros((0, 0), np.float32)),
            f"{prefix}__cat": rows.cat.astype(np.int64)}


def _series_from_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    from onepass.sources._series import SeriesRows

    lengths = np.asarray(arrays[f"{prefix}__lengths"], np.int64)
    cuts = np.cumsum(lengths)[:-1]
    values = np.split(np.asarray(arrays[f"{prefix}__values"], np.float32), cuts)
    dynamic = np.asarray(arrays[f"{prefix}__dynamic"], np.float32)  # (covariates, points), as saved
    dyn = np.split(dynamic, cuts, axis=1)
    if len(lengths) == 0:
        values, dyn = [], []
    ids = [str(i) if h else None for i, h in zip(arrays[f"{prefix}__ids"], arrays[f"{prefix}__has_id"], strict=True)]
    return SeriesRows(ids, np.asarray(arrays[f"{prefix}__starts"], np.int64).astype("datetime64[s]"), values,
                      np.asarray(arrays[f"{prefix}__cat"], np.int64), dyn,
                      [f"{prefix} series {i}" for i in range(len(lengths))])
