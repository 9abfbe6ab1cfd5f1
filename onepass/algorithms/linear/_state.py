"""The Linear Learner training state: many linear models, one weight tensor, one pass."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass import _memory
from onepass._parallel import N_BLOCKS, blas_single_thread, map_blocks, run_together
from onepass._parallel import is_inline as _inline_blocks
from onepass._scratch import Scratch
from onepass.algorithms._hyper import GRID_SEED, draw_grid, is_int, parse_range, require, require_choice
from onepass.algorithms._labelled import Rows, checked_rows
from onepass.algorithms._losses import (
    LOSSES,
    gradient,
    loss_values,
    softmax_loss_and_gradient,
)
from onepass.algorithms._optimizers import OPTIMIZERS, adam_correction, check_optimizer_parameters, numpy_step
from onepass.algorithms._selection import ModelSelection, check_selection_parameters
from onepass.algorithms.linear._model import LinearLearnerModel
from onepass.batch import Batch
from onepass.errors import IncompatibleStateError, InvalidParameterError, NotFittedError
from onepass.state import ArraySpec, become_copy

__all__ = ["LinearLearnerState", "PREDICTOR_TYPES"]

PREDICTOR_TYPES = tuple(LOSSES)
_DEFAULT_LR = {"adam": 0.01, "sgd": 0.05, "adagrad": 0.1}
_DEFAULT_LR_RANGE = {"adam": (1e-3, 1e-1), "sgd": (5e-3, 0.5), "adagrad": (1e-2, 1.0)}
_DEFAULT_L1_RANGE = (1e-8, 1e-4)
_DEFAULT_WD_RANGE = (1e-8, 1e-3)
_RAMP = 50  # a step holds at most 1/_RAMP of the rows learned before it ...
_MIN_STEP = 32  # ... and at least this many rows
_SPARSE_PARALLEL_NNZ = 8192  # non-zeros from which a sparse step runs on two threads
_FEATURE_COST = 2  # a feature's optimizer step costs about this many of its non-zeros (measured)


class _RecordSlot:
    """``coef_``, ``moment1_``, ``moment2_``: one slot of every feature's record in
    ``params_``, read as a view, assigned by writing into it (a slot the optimizer does
    not keep reads as 0 rows)."""

    def __init__(self, slot: int) -> None:
        self.slot = slot

    def __get__(self, state: Any, owner: Any = None) -> Any:
        if state is None:
            return self
        if self.slot >= state.params_.shape[1]:
            return np.zeros((0, state.n_columns), dtype=np.float32)
        return state.params_[:, self.slot]

    def __set__(self, state: Any, value: np.ndarray) -> None:
        state._set_slot(self.slot, value)


class LinearLearnerState:
    """Everything Linear Learner needs to go on training: ``num_models`` linear models at once.

    The models share one stacked weight tensor of shape ``(n_features, num_models *
    n_outputs)``: a mini-batch costs one matrix product for all of them. Each model has
    its own learning rate, L1 and L2 (``wd``) strength; model 0 has exactly
    ``learning_rate``, ``l1`` and ``wd``, the others are drawn log-uniformly from the
    ranges. Every model is scored on validation rows as training goes, stops when it
    no longer improves, and finalize picks the best (or any other by rank).

    Parameters
    ----------
    predictor_type : str, default="binary_classifier"
        binary_classifier (labels 0/1), multiclass_classifier (labels 0..num_classes-1)
        or regressor.
    num_classes : int or None, default=None
        Number of classes, required for multiclass_classifier (at least 3).
    loss : str, default="auto"
        logistic or hinge_loss (binary); softmax_loss (multiclass); squared_loss,
        absolute_loss, huber_loss or quantile_loss (regressor). auto: the first of each.
    num_models : int, default=32
        Models trained at once, each with its own learning rate, l1 and wd.
    optimizer : str, default="auto"
        adam, sgd (with momentum) or adagrad (per-coordinate steps that shrink with the
        squared gradients summed so far: exact with lazy sparse updates, as in Vowpal
        Wabbit's adaptive updates). auto: adagrad when learning row by row
        (mini_batch_size 1, the default for sparse input), adam otherwise.
    learning_rate : float or "auto", default="auto"
        Step size of model 0 (auto: 0.01 for adam, 0.05 for sgd, 0.1 for adagrad).
    l1 : float, default=0.0
        L1 strength of model 0, applied by a proximal step (weights become exactly 0).
    wd : float, default=0.0
        L2 strength (weight decay) of model 0; the bias is not decayed.
    learning_rate_range : str or tuple, default="auto"
        low,high range the other models' learning rates are drawn from, log-uniformly
        (auto: 0.001,0.1 for adam, 0.005,0.5 for sgd, 0.01,1 for adagrad).
    initial_accumulator : float or "auto", default="auto"
        Where adagrad's sums of squared gradients start: a feature's first steps are
        damped as if it had seen that much gradient before (auto: 1 when learning row by
        row, 0 with mini-batches, whose gradients are means over the rows).
    l1_range : str or tuple, default="auto"
        low,high range of the other models' l1 (auto: 1e-8,1e-4).
    wd_range : str or tuple, default="auto"
        low,high range of the other models' wd (auto: 1e-8,1e-3).
    momentum : float, default=0.9
        Momentum of sgd.
    beta_1 : float, default=0.9
        Adam's first-moment decay.
    beta_2 : float, default=0.999
        Adam's second-moment decay.
    epsilon : float, default=1e-8
        Adam's denominator guard.
    use_bias : bool, default=True
        Fit an intercept.
    mini_batch_size : int or "auto", default="auto"
        Rows per optimizer step, once 50 times that many rows were learned (steps start
        at 32 rows and grow with the rows learned, like a decaying learning rate). 1:
        every row is learned on its own, as Vowpal Wabbit does, by a compiled loop (dense
        rows are passed as their non-zeros). auto: 1 for sparse input (hashed features:
        most features are rare, and a rare feature learns far more from steps of its own
        rows than from its share of a mean over 1000 rows), 1000 for dense input.
    normalize_data : bool, default=True
        Center and scale dense features with the mean and standard deviation of the
        warm-up rows (sparse features are left as they are: centering would densify them).
    normalize_label : bool or "auto", default="auto"
        Center and scale regression labels the same way (auto: True for regressor).
    num_point_for_scaler : int, default=10000
        Warm-up rows buffered to estimate the normalization and class weights before
        the first step.
    positive_example_weight_mult : float or "balanced", default=1.0
        Weight of positive rows in binary training (balanced: negatives / positives in
        the warm-up rows).
    balance_multiclass_weights : bool, default=False
        Weight each class by the inverse of its frequency in the warm-up rows.
    margin : float, default=1.0
        Margin of hinge_loss.
    quantile : float, default=0.5
        Quantile of quantile_loss, in (0, 1).
    huber_delta : float, default=1.0
        Where huber_loss turns from squared to absolute (in normalized label units).
    validation_fraction : float, default=0.0
        Share of the stream held out (not trained on) as validation rows, until
        max_validation_rows are held. 0: validation rows come from a validation source
        (onepass train --validation), or models are judged by progressive validation:
        each row scored before the models learn from it.
    max_validation_rows : int, default=10000
        Cap on the validation rows kept (held out or from a validation source), and the
        number of recent progressively-scored rows kept when there are none.
    validation_every_rows : int, default=50000
        Training rows between two scorings of every model (for early stopping).
    early_stopping_patience : int, default=10
        Scorings without relative improvement after which a model stops updating.
        0 turns early stopping off.
    early_stopping_tolerance : float, default=0.0
        Relative improvement of the validation loss that counts as one. Progressive
        validation scores fresh rows each time, so its loss is noisy (about 1% on 10k
        rows): a stricter rule stops models that are still learning (measured: every
        model of the sparse bench stopped at 1.3M of 2M rows with patience 5 and 0.001,
        test AUC 0.830 instead of 0.838).
    binary_classifier_model_selection_criteria : str, default="accuracy"
        How finalize ranks binary models: accuracy, f1, f_beta, cross_entropy_loss,
        loss_function, recall_at_target_precision or precision_at_target_recall; the
        decision threshold is tuned on the validation rows for the first five that need
        one. Multiclass and regression models are ranked by their loss.
    target_precision : float, default=0.8
        For recall_at_target_precision.
    target_recall : float, default=0.8
        For precision_at_target_recall.
    f_beta : float, default=1.0
        Beta of f_beta.
    seed : int or None, default=None
        Seeds the state's generator (which rows are held out), checkpointed with it.

    Attributes
    ----------
    n_features_ : int
        Width of the data, -1 before the first batch.
    coef_ : ndarray of shape (n_features, num_models * n_outputs), float32
        Weights of every model, in the normalized feature space (model m's output o is
        column ``m * n_outputs + o``). Empty during warm-up.
    intercept_ : ndarray of shape (num_models * n_outputs,), float32
    learning_rates_, l1s_, wds_ : ndarray of shape (num_models,)
        Each model's hyperparameters.
    selection_ : ModelSelection
        Validation rows, progressive validation, early stopping (``selection_.is_active_``
        is False for models stopped early) and the leaderboard (``onepass.algorithms._selection``).
    feature_mean_, feature_scale_ : ndarray of shape (n_features,)
        Normalization from the warm-up rows.
    n_rows_seen_ : int
        Rows received (trained on, held out or buffered).
    n_rows_trained_ : int
        Rows the models learned from.

    Notes
    -----
    Memory is ``O(num_models * n_outputs * n_features)`` (weights and two Adam moments,
    float32) plus ``O((num_point_for_scaler + max_validation_rows) * n_features)`` for
    the warm-up and validation rows (their non-zeros, for sparse data), whatever the
    number of rows. A dense step of ``b`` rows costs two ``b x n_features x num_models``
    matrix products (BLAS) and ``O(b * num_models)`` more, compiled (``_dense_training``:
    the steps up to the next scoring run in one call, two threads taking half the models
    each). A sparse step (a mini-batch, or one row) touches only the records
    of the features present in it: ``O(nnz * num_models)``, independent of
    ``n_features``, compiled (``_sparse_training``); it is lazy (a feature's weights and
    moments change only in steps where it appears, as in TensorFlow's LazyAdam), L2
    included. L1 uses a proximal step scaled by each coordinate's step size (proximal
    Adam, proximal Adagrad). The design follows SageMaker's Linear
    Learner (normalize on a warm-up sample, train many models in parallel, select on
    validation data and tune the binary threshold there).

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import Batch, LinearLearnerState
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20000, 3)).astype(np.float32)
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(np.float32)
    >>> state = LinearLearnerState(num_models=4, seed=0)
    >>> state.update(Batch(X[:10000], y[:10000]))
    >>> state.update(Batch(X[10000:], y[10000:]))
    >>> model = state.model()          # the best of the 4
    >>> model.score(X, y) > 0.95
    True
    >>> [entry["rank"] for entry in model.leaderboard_]
    [0, 1, 2, 3]
    """

    kind: ClassVar[str] = "linear-learner"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {  # d features, k columns (models x classes); empty ones left out
        "coef": ArraySpec(("f4",), ("d", "k"), required=False),
        "moment1": ArraySpec(("f4",), ("d", "k"), required=False),
        "moment2": ArraySpec(("f4",), ("d", "k"), required=False),
        "bias": ArraySpec(("f4",), (3, "k")),
        "per_model": ArraySpec(("f8",), ("models", 3)),
        "scaler": ArraySpec(("f4",), (2, "d"), required=False),
        **Rows.array_specs("buffer"),
        **ModelSelection.array_specs(),
    }

    def __init__(
        self,
        predictor_type: str = "binary_classifier",
        *,
        num_classes: int | None = None,
        loss: str = "auto",
        num_models: int = 32,
        optimizer: str = "auto",
        learning_rate: float | str = "auto",
        l1: float = 0.0,
        wd: float = 0.0,
        learning_rate_range: Any = "auto",
        l1_range: Any = "auto",
        wd_range: Any = "auto",
        momentum: float = 0.9,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        use_bias: bool = True,
        mini_batch_size: int | str = "auto",
        initial_accumulator: float | str = "auto",
        normalize_data: bool = True,
        normalize_label: bool | str = "auto",
        num_point_for_scaler: int = 10000,
        positive_example_weight_mult: float | str = 1.0,
        balance_multiclass_weights: bool = False,
        margin: float = 1.0,
        quantile: float = 0.5,
        huber_delta: float = 1.0,
        validation_fraction: float = 0.0,
        max_validation_rows: int = 10000,
        validation_every_rows: int = 50000,
        early_stopping_patience: int = 10,
        early_stopping_tolerance: float = 0.0,
        binary_classifier_model_selection_criteria: str = "accuracy",
        target_precision: float = 0.8,
        target_recall: float = 0.8,
        f_beta: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if predictor_type not in PREDICTOR_TYPES:
            raise InvalidParameterError(
                f"predictor_type={predictor_type!r} must be one of {', '.join(PREDICTOR_TYPES)}")
        if predictor_type == "multiclass_classifier":
            if not is_int(num_classes) or num_classes < 3:  # type: ignore[operator]
                raise InvalidParameterError(
                    f"num_classes={num_classes!r}: multiclass_classifier needs num_classes >= 3 "
                    "(use binary_classifier for 2 classes)")
        elif num_classes is not None and not (predictor_type == "binary_classifier" and num_classes == 2):
            raise InvalidParameterError(f"num_classes={num_classes!r} is only for multiclass_classifier")
        allowed = LOSSES[predictor_type]
        if loss != "auto" and loss not in allowed:
            raise InvalidParameterError(
                f"loss={loss!r} does not fit predictor_type={predictor_type!r}; choose auto or one of "
                f"{', '.join(allowed)}")
        require_choice("optimizer", optimizer, OPTIMIZERS, auto=True)
        for name, value, rule in (("mini_batch_size", mini_batch_size, "int>=1"),
                                  ("initial_accumulator", initial_accumulator, ">=0"),
                                  ("learning_rate", learning_rate, ">0")):
            if value != "auto":
                require(rule, **{name: value})
        require("int>=1", num_models=num_models, num_point_for_scaler=num_point_for_scaler)
        require(">=0", l1=l1, wd=wd)
        require(">0", margin=margin, huber_delta=huber_delta)
        require("(0,1)", quantile=quantile)
        if positive_example_weight_mult != "balanced":
            require(">0", positive_example_weight_mult=positive_example_weight_mult)
        require_choice("normalize_label", normalize_label, ("auto", True, False))
        require("bool", use_bias=use_bias, normalize_data=normalize_data,
                balance_multiclass_weights=balance_multiclass_weights)
        check_optimizer_parameters(momentum=momentum, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        check_selection_parameters(
            validation_fraction=validation_fraction, max_validation_rows=max_validation_rows,
            validation_every_rows=validation_every_rows, early_stopping_patience=early_stopping_patience,
            early_stopping_tolerance=early_stopping_tolerance, criterion=binary_classifier_model_selection_criteria,
            target_precision=target_precision, target_recall=target_recall, f_beta=f_beta)

        self.predictor_type = predictor_type
        self.num_classes = None if num_classes is None else int(num_classes)
        self.loss = loss
        self.num_models = int(num_models)
        self.optimizer = optimizer
        self.learning_rate = learning_rate if learning_rate == "auto" else float(learning_rate)
        self.l1 = float(l1)
        self.wd = float(wd)
        # "auto" depends on the optimizer: resolved with it (_resolve)
        self.learning_rate_range = learning_rate_range if learning_rate_range == "auto" else \
            parse_range("learning_rate_range", learning_rate_range, (0.0, 0.0), zero_ok=False)
        self.l1_range = parse_range("l1_range", l1_range, _DEFAULT_L1_RANGE, zero_ok=True)
        self.wd_range = parse_range("wd_range", wd_range, _DEFAULT_WD_RANGE, zero_ok=True)
        self.momentum = float(momentum)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.use_bias = bool(use_bias)
        self.mini_batch_size = mini_batch_size if mini_batch_size == "auto" else int(mini_batch_size)
        self.initial_accumulator = initial_accumulator if initial_accumulator == "auto" else \
            float(initial_accumulator)
        self.normalize_data = bool(normalize_data)
        self.normalize_label = normalize_label
        self.num_point_for_scaler = int(num_point_for_scaler)
        self.positive_example_weight_mult = (
            "balanced" if positive_example_weight_mult == "balanced" else float(positive_example_weight_mult))
        self.balance_multiclass_weights = bool(balance_multiclass_weights)
        self.margin = float(margin)
        self.quantile = float(quantile)
        self.huber_delta = float(huber_delta)
        self.validation_fraction = float(validation_fraction)
        self.max_validation_rows = int(max_validation_rows)
        self.validation_every_rows = int(validation_every_rows)
        self.early_stopping_patience = int(early_stopping_patience)
        self.early_stopping_tolerance = float(early_stopping_tolerance)
        self.binary_classifier_model_selection_criteria = binary_classifier_model_selection_criteria
        self.target_precision = float(target_precision)
        self.target_recall = float(target_recall)
        self.f_beta = float(f_beta)
        self.seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else int(seed)

        # derived, fixed by the hyperparameters
        self.loss_ = allowed[0] if loss == "auto" else loss
        self.n_outputs = self.num_classes if predictor_type == "multiclass_classifier" else 1
        self.n_columns = self.num_models * self.n_outputs
        self.is_label_normalized = predictor_type == "regressor" and normalize_label in ("auto", True)

        # learned
        self.n_features_ = -1
        self.is_sparse_input_ = False
        self._resolve(False)  # provisionally: the first batch tells dense from sparse
        self.intercept_ = np.zeros(self.n_columns, dtype=np.float32)
        self._scratch = Scratch()  # work arrays kept across steps
        self._positions = np.empty(0, dtype=np.int32)  # the sparse step's per-feature slots, -1 between steps
        self.moment1_bias_ = np.zeros(self.n_columns, dtype=np.float32)
        self.moment2_bias_ = np.zeros(self.n_columns, dtype=np.float32)
        self.n_steps_ = 0
        self._set_scaler(np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32))
        self.label_mean_ = 0.0
        self.label_scale_ = 1.0
        self.class_weights_ = np.zeros(0)
        self.buffer_ = Rows.empty()
        # validation rows, progressive validation, early stopping, the leaderboard
        self.selection_ = ModelSelection(
            self.num_models, predictor_type, loss=self.loss_, loss_kwargs=self._loss_kwargs(),
            n_outputs=self.n_outputs, max_validation_rows=self.max_validation_rows,
            validation_every_rows=self.validation_every_rows, early_stopping_patience=self.early_stopping_patience,
            early_stopping_tolerance=self.early_stopping_tolerance,
            criterion=binary_classifier_model_selection_criteria, target_precision=self.target_precision,
            target_recall=self.target_recall, f_beta=self.f_beta)
        self.n_rows_seen_ = 0
        self.n_rows_trained_ = 0
        self.rng_ = np.random.default_rng(self.seed)

    def _resolve(self, is_sparse: bool) -> None:
        """Fix what "auto" means for this input: optimizer_, mini_batch_size_,
        initial_accumulator_, the learning-rate range, each model's hyperparameters, and
        the record layout. Sparse input (hashed features, as Vowpal Wabbit takes) learns
        row by row with Adagrad; dense input takes Adam steps of 1000 rows."""
        self.mini_batch_size_ = (1 if is_sparse else 1000) if self.mini_batch_size == "auto" else \
            int(self.mini_batch_size)
        self.optimizer_ = ("adagrad" if self.mini_batch_size_ == 1 else "adam") if self.optimizer == "auto" else \
            self.optimizer
        # Adagrad's sum of squared gradients starts here (the first steps of a feature are
        # damped as if it had seen gradients before): 1 for row-by-row steps, 0 for mini-batch
        # steps, whose gradients are means over the rows (1 would swamp them)
        self.initial_accumulator_ = (1.0 if self.mini_batch_size_ == 1 else 0.0) \
            if self.initial_accumulator == "auto" else float(self.initial_accumulator)
        self.learning_rate_range_ = parse_range("learning_rate_range", self.learning_rate_range,
                                                 _DEFAULT_LR_RANGE[self.optimizer_], zero_ok=False)
        lr0 = _DEFAULT_LR[self.optimizer_] if self.learning_rate == "auto" else float(self.learning_rate)
        grid = np.random.default_rng(GRID_SEED)
        self.learning_rates_ = draw_grid(grid, self.num_models, lr0, self.learning_rate_range_)
        self.l1s_ = draw_grid(grid, self.num_models, self.l1, self.l1_range)
        self.wds_ = draw_grid(grid, self.num_models, self.wd, self.wd_range)
        self.params_ = _records((0, 3 if self.optimizer_ == "adam" else 2, self.n_columns))

    # -- hyperparameters --------------------------------------------------------------

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "predictor_type": self.predictor_type,
            "num_classes": self.num_classes,
            "loss": self.loss,
            "num_models": self.num_models,
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "l1": self.l1,
            "wd": self.wd,
            "learning_rate_range": self.learning_rate_range if self.learning_rate_range == "auto" else
            list(self.learning_rate_range),
            "l1_range": list(self.l1_range),
            "wd_range": list(self.wd_range),
            "momentum": self.momentum,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "use_bias": self.use_bias,
            "mini_batch_size": self.mini_batch_size,
            "initial_accumulator": self.initial_accumulator,
            "normalize_data": self.normalize_data,
            "normalize_label": self.normalize_label,
            "num_point_for_scaler": self.num_point_for_scaler,
            "positive_example_weight_mult": self.positive_example_weight_mult,
            "balance_multiclass_weights": self.balance_multiclass_weights,
            "margin": self.margin,
            "quantile": self.quantile,
            "huber_delta": self.huber_delta,
            "validation_fraction": self.validation_fraction,
            "max_validation_rows": self.max_validation_rows,
            "validation_every_rows": self.validation_every_rows,
            "early_stopping_patience": self.early_stopping_patience,
            "early_stopping_tolerance": self.early_stopping_tolerance,
            "binary_classifier_model_selection_criteria": self.binary_classifier_model_selection_criteria,
            "target_precision": self.target_precision,
            "target_recall": self.target_recall,
            "f_beta": self.f_beta,
            "seed": self.seed,
        }

    @property
    def is_started(self) -> bool:
        """True once the warm-up rows have fixed the normalization and training began."""
        return self.coef_.shape[0] > 0

    def _loss_kwargs(self) -> dict[str, float]:
        return {"margin": self.margin, "quantile": self.quantile, "huber_delta": self.huber_delta}

    # -- checking input -----------------------------------------------------------------

    def _check(self, batch: Batch) -> tuple[Any, np.ndarray, np.ndarray]:
        """Validated (X, y, w) of a batch; raises before anything changes."""
        return checked_rows(batch, name="Linear Learner", n_features=self.n_features_,
                            predictor_type=self.predictor_type, num_classes=self.num_classes)

    # -- update ---------------------------------------------------------------------------

    def update(self, batch: Batch) -> None:
        """Update every model with one mini-batch (rows with labels ``batch.y``), in place."""
        if batch.X.shape[0] == 0:
            return
        X, y, w = self._check(batch)
        if self.n_features_ == -1:
            self._first_batch(X)
        n = X.shape[0]
        self.n_rows_seen_ += n
        with blas_single_thread():  # small products: BLAS threads would only spin
            X, y, w = self.selection_.hold_out(self.rng_, self.validation_fraction, X, y, w)
            if X.shape[0] == 0:
                return
            if not self.is_started:
                if self.buffer_.n_rows == 0 and X.shape[0] >= self.num_point_for_scaler and not sp.issparse(X):
                    # the warm-up ends with this batch: it is not kept, so no copy of it
                    self.buffer_ = Rows(np.asarray(X, dtype=np.float32), y, w)
                else:
                    self.buffer_ = self.buffer_.append(X, y, w)
                if self.buffer_.n_rows >= self.num_point_for_scaler:
                    self._start()
                return
            self._train(X, y, w)

    def add_validation(self, batch: Batch) -> int:
        """Keep rows of a validation source (up to ``max_validation_rows``); returns how many were kept."""
        X, y, w = self._check(batch)
        if self.n_features_ == -1:
            self._first_batch(X)
        return self.selection_.add_validation(X, y, w)

    def _first_batch(self, X: Any) -> None:
        self.n_features_ = int(X.shape[1])
        self.is_sparse_input_ = bool(sp.issparse(X))
        self._resolve(self.is_sparse_input_)

    @property
    def wants_validation(self) -> bool:
        """True while the validation rows are fewer than ``max_validation_rows``."""
        return self.selection_.wants_validation

    def _start(self) -> None:
        """End the warm-up: fix normalization and class weights, then train on the buffer."""
        X, y, w = self.buffer_.X, self.buffer_.y, self.buffer_.w
        d = self.n_features_
        if self.normalize_data and not sp.issparse(X) and X.shape[0] > 0:
            total = max(float(w.sum()), 1e-300)
            mean, var = np.empty(d), np.empty(d)
            _dense_compiled().moments(*_read_only(np.ascontiguousarray(X, dtype=np.float32), w), total, mean, var)
            scale = np.sqrt(var)
            scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0  # constant columns
            self._set_scaler(mean.astype(np.float32), scale.astype(np.float32))
        else:
            self._set_scaler(np.zeros(d, dtype=np.float32), np.ones(d, dtype=np.float32))
        if self.is_label_normalized and y.size:
            total = max(float(w.sum()), 1e-300)
            mean = float(np.dot(w, y.astype(np.float64)) / total)
            std = math.sqrt(float(np.dot(w, (y.astype(np.float64) - mean) ** 2) / total))
            self.label_mean_, self.label_scale_ = mean, std if std > 1e-12 * max(1.0, abs(mean)) else 1.0
        if self.predictor_type == "binary_classifier":
            pos_w = self.positive_example_weight_mult
            if pos_w == "balanced":
                n_pos, n_neg = float(w[y == 1].sum()), float(w[y == 0].sum())
                pos_w = n_neg / n_pos if n_pos > 0 and n_neg > 0 else 1.0
            self.class_weights_ = np.array([1.0, float(pos_w)])
        elif self.predictor_type == "multiclass_classifier":
            c = self.num_classes
            if self.balance_multiclass_weights:
                counts = np.bincount(y.astype(np.intp), weights=w, minlength=c)
                present = counts > 0
                cw = np.ones(c)
                cw[present] = counts[present].sum() / (present.sum() * counts[present])
                self.class_weights_ = cw
            else:
                self.class_weights_ = np.ones(c)
        self._allocate()
        if X.shape[0]:
            self._train(X, y, w)

    def _allocate(self) -> None:
        """The weights, moments and progressive-validation ring of a started state, zeroed."""
        d, k = self.n_features_, self.n_columns
        self.params_ = _records((d, self.params_.shape[1], k))
        self.moment2_bias_ = np.zeros(k if self.optimizer_ == "adam" else 0, dtype=np.float32)
        self.selection_.allocate()
        self.buffer_ = Rows.empty()

    # -- weights and moments: one record per feature ---------------------------------------

    # A feature's weights and optimizer moments lie side by side in ``params_[f]`` (shape
    # (slots, n_columns): weights, first moment, and Adam's second moment): a sparse step
    # reads and writes each feature present in one run of memory instead of three (the
    # step is bound by these random accesses; measured 2x faster). coef_, moment1_ and
    # moment2_ are views of it, and assigning one writes into it.

    coef_ = _RecordSlot(0)
    moment1_ = _RecordSlot(1)
    moment2_ = _RecordSlot(2)  # Adam's second moments; empty (0 rows) for sgd and adagrad

    def _set_slot(self, slot: int, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float32)
        if slot >= self.params_.shape[1]:
            if value.size:
                raise IncompatibleStateError(f"a {self.optimizer_} state keeps no second moment")
            return
        if value.shape[0] != self.params_.shape[0]:  # a new width: the other slots start at 0
            self.params_ = _records((value.shape[0], *self.params_.shape[1:]))
        self.params_[:, slot] = value

    # -- parameter server (onepass.distributed.ParameterState) ----------------------------------

    def parameters(self) -> dict[str, np.ndarray] | None:
        """The arrays workers share through a parameter server; None during the warm-up.

        The weights and intercepts of every model, the rows trained (which set the step
        size), and what fixes their meaning: the feature scaler, the label scaling, the
        class weights. Optimizer moments and validation rows stay each worker's own.
        """
        if not self.is_started:
            return None
        return {"coef": self.coef_.copy(), "intercept": self.intercept_.copy(),
                "rows_trained": np.array([float(self.n_rows_trained_)]),
                "scaler": np.stack([self.feature_mean_, self.feature_scale_]),
                "label": np.array([self.label_mean_, self.label_scale_]),
                "class_weights": np.array(self.class_weights_, dtype=np.float64),
                "sparse_input": np.array([float(self.is_sparse_input_)])}

    def set_parameters(self, parameters: dict[str, np.ndarray]) -> None:
        """Take the shared arrays of :meth:`parameters`; a fresh state starts from them (no warm-up)."""
        coef = np.asarray(parameters["coef"], dtype=np.float32)
        if self.n_features_ not in (-1, coef.shape[0]) or coef.shape[1] != self.n_columns:
            raise IncompatibleStateError(
                f"parameters of shape {coef.shape} for a Linear Learner state of {self.n_features_} features and "
                f"{self.n_columns} columns")
        if not self.is_started:
            if self.buffer_.n_rows:
                raise IncompatibleStateError("set_parameters on a state holding warm-up rows; use a fresh state")
            self.n_features_ = coef.shape[0]
            self.is_sparse_input_ = bool(np.asarray(parameters["sparse_input"]).ravel()[0])
            self._resolve(self.is_sparse_input_)
            scaler = np.asarray(parameters["scaler"], dtype=np.float32)
            self._set_scaler(scaler[0].copy(), scaler[1].copy())
            self.label_mean_, self.label_scale_ = (float(v) for v in np.asarray(parameters["label"]).ravel())
            self.class_weights_ = np.array(parameters["class_weights"], dtype=np.float64)
            self._allocate()
        self.coef_ = coef.copy()
        self.intercept_ = np.asarray(parameters["intercept"], dtype=np.float32).copy()
        self.n_rows_trained_ = int(round(float(np.asarray(parameters["rows_trained"]).ravel()[0])))

    # -- the step -----------------------------------------------------------------------

    def _set_scaler(self, mean: np.ndarray, scale: np.ndarray) -> None:
        self.feature_mean_, self.feature_scale_ = mean, scale
        # flags, so a sparse step never scans all n_features columns (O(nnz), not O(d))
        self._is_centered = bool(mean.any())
        self._is_scaled = bool((scale != 1).any())

    def _normalized(self, X: Any) -> Any:
        if sp.issparse(X):
            if self._is_centered:  # dense warm-up, sparse batch: centering densifies
                X = X.toarray()
            elif self._is_scaled:
                return sp.csr_matrix((X.data / self.feature_scale_[X.indices], X.indices, X.indptr), shape=X.shape)
            else:
                return X
        X = np.asarray(X, dtype=np.float32)
        return (X - self.feature_mean_) * (np.float32(1) / self.feature_scale_)

    def _train(self, X: Any, y: np.ndarray, w: np.ndarray) -> None:
        if self.mini_batch_size_ == 1:
            self._train_rows(X, y, w)
            return
        if sp.issparse(X) and self._is_centered:  # dense warm-up, sparse batch: centering densifies
            X = X.toarray()
        if not sp.issparse(X):
            self._train_dense(X, y, w)
            return
        start = 0
        while start < X.shape[0]:
            size = self._step_size(self.n_rows_trained_)
            stop = min(start + size, X.shape[0])
            self._step(X[start:stop], y[start:stop], w[start:stop])
            self._learned(stop - start)
            start = stop

    def _step_size(self, n_rows_trained: int) -> int:
        """Rows of the next mini-batch step. Steps grow with the rows learned (at most
        1/_RAMP of them, at least _MIN_STEP rows) up to mini_batch_size: many small steps
        while the models are far off, large ones later (growing the batch acts like
        decaying the learning rate)."""
        return min(self.mini_batch_size_, max(_MIN_STEP, n_rows_trained // _RAMP))

    def _train_dense(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        """Mini-batch steps on dense rows, compiled: see ``_dense_training.steps``. The
        steps run in segments that end with the step after which the models are scored
        (early stopping); within one, two threads take half the models each."""
        f32 = np.float32
        X = np.ascontiguousarray(X, dtype=f32)
        yn = np.ascontiguousarray(self._labels(y), dtype=f32)
        rw = np.ascontiguousarray(self._row_weights(y, w), dtype=f32)
        y, w = np.ascontiguousarray(y, dtype=f32), np.ascontiguousarray(w, dtype=f32)
        M, C, d = self.num_models, self.n_outputs, self.n_features_
        # the same blocks when they run one after the other (_parallel.is_inline): BLAS may
        # round a block's products differently from the whole's
        half = (M + 1) // 2
        blocks = [(0, half * C)] + ([(half * C, M * C)] if half < M else [])
        kernels = _dense_compiled()
        inv_scale = f32(1) / self.feature_scale_
        ring = self.selection_
        code = _compiled().LOSS_CODES[self.loss_]
        opt = _compiled().OPTIMIZER_CODES[self.optimizer_]
        bias2 = self.moment2_bias_ if self.optimizer_ == "adam" else self.moment1_bias_  # not read
        constants = (f32(self.label_scale_), f32(self.label_mean_), self.is_label_normalized, code, C)
        optimizer = (self.use_bias, opt)
        rates = (self.beta_1, self.beta_2, self.epsilon, f32(self.beta_1), f32(1 - self.beta_1), f32(self.beta_2),
                 f32(1 - self.beta_2), f32(self.momentum), f32(self.epsilon), f32(self.initial_accumulator_),
                 f32(self.margin), f32(-self.quantile), f32(1.0 - self.quantile), f32(self.huber_delta))
        get = self._scratch.get
        start, n = 0, X.shape[0]
        while start < n:
            edges, trained, due = [start], self.n_rows_trained_, self.selection_.rows_to_next_scoring()
            while edges[-1] < n and edges[-1] - start < due:
                stop = min(n, edges[-1] + self._step_size(trained))
                trained += stop - edges[-1]
                edges.append(stop)
            bounds = np.array(edges, dtype=np.int64)
            totals = np.add.reduceat(rw[:edges[-1]], bounds[:-1])  # each step's weight (as rw.sum() would)
            rows = int(np.diff(bounds).max())
            lr, wd, l1 = _read_only(*self._per_column())
            args = (*_read_only(X, yn, rw, y, w, totals, bounds, self.feature_mean_, inv_scale), self.params_,
                    self.intercept_, self.moment1_bias_, bias2)

            def run(c0: int, c1: int, args: tuple = args, lr: np.ndarray = lr, wd: np.ndarray = wd,
                    l1: np.ndarray = l1, rows: int = rows) -> tuple[int, int]:
                k, models = c1 - c0, (c1 - c0) // C
                work = (get("dense_x", (rows, d)), get("dense_f", (rows * k + kernels.PAD,)),
                        get("dense_gw", (d, k)), get("dense_w", (d, k)), get("dense_loss", (rows, models)),
                        get("dense_class", (rows, models), np.int64))
                return kernels.steps(*args, c0, c1, ring.recent_scores_, ring.recent_predicted_, ring.recent_y_,
                                     ring.recent_w_, ring.recent_next_, *constants, lr, wd, l1, *optimizer,
                                     self.n_steps_, *rates, *work)

            taken, ring_next = map_blocks(run, blocks)[0]
            self.n_steps_ += int(taken)
            ring.recent_next_ = int(ring_next)
            self._learned(edges[-1] - start)
            start = edges[-1]

    def _train_rows(self, X: Any, y: np.ndarray, w: np.ndarray) -> None:
        """Learn row by row (``mini_batch_size=1``), compiled: see ``_sparse_training.online``.
        Dense rows are passed as their non-zeros. The rows run in segments that end where
        the models are scored (early stopping); within one, two threads take half the
        models each."""
        Xn = self._normalized(X)
        if not sp.issparse(Xn):
            Xn = sp.csr_matrix(Xn)
        indptr, indices, data = _csr_arrays(Xn)
        yn = np.ascontiguousarray(self._labels(y), dtype=np.float32)
        rw = np.ascontiguousarray(self._row_weights(y, w), dtype=np.float32)
        M, C = self.num_models, self.n_outputs
        half = (M + 1) // 2 if M > 1 and not _inline_blocks() else M
        blocks = [(0, half * C)] + ([(half * C, M * C)] if half < M else [])
        kernels = _compiled()
        f32 = np.float32
        code = kernels.OPTIMIZER_CODES[self.optimizer_]
        b1 = self.beta_1 if self.optimizer_ == "adam" else self.momentum
        bias2 = self.moment2_bias_ if self.optimizer_ == "adam" else self.moment1_bias_  # not read
        get = self._scratch.get
        start, n = 0, X.shape[0]
        while start < n:
            stop = min(n, start + self.selection_.rows_to_next_scoring())
            seg = indptr[start:stop + 1] - indptr[start]
            a, b = int(indptr[start]), int(indptr[stop])
            F = get("scores", (stop - start, M * C), np.float32)
            lr, wd, l1 = self._per_column()
            args = (seg, indices[a:b], data[a:b], yn[start:stop], rw[start:stop], self.params_, self.intercept_,
                    self.moment1_bias_, bias2, F, kernels.LOSS_CODES[self.loss_], C)
            rest = (lr, wd, l1, self.use_bias, code, self.n_steps_, f32(b1), f32(self.beta_2),
                    f32(self.epsilon), f32(self.initial_accumulator_), f32(self.margin), f32(self.quantile),
                    f32(self.huber_delta))
            map_blocks(lambda c0, c1, args=args, rest=rest: kernels.online(*args, c0, c1, *rest, get("g", (M * C,), np.float32)),
                       blocks)
            self.n_steps_ += stop - start
            self._remember(F, y[start:stop], w[start:stop])
            self._learned(stop - start)
            start = stop

    def _learned(self, n: int) -> None:
        """Count ``n`` rows learned; score every model (early stopping) when it is time."""
        self.n_rows_trained_ += n
        self.selection_.learned(n, self.raw_scores, self.n_rows_trained_, self._huber_scale)

    def _labels(self, y: np.ndarray) -> np.ndarray:
        """The labels the losses see: regression labels normalized from the warm-up."""
        if not self.is_label_normalized:
            return y
        return (y - np.float32(self.label_mean_)) / np.float32(self.label_scale_)

    def _per_column(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(learning rate, wd, l1) of each weight column, float32; 0 learning rate for
        models stopped early."""
        col = np.repeat(np.arange(self.num_models), self.n_outputs)
        return ((self.learning_rates_ * self.selection_.is_active_)[col].astype(np.float32),
                self.wds_[col].astype(np.float32), self.l1s_[col].astype(np.float32))

    def _adam_correction(self) -> tuple[float, float]:
        """Adam's bias correction at the current step: (step factor, epsilon term)."""
        return adam_correction(self.n_steps_, self.beta_1, self.beta_2, self.epsilon)

    def _row_weights(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        if self.predictor_type == "regressor":
            return w
        return (w * self.class_weights_[y.astype(np.intp)]).astype(np.float32)

    def _step(self, X: Any, y: np.ndarray, w: np.ndarray) -> None:
        """One mini-batch step on sparse rows (dense rows: ``_train_dense``)."""
        n = X.shape[0]
        Xn = self._normalized(X)
        yn = self._labels(y)
        rw = self._row_weights(y, w)
        total = float(rw.sum())
        csr = _csr_arrays(Xn)
        F = self._scratch.get("scores", (n, self.n_columns), np.float32)
        kernels = _compiled()
        grouped, slots = self._sparse_work(csr)
        # the scores need the weights, the grouping of the non-zeros by feature only the
        # indices: one thread each
        _, u = run_together(lambda: kernels.scores(*csr, self.params_, self.intercept_, F, 0, n),
                            lambda: kernels.group(*csr, self._positions, *grouped, slots))
        M, C = self.num_models, self.n_outputs
        if self.predictor_type == "multiclass_classifier":  # one softmax for the ring's losses and the gradient
            losses, G = softmax_loss_and_gradient(F.reshape(n, M, C), yn)
            self._remember(F, y, w, losses)
            G = G.reshape(n, M * C)
        else:
            self._remember(F, y, w)
            G = gradient(self.loss_, F, yn, **self._loss_kwargs())
        if total <= 0:
            return
        G *= (rw / np.float32(total))[:, None]
        grad_b = G.sum(axis=0)
        self.n_steps_ += 1
        lr, wd, l1 = self._per_column()
        self._sparse_update(grouped, u, np.ascontiguousarray(G, dtype=np.float32), lr, wd, l1)
        if self.use_bias:
            b_new, _ = self._apply(self.intercept_, grad_b, self.moment1_bias_,
                                   self.moment2_bias_ if self.optimizer_ == "adam" else None, lr)
            self.intercept_[...] = b_new

    def _sparse_work(self, csr: tuple[np.ndarray, ...]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Work arrays of the compiled grouping, sized for the step: (distinct, starts, rows,
        values), the grouping the update reads, and the grouping's own slot per non-zero."""
        if self._positions.shape[0] != self.n_features_:
            self._positions = np.full(self.n_features_, -1, dtype=np.int32)
        nnz, get = csr[1].shape[0], self._scratch.get
        return ((get("distinct", (nnz,), np.int32), get("starts", (nnz + 1,), np.int64),
                 get("rows", (nnz,), np.int32), get("values", (nnz,), np.float32)), get("slots", (nnz,), np.int32))

    def _sparse_update(self, grouped: tuple[np.ndarray, ...], u: int, G: np.ndarray, lr: np.ndarray,
                       wd: np.ndarray, l1: np.ndarray) -> None:
        """The optimizer step of :meth:`_apply` on the records of the ``u`` features present
        (compiled: see ``_sparse_training``), lazy: other features' weights and moments stay as
        they are."""
        kernels = _compiled()
        code = kernels.OPTIMIZER_CODES[self.optimizer_]
        if self.optimizer_ == "adam":
            (a1, eps), b1 = self._adam_correction(), self.beta_1
        else:
            a1, b1, eps = 1.0, self.momentum, self.epsilon
        f32 = np.float32
        args = (*grouped, G, self.params_, lr, wd, l1, code, f32(a1), f32(b1), f32(self.beta_2),
                f32(eps), f32(self.initial_accumulator_))
        # features are independent: split them in blocks of about equal cost (a feature's
        # optimizer step costs about _FEATURE_COST of its non-zeros)
        starts, nnz = grouped[1], int(grouped[1][u]) if u else 0
        parts = N_BLOCKS if nnz >= _SPARSE_PARALLEL_NNZ else 1
        cost = starts[:u + 1] + _FEATURE_COST * np.arange(u + 1)
        edges = [0] + [int(np.searchsorted(cost, cost[-1] * i // parts)) for i in range(1, parts)] + [u]
        get, k = self._scratch.get, self.n_columns
        map_blocks(lambda p0, p1: kernels.update(*args, p0, p1, get("g", (k,), np.float32)),
                   list(zip(edges[:-1], edges[1:], strict=True)))

    def _apply(self, W: np.ndarray, g: np.ndarray, m1: np.ndarray, m2: np.ndarray | None,
               lr: np.ndarray) -> tuple[np.ndarray, Any]:
        """One optimizer step on ``W`` in place (moments in place); returns W and the step size."""
        return numpy_step(self.optimizer_, W, g, m1, m2, lr, t=self.n_steps_, beta_1=self.beta_1,
                          beta_2=self.beta_2, epsilon=self.epsilon, momentum=self.momentum,
                          initial_accumulator=self.initial_accumulator_)

    def _remember(self, F: np.ndarray, y: np.ndarray, w: np.ndarray, losses: np.ndarray | None = None) -> None:
        """Keep the rows' scores (before learning them) for progressive validation;
        multiclass keeps each model's loss (``losses`` when computed already) and class."""
        keep = min(F.shape[0], self.max_validation_rows)
        F, y, w = F[F.shape[0] - keep:], y[y.shape[0] - keep:], w[w.shape[0] - keep:]
        if self.predictor_type == "multiclass_classifier":
            shaped = F.reshape(keep, self.num_models, self.n_outputs)
            values = loss_values("softmax_loss", shaped, y) if losses is None else losses[losses.shape[0] - keep:]
            self.selection_.remember(values, y, w, shaped.argmax(axis=-1))
        elif self.is_label_normalized:
            self.selection_.remember(F * np.float32(self.label_scale_) + np.float32(self.label_mean_), y, w)
        else:
            self.selection_.remember(F, y, w)

    # -- scoring ----------------------------------------------------------------------------

    def raw_scores(self, X: Any) -> np.ndarray:
        """Every model's raw outputs on ``X`` in original label units: (n, num_models * n_outputs)."""
        Xn = self._normalized(X)
        F = np.asarray(Xn @ self.coef_) + self.intercept_
        if self.is_label_normalized:
            F = F * np.float32(self.label_scale_) + np.float32(self.label_mean_)
        return F

    @property
    def _huber_scale(self) -> float:
        """The labels' scale, by which huber_delta (normalized units) is judged in label units."""
        return self.label_scale_

    def metrics(self) -> dict[str, Any]:
        """Running metrics for the training loop's log: models still learning, the best loss."""
        rec: dict[str, Any] = {"n_active_models": int(self.selection_.is_active_.sum())}
        if not self.is_started:
            rec["warmup_rows"] = int(self.buffer_.n_rows)
            return rec
        return {**rec, **self.selection_.metrics(self.raw_scores, self._huber_scale)}

    # -- finalize -----------------------------------------------------------------------------

    def leaderboard(self) -> list[dict[str, Any]]:
        """Every model, best first: its hyperparameters and its validation scores.

        Scored on the validation rows with the current weights when there are any, else on
        the most recent rows as each model scored them before learning them (progressive
        validation). Binary models get their decision threshold tuned for the criterion.
        """
        if not self.is_started:
            if self.n_features_ == -1 or self.buffer_.n_rows == 0:
                raise NotFittedError("this Linear Learner state has seen no data; update it with at least one batch")
            return self._started_copy().leaderboard()

        def describe(m: int) -> dict[str, Any]:
            # optimizer and mini_batch_size: what "auto" resolved to for this data (dense:
            # adam in steps of 1000 rows; sparse: adagrad row by row)
            return {"learning_rate": float(self.learning_rates_[m]), "l1": float(self.l1s_[m]),
                    "wd": float(self.wds_[m]), "optimizer": self.optimizer_, "mini_batch_size": self.mini_batch_size_}

        return self.selection_.leaderboard(self.raw_scores, describe, self._huber_scale)

    def _started_copy(self) -> LinearLearnerState:
        """A copy that ended its warm-up now (finalize during the warm-up)."""
        copy = type(self).from_arrays(*self.to_arrays())
        with blas_single_thread():
            copy._start()
        return copy

    def model(self, rank: int = 0, *, model_index: int | None = None) -> LinearLearnerModel:
        """Finalize one model: the best by the selection criterion, or another by ``rank``.

        Deterministic for a given state, and does not change the state.

        Parameters
        ----------
        rank : int, default=0
            Position on the leaderboard: 0 is the best model, 1 the runner-up...
        model_index : int or None, default=None
            Pick a model by its index in the stack instead (0 is the one trained with
            exactly learning_rate, l1 and wd).
        """
        if not is_int(rank) or not 0 <= rank < self.num_models:
            raise InvalidParameterError(f"rank={rank!r} must be an integer in 0..{self.num_models - 1}")
        if model_index is not None and (not is_int(model_index) or not 0 <= model_index < self.num_models):
            raise InvalidParameterError(f"model_index={model_index!r} must be an integer in 0..{self.num_models - 1}")
        if not self.is_started:
            if self.n_features_ == -1 or self.buffer_.n_rows == 0:
                raise NotFittedError("this Linear Learner state has seen no data; update it with at least one batch")
            return self._started_copy().model(rank, model_index=model_index)
        board = self.leaderboard()
        entry = board[rank] if model_index is None else next(r for r in board if r["model"] == model_index)
        m = entry["model"]
        C = self.n_outputs
        cols = slice(m * C, (m + 1) * C)
        # O(n_features): one column gathered from the weight records, and nothing more where
        # the warm-up made the normalization the identity (sparse input is neither centered
        # nor scaled), so a hashed model of 2^22 features costs one strided copy
        coef = np.ascontiguousarray(self.coef_[:, cols])
        intercept = self.intercept_[cols].astype(np.float64)
        if self._is_scaled or self._is_centered or self.is_label_normalized:
            coef = coef.astype(np.float64)
            if self._is_scaled:
                coef /= self.feature_scale_[:, None]
            if self._is_centered:
                intercept -= self.feature_mean_.astype(np.float64) @ coef
            if self.is_label_normalized:
                coef *= self.label_scale_
                intercept = intercept * self.label_scale_ + self.label_mean_
        threshold = entry.get("threshold")
        if self.predictor_type == "binary_classifier" and threshold is None:
            threshold = math.inf
        return LinearLearnerModel(
            coef.astype(np.float32, copy=False), intercept.astype(np.float32), predictor_type=self.predictor_type,
            loss=self.loss_, threshold=0.0 if threshold is None else float(threshold),
            leaderboard=board, chosen=entry, n_rows_seen=self.n_rows_seen_,
        )

    # -- merge ----------------------------------------------------------------------------------

    def merge(self, other: LinearLearnerState) -> None:
        """Merge ``other`` into this state: rows-weighted average of weights and moments.

        Both states' models are brought to the original feature (and label) space, averaged
        with weights ``n_rows_trained``, and brought back to this state's normalization;
        Adam moments are rescaled like the weights (their square for the second moment).
        Warm-up and validation rows are pooled (validation up to ``max_validation_rows``).
        """
        if not isinstance(other, LinearLearnerState):
            raise IncompatibleStateError(f"cannot merge a {type(other).__name__} into a Linear Learner state")
        mine, theirs = self.hyperparameters(), other.hyperparameters()
        differ = [k for k in mine if k != "seed" and mine[k] != theirs[k]]
        if differ:
            k = differ[0]
            raise IncompatibleStateError(
                f"cannot merge Linear Learner states trained with {k}={mine[k]!r} and {k}={theirs[k]!r}; "
                "train every worker with the same hyperparameters")
        if other.n_features_ == -1:
            return
        if self.n_features_ not in (-1, other.n_features_):
            raise IncompatibleStateError(
                f"cannot merge Linear Learner states of {self.n_features_} and {other.n_features_} features")
        if self.n_features_ == -1:
            self.n_features_ = other.n_features_
            self.is_sparse_input_ = other.is_sparse_input_
            self._resolve(self.is_sparse_input_)
        if (self.optimizer_, self.mini_batch_size_) != (other.optimizer_, other.mini_batch_size_):
            raise IncompatibleStateError(
                f"cannot merge a Linear Learner state learning with {self.optimizer_} in steps of "
                f"{self.mini_batch_size_} rows and one with {other.optimizer_} in steps of {other.mini_batch_size_} "
                "(optimizer and mini_batch_size 'auto' depend on whether the data is sparse)")
        with blas_single_thread():
            if not other.is_started:
                rows = other.buffer_
                self.n_rows_seen_ += other.n_rows_seen_ - rows.n_rows
                self.selection_.merge_validation(other.selection_)
                if rows.n_rows:
                    self.update(Batch(rows.X, rows.y, rows.w))
                return
            if not self.is_started:
                rows = self.buffer_
                mine_seen = self.n_rows_seen_ - rows.n_rows
                mine = self.selection_
                become_copy(self, other)
                self.n_rows_seen_ += mine_seen
                self.selection_.merge_validation(mine)
                if rows.n_rows:
                    self.update(Batch(rows.X, rows.y, rows.w))
                return
            self._average_with(other)

    def _to_original(self) -> tuple[np.ndarray, ...]:
        """(coef, intercept, m1, m2, m1_bias, m2_bias) in original units, float64."""
        s = self.feature_scale_.astype(np.float64)[:, None]
        mu = self.feature_mean_.astype(np.float64)
        ls = self.label_scale_ if self.is_label_normalized else 1.0
        lm = self.label_mean_ if self.is_label_normalized else 0.0
        coef = self.coef_ / s * ls
        intercept = (self.intercept_ - mu @ (self.coef_ / s)) * ls + lm
        # adagrad's first moment is a sum of squared gradients: it scales like the second
        m1 = self.moment1_ / (s * s) * (ls * ls) if self.optimizer_ == "adagrad" else self.moment1_ / s * ls
        m2 = self.moment2_ / (s * s) * ls * ls if self.moment2_.size else self.moment2_.astype(np.float64)
        return coef, intercept, m1, m2, self.moment1_bias_.astype(np.float64), self.moment2_bias_.astype(np.float64)

    def _average_with(self, other: LinearLearnerState) -> None:
        a, b = float(self.n_rows_trained_), float(other.n_rows_trained_)
        pa = a / (a + b) if a + b > 0 else 0.5
        mine, theirs = self._to_original(), other._to_original()
        coef, intercept, m1, m2, m1b, m2b = (pa * x + (1 - pa) * z for x, z in zip(mine, theirs, strict=True))
        s = self.feature_scale_.astype(np.float64)[:, None]
        mu = self.feature_mean_.astype(np.float64)
        ls = self.label_scale_ if self.is_label_normalized else 1.0
        lm = self.label_mean_ if self.is_label_normalized else 0.0
        self.coef_ = (coef * s / ls).astype(np.float32)
        self.intercept_ = ((intercept - lm + mu @ coef) / ls).astype(np.float32)
        self.moment1_ = (m1 * (s * s) / (ls * ls) if self.optimizer_ == "adagrad" else m1 * s / ls).astype(np.float32)
        if self.moment2_.size:
            self.moment2_ = (m2 * (s * s) / (ls * ls)).astype(np.float32)
        self.moment1_bias_ = m1b.astype(np.float32)
        self.moment2_bias_ = m2b.astype(np.float32)
        self.n_steps_ = max(self.n_steps_, other.n_steps_)
        self.selection_.merge(other.selection_)
        self.n_rows_seen_ += other.n_rows_seen_
        self.n_rows_trained_ += other.n_rows_trained_

    # -- arrays ---------------------------------------------------------------------------------

    # Arrays are packed into few files (each is a file with its own fsync in a checkpoint),
    # and empty ones are left out.
    _PER_MODEL = ("learning_rates_", "l1s_", "wds_")

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "hyperparameters": self.hyperparameters(),
            "n_features": self.n_features_,
            "is_sparse_input": self.is_sparse_input_,
            "n_steps": self.n_steps_,
            "label_mean": self.label_mean_,
            "label_scale": self.label_scale_,
            "class_weights": self.class_weights_.tolist(),
            "n_rows_seen": self.n_rows_seen_,
            "n_rows_trained": self.n_rows_trained_,
            "buffer_is_sparse": self.buffer_.is_sparse,
            "rng": self.rng_.bit_generator.state,
        }
        selection_meta, selection_arrays = self.selection_.to_arrays()
        meta.update(selection_meta)
        k = self.n_columns
        bias = np.zeros((3, k), dtype=np.float32)
        bias[0], bias[1] = self.intercept_, self.moment1_bias_
        if self.moment2_bias_.size:
            bias[2] = self.moment2_bias_
        arrays = {
            "coef": np.ascontiguousarray(self.coef_),
            "moment1": np.ascontiguousarray(self.moment1_),
            "moment2": np.ascontiguousarray(self.moment2_),
            "bias": bias,
            "per_model": np.column_stack([getattr(self, n).astype(np.float64) for n in self._PER_MODEL]),
            "scaler": np.stack([self.feature_mean_, self.feature_scale_]) if self.feature_mean_.size else
            np.zeros((2, 0), dtype=np.float32),
            **self.buffer_.to_arrays("buffer"),
            **selection_arrays,
        }
        return meta, {name: a for name, a in arrays.items() if a.size}

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> LinearLearnerState:
        state = cls(**meta["hyperparameters"])
        k = state.n_columns
        state.n_features_ = int(meta["n_features"])
        state.is_sparse_input_ = bool(meta["is_sparse_input"])
        state._resolve(state.is_sparse_input_ and state.n_features_ != -1)
        state.n_steps_ = int(meta["n_steps"])
        state.label_mean_ = float(meta["label_mean"])
        state.label_scale_ = float(meta["label_scale"])
        state.class_weights_ = np.array(meta["class_weights"], dtype=np.float64)
        state.n_rows_seen_ = int(meta["n_rows_seen"])
        state.n_rows_trained_ = int(meta["n_rows_trained"])
        state.rng_.bit_generator.state = meta["rng"]

        def get(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            return np.array(arrays[name], dtype=dtype) if name in arrays else np.zeros(shape, dtype=dtype)

        state.coef_ = get("coef", (0, k), np.float32)
        state.moment1_ = get("moment1", (0, k), np.float32)
        state.moment2_ = get("moment2", (0, k), np.float32)
        bias = get("bias", (3, k), np.float32)
        state.intercept_, state.moment1_bias_ = bias[0].copy(), bias[1].copy()
        is_adam = state.optimizer_ == "adam" and state.coef_.shape[0] > 0
        state.moment2_bias_ = bias[2].copy() if is_adam else np.zeros(0, dtype=np.float32)
        per_model = arrays["per_model"]
        for j, name in enumerate(cls._PER_MODEL):
            setattr(state, name, per_model[:, j].astype(getattr(state, name).dtype))
        scaler = get("scaler", (2, 0), np.float32)
        state._set_scaler(scaler[0].copy(), scaler[1].copy())
        state.buffer_ = Rows.from_arrays(arrays, "buffer", bool(meta["buffer_is_sparse"]), state.n_features_)
        state.selection_.restore(meta, arrays, state.n_features_)
        return state


def _compiled() -> Any:
    """The compiled sparse kernels (``_sparse_training``), imported on first use: importing
    onepass does not import Numba."""
    from onepass.algorithms.linear import _sparse_training

    return _sparse_training


def _dense_compiled() -> Any:
    """The compiled dense kernels (``_dense_training``), imported on first use."""
    from onepass.algorithms.linear import _dense_training

    return _dense_training


def _read_only(*arrays: np.ndarray) -> list[np.ndarray]:
    """Read-only views of the arrays a compiled kernel only reads: Numba compiles a kernel
    again (seconds) for each mix of read-only and writable arrays it is given (memory-mapped
    chunks are read-only, fresh ones not), so the kernels see them one way."""
    views = []
    for a in arrays:
        view = a.view()
        view.flags.writeable = False
        views.append(view)
    return views


def _records(shape: tuple[int, ...]) -> np.ndarray:
    """Zeroed float32 records starting on a cache line (64 bytes), on huge pages when
    large (see ``onepass._memory``): two threads updating different models of one record
    then never write to the same line (a large NumPy array starts 16 bytes into a page),
    and a sparse step's random reads of them do not each miss the TLB."""
    return _memory.zeros(shape, np.float32)


def _csr_arrays(X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of a CSR matrix in the types the compiled step takes."""
    return (np.ascontiguousarray(X.indptr, dtype=np.int64), np.ascontiguousarray(X.indices, dtype=np.int32),
            np.ascontiguousarray(X.data, dtype=np.float32))
