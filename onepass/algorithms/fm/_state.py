"""The Factorization Machines training state: ``num_models`` FMs learning one stream."""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass import _memory
from onepass._parallel import is_inline, map_blocks
from onepass._scratch import Scratch
from onepass.algorithms._hyper import GRID_SEED, draw_grid, is_int, parse_range, require, require_choice
from onepass.algorithms._labelled import checked_rows, where
from onepass.algorithms._optimizers import OPTIMIZERS, check_optimizer_parameters
from onepass.algorithms._selection import ModelSelection, check_selection_parameters
from onepass.algorithms.fm._model import FactorizationMachinesModel
from onepass.batch import Batch
from onepass.errors import FeatureCountError, IncompatibleStateError, InvalidParameterError, NotFittedError
from onepass.state import ArraySpec, become_copy

__all__ = ["FactorizationMachinesState", "PREDICTOR_TYPES"]

PREDICTOR_TYPES = ("binary_classifier", "regressor")
LOSS_OF = {"binary_classifier": "logistic", "regressor": "squared_loss"}
INIT_METHODS = ("normal", "uniform", "constant")
# step sizes of model 0 when "auto" (bias, linear, factors), per optimizer; measured on
# the bench's data (8 one-hot fields, row by row): adagrad 0.1 against 0.05 gives test AUC
# 0.8947 vs 0.8939 where values are common, 0.692 vs 0.639 where they are rare
_AUTO_LR = {"adagrad": (0.1, 0.1, 0.1), "sgd": (0.01, 0.01, 0.01), "adam": (0.001, 0.001, 0.001)}
_GROUPS = ("bias", "linear", "factors")
_INIT_ROWS = 1 << 16  # features whose initial weights are drawn at a time


class FactorizationMachinesState:
    """Everything Factorization Machines need to go on training: ``num_models`` FMs at once.

    A second-order factorization machine (Rendle 2010) scores a row ``x`` as
    ``w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j``: a linear model plus every pair
    of features, each pair's weight the dot product of the two features' factor vectors
    (``num_factors`` numbers each), so pairs never seen together still get a weight.
    Sparse rows (one-hot or hashed categorical fields) are learned one at a time by a
    compiled loop that touches only the features present; dense rows are passed as their
    non-zeros. The ``num_models`` models learn the same rows side by side, each with its
    own learning rates and weight decays (model 0 exactly the given ones), are scored as
    they learn (progressive validation, or validation rows), stop when they no longer
    improve, and finalize picks the best, or any other by rank.

    Parameters
    ----------
    predictor_type : str, default="binary_classifier"
        binary_classifier (labels 0/1, log loss, sigmoid score) or regressor (squared loss).
    num_factors : int, default=16
        Length of each feature's factor vector (SageMaker suggests 2-1000, 64 a good start).
    feature_dim : int or None, default=None
        Number of features (the width of one-hot or hashed rows); None: the width of the
        first batch. Sparse batches narrower than it are taken as they are; an index at or
        past it is an error naming the row.
    num_models : int, default=1
        FMs trained at once, each with its own learning rates and weight decays.
    optimizer : str, default="adagrad"
        adagrad (per-coordinate steps shrinking with the squared gradients summed so far),
        sgd (with momentum) or adam.
    mini_batch_size : int, default=1
        Rows per optimizer step. 1: every row is learned on its own. More: the rows of a
        step are scored with the weights at its start and each feature present takes one
        step with its gradient averaged over the step's rows (SageMaker's default is 1000).
    bias_lr, linear_lr, factors_lr : float or "auto", default="auto"
        Step sizes of model 0 (auto: 0.1 each for adagrad, 0.01 for sgd, 0.001 for adam).
    bias_wd, linear_wd, factors_wd : float, default=0.0, 1e-6, 1e-6
        L2 strength (weight decay) of model 0, applied to a feature's weights in the steps
        where it appears.
    lr_multiplier_range : str or tuple, default="0.2,5"
        Models 1.. multiply model 0's linear and factor step sizes by factors drawn
        log-uniformly from this range (one draw each; the bias takes the linear one).
    wd_multiplier_range : str or tuple, default="0.1,10"
        The same for the weight decays (a weight decay of 0 stays 0).
    bias_init_method, linear_init_method, factors_init_method : str, default="normal"
        normal (mean 0, ``*_init_sigma``), uniform (``-*_init_scale`` to ``*_init_scale``)
        or constant (``*_init_value``).
    bias_init_sigma, linear_init_sigma, factors_init_sigma : float, default=0.01, 0.01, 0.05
        SageMaker starts factors at 0.001; at 0.05 one pass learns as well or better and
        merged states lose less (two halves of 100k rows merged: AUC 0.903 against 0.915
        for one pass, where 0.001 gives 0.878 against 0.904).
    bias_init_scale, linear_init_scale, factors_init_scale : float, default=0.01, 0.01, 0.05
    bias_init_value, linear_init_value, factors_init_value : float, default=0.0
    initial_accumulator : float or "auto", default="auto"
        Where adagrad's sums of squared gradients start: a feature's first steps are
        damped as if it had seen that much gradient before (auto: 1 row by row, 0 in
        mini-batch steps, whose gradients are means over the rows: 1 would swamp them;
        as Linear Learner).
    momentum : float, default=0.9
        Momentum of sgd.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decays and denominator guard (epsilon also guards adagrad's).
    validation_fraction : float, default=0.0
        Share of the stream held out as validation rows (until max_validation_rows are
        held). 0: validation rows come from a validation source (onepass train
        --validation), or models are judged by progressive validation.
    max_validation_rows : int, default=10000
        Cap on the validation rows kept, and on the recent progressively scored rows.
    validation_every_rows : int, default=50000
        Rows learned between two scorings of every model (early stopping).
    early_stopping_patience : int, default=10
        Scorings without relative improvement after which a model stops learning; 0: never.
    early_stopping_tolerance : float, default=0.0
        Relative improvement of the validation loss that counts as one.
    binary_classifier_model_selection_criteria : str, default="accuracy"
        How finalize ranks binary models and tunes their decision threshold: accuracy, f1,
        f_beta, cross_entropy_loss, loss_function, recall_at_target_precision or
        precision_at_target_recall (as Linear Learner).
    target_precision, target_recall, f_beta : float, default=0.8, 0.8, 1.0
    seed : int or None, default=None
        Seeds which rows are held out (validation_fraction); checkpointed. The initial
        weights depend on the other settings only, so that states of workers merge.

    Attributes
    ----------
    feature_dim_ : int
        Number of features, -1 before the first batch.
    params_ : ndarray of shape (num_models, feature_dim, n_slots, 1 + num_factors), float32
        Each model's record per feature: slot 0 the linear weight then the factors, the
        next slots the optimizer's moments of each.
    bias_ : ndarray of shape (num_models, n_slots), float32
        Each model's intercept ``w0`` and its moments.
    lrs_, wds_ : ndarray of shape (num_models, 3)
        Each model's (bias, linear, factors) step sizes and weight decays.
    selection_ : ModelSelection
        Validation rows, progressive validation, early stopping and the leaderboard.
    n_rows_seen_, n_rows_trained_ : int
        Rows received; rows learned (not held out).

    Notes
    -----
    Memory is ``num_models * feature_dim * (1 + num_factors) * n_slots`` float32 (n_slots
    2 for adagrad and sgd, 3 for adam) plus ``O(max_validation_rows)`` rows, whatever the
    number of rows. A row costs ``O(nnz * num_factors)`` per model, independent of
    ``feature_dim``. The model is Rendle's "Factorization Machines" (ICDM 2010), learned
    as SageMaker's Factorization Machines is (its hyperparameter names), with Linear
    Learner's many-models-at-once model selection.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from onepass import Batch, FactorizationMachinesState
    >>> rng = np.random.default_rng(0)
    >>> users, items = rng.integers(0, 20, 40000), rng.integers(0, 20, 40000)
    >>> X = sp.csr_matrix((np.ones(80000, np.float32), np.c_[users, 20 + items].ravel(),
    ...                    np.arange(0, 80001, 2)), shape=(40000, 40))
    >>> y = ((users % 2) == (items % 2)).astype(np.float32)     # a pure interaction
    >>> state = FactorizationMachinesState(num_factors=4, seed=0)
    >>> state.update(Batch(X[:20000], y[:20000]))
    >>> state.update(Batch(X[20000:], y[20000:]))
    >>> state.model().score(X, y) > 0.95
    True
    """

    kind: ClassVar[str] = "factorization-machines"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {  # empty ones left out (params before the first row)
        "params": ArraySpec(("f4",), ("models", None, "slots", None), required=False),
        "bias": ArraySpec(("f4",), ("models", "slots"), required=False),
        **ModelSelection.array_specs(),
    }

    def __init__(
        self,
        predictor_type: str = "binary_classifier",
        *,
        num_factors: int = 16,
        feature_dim: int | None = None,
        num_models: int = 1,
        optimizer: str = "adagrad",
        mini_batch_size: int = 1,
        bias_lr: float | str = "auto",
        linear_lr: float | str = "auto",
        factors_lr: float | str = "auto",
        bias_wd: float = 0.0,
        linear_wd: float = 1e-6,
        factors_wd: float = 1e-6,
        lr_multiplier_range: Any = "0.2,5",
        wd_multiplier_range: Any = "0.1,10",
        bias_init_method: str = "normal",
        linear_init_method: str = "normal",
        factors_init_method: str = "normal",
        bias_init_sigma: float = 0.01,
        linear_init_sigma: float = 0.01,
        factors_init_sigma: float = 0.05,
        bias_init_scale: float = 0.01,
        linear_init_scale: float = 0.01,
        factors_init_scale: float = 0.05,
        bias_init_value: float = 0.0,
        linear_init_value: float = 0.0,
        factors_init_value: float = 0.0,
        initial_accumulator: float | str = "auto",
        momentum: float = 0.9,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
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
                f"predictor_type={predictor_type!r} must be one of {', '.join(PREDICTOR_TYPES)} "
                "(Factorization Machines have no multiclass classifier; use Linear Learner)")
        require("int>=1", num_factors=num_factors, num_models=num_models, mini_batch_size=mini_batch_size)
        if feature_dim is not None and (not is_int(feature_dim) or not 1 <= feature_dim < 2**31):
            raise InvalidParameterError(f"feature_dim={feature_dim!r} must be an integer >= 1 (below 2^31), or None "
                                        "to take the width of the first batch")
        require_choice("optimizer", optimizer, OPTIMIZERS)
        for name, value in (("bias_lr", bias_lr), ("linear_lr", linear_lr), ("factors_lr", factors_lr)):
            if value != "auto":
                require(">0", **{name: value})
        if initial_accumulator != "auto":
            require(">=0", initial_accumulator=initial_accumulator)
        require(">=0", bias_wd=bias_wd, linear_wd=linear_wd, factors_wd=factors_wd, bias_init_sigma=bias_init_sigma,
                linear_init_sigma=linear_init_sigma, factors_init_sigma=factors_init_sigma,
                bias_init_scale=bias_init_scale, linear_init_scale=linear_init_scale,
                factors_init_scale=factors_init_scale)
        require("finite", bias_init_value=bias_init_value, linear_init_value=linear_init_value,
                factors_init_value=factors_init_value)
        for g, value in zip(_GROUPS, (bias_init_method, linear_init_method, factors_init_method), strict=True):
            require_choice(f"{g}_init_method", value, INIT_METHODS)
        check_optimizer_parameters(momentum=momentum, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        check_selection_parameters(
            validation_fraction=validation_fraction, max_validation_rows=max_validation_rows,
            validation_every_rows=validation_every_rows, early_stopping_patience=early_stopping_patience,
            early_stopping_tolerance=early_stopping_tolerance, criterion=binary_classifier_model_selection_criteria,
            target_precision=target_precision, target_recall=target_recall, f_beta=f_beta)

        self.predictor_type = predictor_type
        self.num_factors = int(num_factors)
        self.feature_dim = None if feature_dim is None else int(feature_dim)
        self.num_models = int(num_models)
        self.optimizer = optimizer
        self.mini_batch_size = int(mini_batch_size)
        self.bias_lr = bias_lr if bias_lr == "auto" else float(bias_lr)
        self.linear_lr = linear_lr if linear_lr == "auto" else float(linear_lr)
        self.factors_lr = factors_lr if factors_lr == "auto" else float(factors_lr)
        self.bias_wd = float(bias_wd)
        self.linear_wd = float(linear_wd)
        self.factors_wd = float(factors_wd)
        self.lr_multiplier_range = parse_range("lr_multiplier_range", lr_multiplier_range, (0.2, 5), zero_ok=False)
        self.wd_multiplier_range = parse_range("wd_multiplier_range", wd_multiplier_range, (0.1, 10), zero_ok=False)
        self.bias_init_method = bias_init_method
        self.linear_init_method = linear_init_method
        self.factors_init_method = factors_init_method
        self.bias_init_sigma = float(bias_init_sigma)
        self.linear_init_sigma = float(linear_init_sigma)
        self.factors_init_sigma = float(factors_init_sigma)
        self.bias_init_scale = float(bias_init_scale)
        self.linear_init_scale = float(linear_init_scale)
        self.factors_init_scale = float(factors_init_scale)
        self.bias_init_value = float(bias_init_value)
        self.linear_init_value = float(linear_init_value)
        self.factors_init_value = float(factors_init_value)
        self.initial_accumulator = initial_accumulator if initial_accumulator == "auto" else \
            float(initial_accumulator)
        self.momentum = float(momentum)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
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
        self.loss_ = LOSS_OF[predictor_type]
        self.initial_accumulator_ = (1.0 if self.mini_batch_size == 1 else 0.0) if initial_accumulator == "auto" \
            else float(initial_accumulator)
        self.n_slots = 3 if optimizer == "adam" else 2
        auto = _AUTO_LR[optimizer]
        lr0 = [auto[j] if v == "auto" else float(v) for j, v in enumerate((self.bias_lr, self.linear_lr,
                                                                            self.factors_lr))]
        wd0 = [self.bias_wd, self.linear_wd, self.factors_wd]
        grid = np.random.default_rng(GRID_SEED)
        M = self.num_models
        lr_lin, lr_fac = (draw_grid(grid, M, 1.0, self.lr_multiplier_range) for _ in range(2))
        wd_lin, wd_fac = (draw_grid(grid, M, 1.0, self.wd_multiplier_range) for _ in range(2))
        self.lrs_ = np.column_stack([lr0[0] * lr_lin, lr0[1] * lr_lin, lr0[2] * lr_fac])
        self.wds_ = np.column_stack([wd0[0] * wd_lin, wd0[1] * wd_lin, wd0[2] * wd_fac])

        # learned
        self.feature_dim_ = -1
        self.params_ = np.zeros((M, 0, self.n_slots, 1 + self.num_factors), dtype=np.float32)
        self.bias_ = np.zeros((M, self.n_slots), dtype=np.float32)
        self.n_steps_ = 0
        self.n_rows_seen_ = 0
        self.n_rows_trained_ = 0
        self.selection_ = ModelSelection(
            M, predictor_type, loss=self.loss_, loss_kwargs={}, max_validation_rows=self.max_validation_rows,
            validation_every_rows=self.validation_every_rows, early_stopping_patience=self.early_stopping_patience,
            early_stopping_tolerance=self.early_stopping_tolerance,
            criterion=binary_classifier_model_selection_criteria, target_precision=self.target_precision,
            target_recall=self.target_recall, f_beta=self.f_beta)
        self.rng_ = np.random.default_rng(self.seed)
        self._scratch = Scratch()  # work arrays kept across batches
        self._positions: list[np.ndarray] = []  # mini-batch steps: each thread's per-feature slots, -1 between steps

    def hyperparameters(self) -> dict[str, Any]:
        out = {n: getattr(self, n) for n in inspect.signature(type(self).__init__).parameters if n != "self"}
        out["lr_multiplier_range"] = list(self.lr_multiplier_range)
        out["wd_multiplier_range"] = list(self.wd_multiplier_range)
        return out

    @property
    def is_started(self) -> bool:
        return self.feature_dim_ != -1

    # -- update ---------------------------------------------------------------------------

    def _check(self, batch: Batch) -> tuple[Any, np.ndarray, np.ndarray]:
        """Validated (X, y, w) of a batch, X as wide as the state; raises before anything changes."""
        X, y, w = checked_rows(batch, name="Factorization Machines", n_features=-1,
                               predictor_type=self.predictor_type)
        width = self.feature_dim_ if self.is_started else self.feature_dim
        if width is None or X.shape[1] == width:
            return X, y, w
        if not sp.issparse(X):
            raise FeatureCountError(
                f"batch has {X.shape[1]} features, but this Factorization Machines state has feature_dim={width}; "
                "use data of the same width or start a new state")
        X = sp.csr_matrix(X)
        if X.nnz and int(X.indices.max()) >= width:
            at = int(np.flatnonzero(X.indices >= width)[0])
            row = int(np.searchsorted(X.indptr, at, side="right") - 1)
            raise FeatureCountError(
                f"{where(batch, row)} has feature index {int(X.indices[at])}, past feature_dim={width} of this "
                f"Factorization Machines state (batch of {X.shape[1]} features); hash or index features below "
                "feature_dim, or train with a larger feature_dim")
        return sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], width)), y, w

    def update(self, batch: Batch) -> None:
        """Every model learns one mini-batch (rows with labels ``batch.y``), in place."""
        if batch.X.shape[0] == 0:
            return
        X, y, w = self._check(batch)
        if not self.is_started:
            self._start(X.shape[1])
        self.n_rows_seen_ += X.shape[0]
        X, y, w = self.selection_.hold_out(self.rng_, self.validation_fraction, X, y, w)
        if X.shape[0]:
            self._train(X, y, w)

    def add_validation(self, batch: Batch) -> int:
        """Keep rows of a validation source (up to ``max_validation_rows``); returns how many were kept."""
        X, y, w = self._check(batch)
        if not self.is_started:
            self._start(X.shape[1])
        return self.selection_.add_validation(X, y, w)

    @property
    def wants_validation(self) -> bool:
        """True while the validation rows are fewer than ``max_validation_rows``."""
        return self.selection_.wants_validation

    def _start(self, width: int) -> None:
        """Fix the width and draw every model's initial weights.

        The initial weights come from a fixed generator, not from ``seed``: every state
        with the same settings starts from the same weights, so the states of independent
        workers merge (averaging factor tables grown from different starts would mix
        unrelated factor spaces: measured 0.87 AUC merged against 0.91 for one pass).
        """
        self.feature_dim_ = int(width)
        M, K1 = self.num_models, 1 + self.num_factors
        self.params_ = _memory.zeros((M, self.feature_dim_, self.n_slots, K1), np.float32)
        init = np.random.default_rng([GRID_SEED, self.feature_dim_])
        K = self.num_factors
        for m in range(M):
            for start in range(0, self.feature_dim_, _INIT_ROWS):  # in blocks: no temporary of the whole table
                stop = min(self.feature_dim_, start + _INIT_ROWS)
                self.params_[m, start:stop, 0, 0] = self._initial(init, "linear", stop - start)
                self.params_[m, start:stop, 0, 1:] = self._initial(init, "factors", (stop - start) * K).reshape(-1, K)
        self.bias_[:, 0] = self._initial(init, "bias", M)
        self.selection_.allocate()

    def _initial(self, init: np.random.Generator, group: str, n: int) -> np.ndarray:
        method = getattr(self, f"{group}_init_method")
        if method == "constant":
            return np.full(n, getattr(self, f"{group}_init_value"), dtype=np.float32)
        if method == "uniform":
            scale = getattr(self, f"{group}_init_scale")
            return init.uniform(-scale, scale, n).astype(np.float32)
        return init.standard_normal(n, dtype=np.float32) * np.float32(getattr(self, f"{group}_init_sigma"))

    def _csr(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, indices, data) of ``X`` (dense rows as their non-zeros) for the compiled loops."""
        if not sp.issparse(X):
            X = sp.csr_matrix(np.asarray(X, dtype=np.float32))
        return (np.ascontiguousarray(X.indptr, dtype=np.int64), np.ascontiguousarray(X.indices, dtype=np.int32),
                np.ascontiguousarray(X.data, dtype=np.float32))

    def _blocks(self) -> list[tuple[int, int]]:
        """The models each thread takes: two halves, or all on the calling thread."""
        M = self.num_models
        if M == 1 or is_inline():
            return [(0, M)]
        half = (M + 1) // 2
        return [(0, half), (half, M)]

    def _train(self, X: Any, y: np.ndarray, w: np.ndarray) -> None:
        """Learn the rows in segments that end where the models are scored (early stopping)."""
        kernels = _compiled()
        indptr, indices, data = self._csr(X)
        blocks = self._blocks()
        if self.mini_batch_size > 1 and len(self._positions) < len(blocks):
            self._positions = [np.full(self.feature_dim_, -1, dtype=np.int32) for _ in blocks]
        f32 = np.float32
        start, n = 0, X.shape[0]
        while start < n:
            stop = min(n, start + self.selection_.rows_to_next_scoring())
            seg = indptr[start:stop + 1] - indptr[start]
            a, b = int(indptr[start]), int(indptr[stop])
            F = self._scratch.get("scores", (stop - start, self.num_models), np.float32)
            lr = (self.lrs_ * self.selection_.is_active_[:, None]).astype(np.float32)
            wd = self.wds_.astype(np.float32)
            ys, ws = np.ascontiguousarray(y[start:stop]), np.ascontiguousarray(w[start:stop])
            args = (seg, indices[a:b], data[a:b], ys, ws, self.params_, self.bias_, F,
                    kernels.LOSS_CODES[self.loss_])
            rest = (lr[:, 0].copy(), lr[:, 1].copy(), lr[:, 2].copy(), wd[:, 0].copy(), wd[:, 1].copy(),
                    wd[:, 2].copy(), True, self.mini_batch_size, kernels.OPTIMIZER_CODES[self.optimizer],
                    self.n_steps_, f32(self.beta_1 if self.optimizer == "adam" else self.momentum), f32(self.beta_2),
                    f32(self.epsilon), f32(self.initial_accumulator_))
            work = self._positions if self.mini_batch_size > 1 else [np.zeros(0, dtype=np.int32)] * len(blocks)
            map_blocks(lambda m0, m1, args=args, rest=rest, work=work: kernels.train(
                *args, m0, m1, *rest, work[blocks.index((m0, m1))]), blocks)
            self.n_steps_ += self._steps_taken(ws)
            self.selection_.remember(F, ys, ws)
            self.n_rows_trained_ += stop - start
            self.selection_.learned(stop - start, self.raw_scores, self.n_rows_trained_)
            start = stop

    def _steps_taken(self, w: np.ndarray) -> int:
        """Optimizer steps the kernel took on rows of weights ``w`` (Adam's step count)."""
        if self.mini_batch_size == 1:
            return int((w > 0).sum())
        sums = np.add.reduceat(np.maximum(w, 0), np.arange(0, w.shape[0], self.mini_batch_size))
        return int((sums > 0).sum())

    # -- scoring and finalize ----------------------------------------------------------------

    def raw_scores(self, X: Any) -> np.ndarray:
        """Every model's score of each row of ``X`` (logits for binary): (n_rows, num_models)."""
        indptr, indices, data = self._csr(X)
        F = np.empty((indptr.shape[0] - 1, self.num_models), dtype=np.float32)
        _compiled().scores(indptr, indices, data, self.params_, self.bias_, F, 0, self.num_models)
        return F

    def metrics(self) -> dict[str, Any]:
        """Running metrics for the training loop's log: models still learning, the best loss."""
        rec: dict[str, Any] = {"n_active_models": int(self.selection_.is_active_.sum())}
        if not self.is_started:
            return rec
        return {**rec, **self.selection_.metrics(self.raw_scores)}

    def _describe(self, m: int) -> dict[str, Any]:
        return {f"{g}_lr": float(self.lrs_[m, j]) for j, g in enumerate(_GROUPS)} | \
            {f"{g}_wd": float(self.wds_[m, j]) for j, g in enumerate(_GROUPS)}

    def leaderboard(self, criterion: str | None = None) -> list[dict[str, Any]]:
        """Every model, best first: its step sizes and weight decays, and its validation
        scores (binary models ranked by ``criterion``, default the state's)."""
        if not self.is_started:
            raise NotFittedError("this Factorization Machines state has seen no data; update it with at least one batch")
        return self.selection_.leaderboard(self.raw_scores, self._describe, criterion=criterion)

    def model(self, rank: int = 0, *, model_index: int | None = None,
              binary_classifier_model_selection_criteria: str | None = None) -> FactorizationMachinesModel:
        """Finalize one model: the best by the selection criterion, or another by ``rank``.

        Deterministic for a given state, and does not change the state.

        Parameters
        ----------
        rank : int, default=0
            Position on the leaderboard: 0 is the best model, 1 the runner-up...
        model_index : int or None, default=None
            Pick a model by its index instead (0 is the one trained with exactly the given
            step sizes and weight decays).
        binary_classifier_model_selection_criteria : str or None, default=None
            Rank binary models and tune their decision threshold for this criterion
            instead of the state's (accuracy, f1, f_beta, cross_entropy_loss,
            loss_function, recall_at_target_precision, precision_at_target_recall).
        """
        if not is_int(rank) or not 0 <= rank < self.num_models:
            raise InvalidParameterError(f"rank={rank!r} must be an integer in 0..{self.num_models - 1}")
        if model_index is not None and (not is_int(model_index) or not 0 <= model_index < self.num_models):
            raise InvalidParameterError(f"model_index={model_index!r} must be an integer in 0..{self.num_models - 1}")
        board = self.leaderboard(binary_classifier_model_selection_criteria)
        entry = board[rank] if model_index is None else next(r for r in board if r["model"] == model_index)
        m = entry["model"]
        threshold = entry.get("threshold")
        if self.predictor_type == "binary_classifier" and threshold is None:  # tuned to predict no positive
            threshold = math.inf
        return FactorizationMachinesModel(
            float(self.bias_[m, 0]), np.ascontiguousarray(self.params_[m, :, 0, 0]),
            np.ascontiguousarray(self.params_[m, :, 0, 1:]), predictor_type=self.predictor_type,
            threshold=0.0 if threshold is None else float(threshold), leaderboard=board, chosen=entry,
            n_rows_seen=self.n_rows_seen_)

    # -- merge ------------------------------------------------------------------------------

    def merge(self, other: FactorizationMachinesState) -> None:
        """Merge ``other`` into this state: the rows-weighted average of every model's
        weights, factors and optimizer moments (data-parallel training, as a parameter
        server with loose consistency does), joined validation rows and early-stopping
        records.

        An approximation: pairwise weights ``<v_i, v_j>`` do not average as the factors
        do. Both states start from the same weights (see ``_start``), so their factor
        spaces stay close; two halves of 100k rows trained apart and merged score within
        0.015 AUC of one pass over all (tested), and workers that merge every
        ``sync_every_rows`` stay closer still. Dense features of large magnitude (tens)
        merge well only with factors started small (``factors_init_sigma=0.001``) or
        features scaled to about 1: the default start then leaves the halves' factor
        spaces apart.
        """
        if not isinstance(other, FactorizationMachinesState):
            raise IncompatibleStateError(f"cannot merge a {type(other).__name__} into a Factorization Machines state")
        mine = {k: v for k, v in self.hyperparameters().items() if k != "seed"}
        theirs = {k: v for k, v in other.hyperparameters().items() if k != "seed"}
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise IncompatibleStateError(f"cannot merge Factorization Machines states with different "
                                         f"hyperparameters ({', '.join(diff)})")
        if not other.is_started:
            return
        if not self.is_started:  # rows seen and validation rows only: take the other, add them
            seen, mine = self.n_rows_seen_, self.selection_
            become_copy(self, other)
            self.n_rows_seen_ += seen
            self.selection_.merge_validation(mine)
            return
        if self.feature_dim_ != other.feature_dim_:
            raise IncompatibleStateError(f"cannot merge Factorization Machines states of {self.feature_dim_} and "
                                         f"{other.feature_dim_} features")
        a, b = float(self.n_rows_trained_), float(other.n_rows_trained_)
        pa = np.float32(a / (a + b) if a + b > 0 else 0.5)
        for mine_arr, theirs_arr in ((self.params_, other.params_), (self.bias_, other.bias_)):
            mine_arr *= pa
            mine_arr += (np.float32(1) - pa) * theirs_arr
        self.n_steps_ = max(self.n_steps_, other.n_steps_)
        self.n_rows_seen_ += other.n_rows_seen_
        self.n_rows_trained_ += other.n_rows_trained_
        self.selection_.merge(other.selection_)

    # -- arrays -----------------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        selection_meta, selection_arrays = self.selection_.to_arrays()
        meta = {"hyperparameters": self.hyperparameters(), "feature_dim": self.feature_dim_,
                "n_steps": self.n_steps_, "n_rows_seen": self.n_rows_seen_, "n_rows_trained": self.n_rows_trained_,
                "rng": self.rng_.bit_generator.state, **selection_meta}
        arrays = {"params": self.params_, "bias": self.bias_, **selection_arrays}
        return meta, {name: a for name, a in arrays.items() if a.size}

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FactorizationMachinesState:
        state = cls(**meta["hyperparameters"])
        state.feature_dim_ = int(meta["feature_dim"])
        state.n_steps_ = int(meta["n_steps"])
        state.n_rows_seen_ = int(meta["n_rows_seen"])
        state.n_rows_trained_ = int(meta["n_rows_trained"])
        state.rng_.bit_generator.state = meta["rng"]
        shape = (state.num_models, max(state.feature_dim_, 0), state.n_slots, 1 + state.num_factors)
        if "params" in arrays:
            params = arrays["params"]
            if params.shape != shape or params.dtype != np.float32:
                raise IncompatibleStateError(f"params of shape {params.shape} ({params.dtype}) where this state "
                                             f"needs {shape} (float32)")
            state.params_ = _memory.zeros(shape, np.float32)
            state.params_[...] = params
        elif state.feature_dim_ > 0:
            raise IncompatibleStateError("a started Factorization Machines state without its params array")
        if "bias" in arrays:
            state.bias_ = np.array(arrays["bias"], dtype=np.float32).reshape(state.num_models, state.n_slots)
        state.selection_.restore(meta, arrays, max(state.feature_dim_, 0))
        return state


def _compiled() -> Any:
    """The compiled loops (``_training``), imported on first use: importing onepass does not import Numba."""
    from onepass.algorithms.fm import _training

    return _training
