"""The PCA training state: exact scatter (Chan et al.) or a Frequent Directions sketch."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, solve_triangular

from onepass._parallel import blas_single_thread, map_blocks, row_blocks
from onepass._scratch import Scratch
from onepass.algorithms.pca._model import PCAModel
from onepass.batch import Batch
from onepass.errors import (
    DataError,
    FeatureCountError,
    IncompatibleStateError,
    InvalidParameterError,
    NotFittedError,
)
from onepass.state import ArraySpec

__all__ = ["PCAState", "resolve_extra_components"]

_MODES = ("exact", "sketch")
_POWER_ITERATIONS = 2  # range finder: power iterations per buffer compression
_TOO_LARGE = "the batch has values too large to square in float32 (beyond ~1e19); PCA needs them scaled down"
_MIN_BUFFER_ENTRIES = 1 << 18  # sparse buffer floor (non-zeros + rows): narrow data still batches up
_ROW_BLOCK = 16384  # rows per block in the buffer's Gram products (bounds the b x r temporaries)


def resolve_extra_components(n_components: int, extra_components: int | str) -> int:
    """Sketch rows kept beyond ``n_components``.

    ``"auto"`` keeps ``max(4 * n_components, 64)`` more. FD's error on the top ``k``
    directions is at most ``||A - A_k||_F^2 / (ell - k)``: on noisy data the tail mass
    ``||A - A_k||_F^2`` is large, and the extra rows are what divide it. Measured on
    ``make bench``'s rank-20 signal plus unit noise at d=1000, 200k rows, top-10
    variance captured: 0.84 with 10 extra rows, 0.990 with 50, 0.9997 with 64, 0.9999 with 70.
    """
    if extra_components == "auto":
        return max(4 * int(n_components), 64)
    return int(extra_components)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _validate_hyperparameters(n_components: Any, mode: Any, extra_components: Any, subtract_mean: Any) -> None:
    if mode not in _MODES:
        raise InvalidParameterError(f"mode={mode!r} must be one of 'exact', 'sketch'")
    if n_components is not None and (not _is_int(n_components) or n_components < 1):
        raise InvalidParameterError(f"n_components={n_components!r} must be None or an integer >= 1")
    if mode == "sketch" and n_components is None:
        raise InvalidParameterError(
            "mode='sketch' needs n_components (the sketch keeps n_components + extra_components rows); "
            "give n_components >= 1 or use mode='exact'"
        )
    if extra_components != "auto" and (not _is_int(extra_components) or extra_components < 0):
        raise InvalidParameterError(f"extra_components={extra_components!r} must be 'auto' or an integer >= 0")
    if not isinstance(subtract_mean, (bool, np.bool_)):
        raise InvalidParameterError(f"subtract_mean={subtract_mean!r} must be True or False")


def _batch_mean(X: np.ndarray, w: np.ndarray | None, n_b: float) -> np.ndarray:
    """The (weighted) mean of a dense batch's rows, in float64 whatever the rows' dtype."""
    return X.mean(axis=0, dtype=np.float64) if w is None else (w @ X) / n_b


def _chan_combine(n_a: float, mean_a: np.ndarray, n_b: float, mean_b: np.ndarray) -> tuple[float, np.ndarray, float, np.ndarray]:
    """(n, mean, coefficient, delta) of the pairwise combine: the scatter of the union is
    ``M2_a + M2_b + coefficient * delta delta^T`` (Chan, Golub & LeVeque 1979)."""
    n = n_a + n_b
    delta = mean_b - mean_a
    if n_a == 0:
        return n, mean_b.copy(), 0.0, delta
    return n, mean_a + delta * (n_b / n), n_a * n_b / n, delta


def _add_rank_one(A: np.ndarray, alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """``A += alpha x y^T`` in place (BLAS ``dger``), with no temporary of ``A``'s size."""
    if not alpha:
        return
    # dger updates a Fortran-ordered matrix in place: A itself, or A.T (= A^T += alpha y x^T) when C-ordered.
    if A.flags.f_contiguous:
        out = blas.dger(alpha, x, y, a=A, overwrite_a=True)
    else:
        out = blas.dger(alpha, y, x, a=A.T, overwrite_a=True)
    if not np.shares_memory(out, A):
        A += alpha * np.outer(x, y)


def _add_outer(A: np.ndarray, alpha: float, x: np.ndarray) -> None:
    """``A += alpha x x^T`` in place, with no ``d x d`` temporary."""
    _add_rank_one(A, alpha, x, x)


def _gram_product(blocks: list[tuple[Any, np.ndarray | None]], center: np.ndarray | None,
                  W: np.ndarray) -> np.ndarray:
    """``A^T A W`` (float64) for ``A`` the rows of ``blocks`` (each ``(S, sqrt_w)``, ``S``
    float32, sparse CSR or dense), centered on ``center`` without densifying: ``A = S -
    sqrt_w center^T``, a sparse matrix plus a rank-one term, applied as ``S W - sqrt_w
    (center^T W)`` and its transpose (``center`` None: ``A = S``, its rows already
    weighted). The products run in float32: sparse ones are memory-bound, and float32
    halves their time (measured: 5M non-zeros x 74 columns, 1.0 s in float64, 0.5 s).
    Dense blocks run in parallel on the thread pool (the caller keeps BLAS to one thread)."""
    W32 = W.astype(np.float32)
    cw = None if center is None else (center @ W).astype(np.float32)

    def product(i: int, _: int) -> tuple[np.ndarray, np.ndarray | None]:
        S, sw = blocks[i]
        Y = S @ W32
        column_sums = None  # sum over the rows of sqrt_w_i (A W)_i
        if cw is not None:
            Y -= np.outer(sw, cw)
            column_sums = sw @ Y
        return S.T @ Y, column_sums  # float32: added into the float64 H below

    if sp.issparse(blocks[0][0]):  # one block at a time: H is the only c x ell array held
        parts = iter(product(i, i + 1) for i in range(len(blocks)))
    else:  # dense: the two row blocks in parallel
        parts = iter(map_blocks(product, [(i, i + 1) for i in range(len(blocks))]))
    H = np.zeros(W.shape)
    column_sums = np.zeros(W.shape[1])
    for part, sums in parts:
        H += part
        if sums is not None:
            column_sums += sums
    if center is not None:
        _add_rank_one(H, -1.0, center, column_sums)
    return H


def _range_compress(blocks: list[tuple[Any, np.ndarray | None]], center: np.ndarray | None, warm: np.ndarray,
                    ell: int, rng: np.random.Generator, power_iterations: int = _POWER_ITERATIONS) -> np.ndarray:
    """At most ``ell`` dense rows ``Z`` with ``Z^T Z <= A^T A``, ``A`` the rows of ``blocks``
    (see :func:`_gram_product`): the Nystrom approximation ``G W (W^T G W)^+ W^T G`` of
    ``G = A^T A`` from a randomized range finder (Halko, Martinsson & Tropp 2011) whose
    ``W`` starts from ``warm`` (``c x j`` known directions, the sketch's) and ``ell - j``
    Gaussian columns, then takes ``power_iterations`` block power steps. Cost
    ``2 (power_iterations + 1)`` products with ``A`` or ``A^T`` of ``ell`` columns,
    plus ``O(c ell^2)``; memory ``O(c ell)``."""
    c = warm.shape[0]
    # Unit columns suffice to start: the power steps orthonormalize, and Nystrom needs no orthonormal W.
    W = _unit_columns(np.concatenate([warm, rng.standard_normal((c, ell - warm.shape[1]))], axis=1))
    for _ in range(power_iterations):
        W = _orthonormalize(_gram_product(blocks, center, W))
    H = _gram_product(blocks, center, W)
    K = W.T @ H
    lam, E = np.linalg.eigh((K + K.T) / 2)
    if lam[-1] <= 0:
        return np.zeros((0, c))
    keep = lam > lam[-1] * 1e-10
    Z = (H @ (E[:, keep] / np.sqrt(lam[keep]))).T
    return Z[::-1]


def _warm_directions(sketch: np.ndarray, cols: np.ndarray | slice) -> np.ndarray:
    """The range finder's warm start: the sketch's leading rows (on ``cols``), leaving
    ``ell // 4`` columns for Gaussian (new) directions; as columns."""
    ell = sketch.shape[0]
    warm = sketch[:ell - max(ell // 4, 1), cols]
    return warm[np.abs(warm).sum(axis=1) > 0].T


def _orthonormalize(W: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning ``W``'s: Cholesky QR (7x faster than Householder QR on
    a 100k x 74 block), Householder when the Gram matrix is too ill-conditioned."""
    G = W.T @ W
    norms = np.sqrt(np.diag(G))
    if (norms > 0).all():
        try:
            # Cholesky of the Gram of the unit columns, W D^-1 = Q L^T, so Q = W (D L)^-T.
            L = np.linalg.cholesky(G / np.outer(norms, norms))
            diag = np.diag(L)
            if diag.min() > 1e-5 * diag.max():  # cond below ~1e5: Q orthonormal to ~1e-6
                return solve_triangular(norms[:, None] * L, W.T, lower=True, check_finite=False).T
        except np.linalg.LinAlgError:
            pass
    return np.linalg.qr(_unit_columns(W))[0]


def _unit_columns(W: np.ndarray) -> np.ndarray:
    """The non-zero columns of ``W``, scaled to unit norm."""
    norms = np.linalg.norm(W, axis=0)
    keep = norms > 0
    return W[:, keep] / norms[keep]


def _compress_sparse(X: sp.csr_matrix, w: np.ndarray, center: np.ndarray | None, sketch: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``ell`` dense rows ``Z`` on the columns ``cols`` with ``Z^T Z <= A^T A``.

    ``A`` holds the rows ``sqrt(w_i) (x_i - center)`` restricted to the columns present
    in ``X`` (``center`` is zero elsewhere); ``ell`` is the number of rows of ``sketch``.
    Returns ``(cols, Z)``. When ``A`` has at most ``ell`` columns or rows, ``Z^T Z =
    A^T A`` exactly. Otherwise ``Z`` is the Nystrom approximation ``A^T A W (W^T A^T A
    W)^+ W^T A^T A`` (always ``<= A^T A``) of a randomized range finder (Halko,
    Martinsson & Tropp 2011): ``W`` starts from the current sketch's rows (its
    directions, warm) and ``ell // 4`` Gaussian columns (new directions), then takes
    ``_POWER_ITERATIONS`` block power steps. Cost ``O(nnz ell)`` per product,
    ``2 (_POWER_ITERATIONS + 1)`` products, plus ``O(c ell^2)``; memory ``O(c ell)``.
    """
    m, d = X.shape
    ell = sketch.shape[0]
    present = np.zeros(d, dtype=bool)
    present[X.indices] = True
    cols = np.flatnonzero(present)
    c = cols.size
    index_type = np.int32 if c < np.iinfo(np.int32).max else np.int64
    indices = (np.cumsum(present) - 1)[X.indices].astype(index_type)
    sw = np.sqrt(w)
    data = X.data * np.repeat(sw, np.diff(X.indptr))
    mu = None if center is None else center[cols]
    if c <= ell or m <= ell:
        S = sp.csr_matrix((data, indices, X.indptr), shape=(m, c))
        if m <= ell:
            Z = S.toarray()
            if mu is not None:
                Z -= np.outer(sw, mu)
            return cols, Z
        G = (S.T @ S).toarray()
        if mu is not None:
            _add_outer(G, -float(sw @ sw), mu)
        lam, V = np.linalg.eigh(G)
        keep = lam > 0
        return cols, np.sqrt(lam[keep])[::-1, None] * V[:, keep][:, ::-1].T
    data32 = data.astype(np.float32)
    del data  # the buffer's size in float64: free it before the products
    sw32 = sw.astype(np.float32)
    blocks = []
    for a in range(0, m, _ROW_BLOCK):
        b = min(a + _ROW_BLOCK, m)
        p, q = X.indptr[a], X.indptr[b]
        S = sp.csr_matrix((data32[p:q], indices[p:q], X.indptr[a:b + 1] - p), shape=(b - a, c))
        blocks.append((S, sw32[a:b]))
    return cols, _range_compress(blocks, mu, _warm_directions(sketch, cols), ell, rng)


def _compress_dense(X: np.ndarray, sketch: np.ndarray, rng: np.random.Generator, power_iterations: int) -> np.ndarray:
    """At most ``ell`` rows ``Z`` with ``Z^T Z <= X^T X`` for a wide dense batch ``X`` (rows
    already centered and weighted): the range finder of :func:`_range_compress` on two
    fixed row blocks of float32 rows, in parallel. Time ``O(b d ell)``, against fast FD's
    ``b / ell`` shrinks of ``3 ell x d`` (``O(b d ell)`` too, but in many small, slow
    eigendecompositions: at d=1000, ell=74, 8k rows, 0.4 s against 0.03 s)."""
    X32 = np.asarray(X, dtype=np.float32)
    blocks: list[tuple[Any, np.ndarray | None]] = [(X32[a:b], None) for a, b in row_blocks(X.shape[0])]
    return _range_compress(blocks, None, _warm_directions(sketch, slice(None)), sketch.shape[0], rng,
                           power_iterations)


def _sketch_svd(B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values and right singular vectors of the sketch, by decreasing value.

    A wide full-rank sketch goes through its ``ell x ell`` Gram matrix (an SVD of
    74 x 100k takes 1.7 s, the Gram 0.05 s); otherwise a thin SVD, which also gives
    orthonormal rows for zero singular values."""
    ell, d = B.shape
    if d > 4 * ell:
        lam, U = np.linalg.eigh(B @ B.T)
        lam, U = lam[::-1], U[:, ::-1]
        if lam[-1] > 1e-8 * lam[0] > 0:
            s = np.sqrt(lam)
            return s, (U.T @ B) / s[:, None]
    _, s, V = np.linalg.svd(B, full_matrices=False)
    return s, V


def _fd_shrink(M: np.ndarray, ell: int) -> tuple[np.ndarray, float]:
    """Frequent Directions shrink of the rows ``M`` to ``ell`` rows: ``(B, delta)``.

    The ``ell`` largest squared singular values lose the ``(ell+1)``-th, ``delta``; so
    ``0 <= M^T M - B^T B <= delta I``. Computed from the smaller Gram matrix.
    """
    m, d = M.shape
    if m <= ell:
        B = np.zeros((ell, d))
        B[:m] = M
        return B, 0.0
    if d <= m:
        B = np.zeros((ell, d))
        lam, V = np.linalg.eigh(M.T @ M)
        lam, V = lam[::-1], V[:, ::-1]
        delta = float(max(lam[ell], 0.0)) if ell < d else 0.0
        top = min(ell, d)
        B[:top] = np.sqrt(np.maximum(lam[:top] - delta, 0.0))[:, None] * V[:, :top].T
        return B, delta
    lam, U = np.linalg.eigh(M @ M.T)
    lam, U = lam[::-1], U[:, ::-1]
    delta = float(max(lam[ell], 0.0))
    top = lam[:ell]
    scale = np.where(top > 0, np.sqrt(np.maximum(top - delta, 0.0) / np.where(top > 0, top, 1.0)), 0.0)
    return (scale[:, None] * U[:, :ell].T) @ M, delta  # scaled first: no temporary of B's size


class PCAState:
    """Everything streaming PCA needs to go on training.

    Parameters
    ----------
    n_components : int or None, default=None
        The default number of components of the finalized model (None: all of them,
        exact mode only). In sketch mode it sizes the sketch.
    mode : str, default="exact"
        "exact" keeps the full ``d x d`` scatter matrix (SageMaker's "regular");
        "sketch" keeps a Frequent Directions sketch of ``n_components +
        extra_components`` rows (SageMaker's "randomized"), for wide data.
    extra_components : int or "auto", default="auto"
        Sketch mode: rows kept beyond n_components ("auto": max(4 * n_components, 64)).
        More rows tighten the sketch and allow more components at finalize.
    subtract_mean : bool, default=True
        Center the data on its mean (a covariance PCA); False takes the principal
        axes of the uncentered second moment.
    seed : int or None, default=None
        Seeds the generator of the random test matrices that compress sparse rows in
        sketch mode (exact mode and dense input draw no random numbers).

    Attributes
    ----------
    n_features_ : int
        Width of the data, -1 before the first batch.
    mean_ : ndarray of shape (n_features,), float64
        Weighted mean of the rows seen.
    scatter_ : ndarray of shape (n_features, n_features), float64
        Exact mode: ``sum w (x - mean)(x - mean)^T``; empty in sketch mode.
    scatter_diag_ : ndarray of shape (n_features,), float64
        Its diagonal, kept exactly in both modes (the total variance).
    sketch_ : ndarray of shape (sketch_size, n_features), float64
        Sketch mode: the FD sketch ``B`` with ``B^T B ~ scatter``; empty in exact mode.
    shrinkage_ : float
        Sketch mode: the sum of FD shrink steps ``Delta``; with dense input a bound on
        ``||scatter - B^T B||_2``, and what finalize adds back to each eigenvalue.
    n_rows_seen_ : int
        Rows seen, the buffered ones included.
    weight_seen_ : float
        Sum of the weights of the rows in ``mean_`` (buffered rows not yet).
    buffer_ : list of (csr_matrix, ndarray)
        Sketch mode: sparse rows (float64) and their weights not yet compressed into
        the sketch; saved in a checkpoint as one CSR matrix. At most
        :attr:`buffer_capacity` non-zeros plus rows, and one batch more while it is
        compressed.
    buffer_entries_ : int
        Non-zeros plus rows in ``buffer_``.
    rng_ : numpy.random.Generator
        Draws the Gaussian columns of the range finder; its state is checkpointed.

    Notes
    -----
    Exact mode keeps ``n``, the mean and ``M2 = sum (x - mean)(x - mean)^T`` in float64
    and merges batches by Chan et al.'s pairwise update, so data far from zero (a mean
    offset of 1e4) loses no precision. Memory ``O(d^2)``, time ``O(b d^2)`` per batch
    of ``b`` rows plus one ``O(d^3)`` eigendecomposition per finalize. Sparse batches
    are never densified: the sparse product ``X^T X`` (time ``O(sum of nnz(row)^2)``)
    is added into the ``d x d`` accumulator, and the batch's centering ``- n mean
    mean^T`` and Chan's term as in-place rank-one updates: exact in exact arithmetic,
    and accurate for sparse data, whose means are small next to its spread.

    Sketch mode runs Frequent Directions (Liberty 2013; Ghashami et al. 2016) on the
    rows centered on their *batch* mean, and adds, for every batch and every merge,
    the row ``sqrt(n_a n_b / n) (mean_b - mean_a)`` of Chan's combine: the sketched
    matrix ``A`` then has ``A^T A`` equal to the centered scatter exactly, so FD's bound
    ``||A^T A - B^T B||_2 <= ||A - A_k||_F^2 / (ell - k)`` holds for the covariance
    itself. Memory ``O(ell d)`` (the sketch is a fixed ``ell x d`` array), time
    ``O(b d min(d, ell))`` per batch; finalize is an SVD of the ``ell x d`` sketch.
    Merging stacks two sketches and shrinks (FD is mergeable).

    Wide dense batches (``d`` beyond ~25 ``ell``, more than ``2 ell`` rows) are first
    compressed to at most ``ell`` rows by the same range finder as sparse buffers below
    (float32 products on two row blocks in parallel; one power iteration once the sketch
    has seen four batches, its directions then a good warm start), then FD-shrunk with the sketch: one
    shrink per batch instead of one per ``2 ell`` rows (d=1000: ~10x faster), with the
    error term ``eps_t`` of a compression as below.

    Sparse batches in sketch mode follow Sparse Frequent Directions (Ghashami, Liberty
    & Phillips 2016) and are never densified. Rows are buffered until their non-zeros
    plus rows reach ``max(ell d, 2**18)``; the buffer ``A_t`` (weighted rows centered on
    the buffer's own mean, implicitly: a sparse matrix minus a rank-one term) is then
    compressed to at most ``ell`` dense rows ``Z_t`` by a randomized range finder
    (Halko, Martinsson & Tropp 2011) started from the sketch's own directions plus
    ``ell // 4`` Gaussian columns, with two block power iterations, and the Nystrom
    form ``Z_t^T Z_t = G W (W^T G W)^+ W^T G`` of ``G = A_t^T A_t``; ``Z_t`` and Chan's
    mean row are then FD-shrunk with the sketch. Error: Nystrom never overestimates
    (``0 <= G - Z_t^T Z_t``, of norm ``eps_t``), so ``0 <= C - B^T B <= (Delta + sum
    eps_t) I`` and, as in FD's proof, ``Delta <= (||A - A_k||_F^2 + (k - 1) sum eps_t) /
    (ell + 1 - k)``. The ``eps_t`` are not computed: with high probability each is
    close to ``sigma_{j+1}(A_t)^2`` for ``j`` about the Gaussian columns, smaller when the
    warm start already holds the buffer's directions, and ``sum_t sigma_{j+1}(A_t)^2 <=
    ||A - A_k||_F^2 / (j + 1 - k)``. Time ``O(nnz ell)`` per batch (six float32 sparse
    products per compression) plus ``O(c ell^2 + ell^2 d)`` per compression (``c``: the
    buffer's distinct columns); memory ``O(ell d)`` for the sketch plus the buffer.
    Finalizing with rows still buffered compresses them in a copy.

    Eigenvalues in sketch mode: ``explained_variance_`` reports ``s_i^2 + Delta``, ``s_i``
    the sketch's singular values. Each shrink takes exactly ``delta`` from every
    direction in the span it keeps, so the dominant directions, kept throughout, lose
    exactly ``Delta``, and none loses more (Weyl): ``s_i^2 + Delta`` is exact for them
    and an upper bound for all; weak directions near the sketch's last rows lost less,
    and are overstated (at d=1000, 20k rows, the default sketch, FD alone: +0.03% for
    the first of 10, +6.7% for the tenth; ``s_i^2`` alone was -11% and -92%). Rows that
    went through a range-finder compression (wide dense batches, sparse buffers) also
    lost ``eps_t`` along the directions W missed, so there the estimate can be a little
    low (same data, compressed: -0.006% for the first, -0.2% for the tenth; with one
    power iteration from the first batch on it was -1.3 to -2.1%). The total variance,
    the denominator of ``explained_variance_ratio_``, is the exact trace ``sum
    scatter_diag_``; FD removes at least ``(ell + 1) Delta`` of it, so the ratios of all
    components sum to at most 1.

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import Batch, PCAState
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(4000, 5)) * [5.0, 2.0, 1.0, 0.1, 0.1] + 1e4
    >>> a, b = PCAState(2), PCAState(2)
    >>> a.update(Batch(X[:1000]))
    >>> a.update(Batch(X[1000:2000]))
    >>> b.update(Batch(X[2000:]))
    >>> a.merge(b)
    >>> model = a.model(explained_variance=0.95)
    >>> model.n_components, np.round(model.explained_variance_ratio_, 2)
    (2, array([0.84, 0.13]))
    """

    kind: ClassVar[str] = "pca"

    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {  # d features (0 before any row)
        "mean": ArraySpec(("f8",), ("d",), finite=True),
        "scatter": ArraySpec(("f8",), (None, None), finite=True),  # (d, d) in exact mode, else empty
        "scatter_diag": ArraySpec(("f8",), ("d",), finite=True),
        "sketch": ArraySpec(("f8",), (None, None), finite=True),  # (sketch_size, d) in sketch mode, else empty
        "buffer_data": ArraySpec(("f8",), ("nnz",), finite=True, required=False),
        "buffer_indices": ArraySpec(("i8",), ("nnz",), required=False),
        "buffer_indptr": ArraySpec(("i8",), (None,), required=False),
        "buffer_weights": ArraySpec(("f8",), (None,), finite=True, required=False),
    }

    def __init__(self, n_components: int | None = None, *, mode: str = "exact",
                 extra_components: int | str = "auto", subtract_mean: bool = True,
                 seed: int | None = None) -> None:
        _validate_hyperparameters(n_components, mode, extra_components, subtract_mean)
        self.n_components = None if n_components is None else int(n_components)
        self.mode = mode
        self.extra_components = extra_components
        self.subtract_mean = bool(subtract_mean)
        self.seed = None if seed is None else int(seed)
        self.sketch_size = (0 if n_components is None or mode == "exact"
                            else self.n_components + resolve_extra_components(self.n_components, extra_components))
        self.n_features_ = -1
        self.mean_ = np.zeros(0)
        self.scatter_ = np.zeros((0, 0))
        self._flushed: tuple[tuple, PCAState] | None = None  # finalize's compressed twin, by the state it was made from
        self.scatter_diag_ = np.zeros(0)
        self.sketch_ = np.zeros((0, 0))
        self.shrinkage_ = 0.0
        self.n_rows_seen_ = 0
        self.weight_seen_ = 0.0
        # Sketch mode, sparse rows not yet compressed: (CSR rows, their weights), in order.
        self.buffer_: list[tuple[sp.csr_matrix, np.ndarray]] = []
        self.buffer_entries_ = 0
        self.rng_ = np.random.default_rng(self.seed)
        self._scratch = Scratch()  # work arrays kept across batches

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "n_components": self.n_components,
            "mode": self.mode,
            "extra_components": self.extra_components,
            "subtract_mean": self.subtract_mean,
            "seed": self.seed,
        }

    # -- update -----------------------------------------------------------------------

    def _init_features(self, d: int) -> None:
        self.n_features_ = d
        self.mean_ = np.zeros(d)
        self.scatter_diag_ = np.zeros(d)
        if self.mode == "exact":
            self.scatter_ = np.zeros((d, d))
        else:
            self.sketch_ = np.zeros((self.sketch_size, d))

    @property
    def buffer_capacity(self) -> int:
        """Sketch mode: non-zeros plus rows of sparse data buffered before a compression,
        ``max(sketch_size * n_features, 2**18)`` (SpFD's ``ell d``)."""
        return max(self.sketch_size * max(self.n_features_, 1), _MIN_BUFFER_ENTRIES)

    def _check_batch(self, X: Any) -> None:
        if self.n_features_ != -1 and X.shape[1] != self.n_features_:
            raise FeatureCountError(
                f"batch has {X.shape[1]} features, but this PCA state was trained on "
                f"{self.n_features_}; use data of the same width or start a new state"
            )
        if sp.issparse(X) and X.nnz:
            # A CSR whose column indices exceed its width makes scipy's products read
            # out of bounds (wrong numbers or a crash): refuse it here.
            bad = (X.indices < 0) | (X.indices >= X.shape[1])
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                row = int(np.searchsorted(X.indptr, first, side="right") - 1)
                raise DataError(
                    f"row {row} of the sparse batch has feature index {int(X.indices[first])}, beyond its "
                    f"{X.shape[1]} features (valid indices are 0 to {X.shape[1] - 1}); fix the record or "
                    "declare the true number of features"
                )
        if sp.issparse(X):
            self._check_finite(X)
        # dense batches: the sums every mode takes are non-finite when a value is, and
        # only then is the batch searched (one pass fewer over every batch)

    def _check_finite(self, X: Any) -> None:
        """Raise a DataError naming the first row with NaN or infinity, if there is one."""
        values = X.data if sp.issparse(X) else X
        finite = np.isfinite(values)
        if not finite.all():
            first = int(np.flatnonzero(~finite.ravel())[0])
            if sp.issparse(X):
                row = int(np.searchsorted(X.indptr, first, side="right") - 1)
            else:
                row = first // X.shape[1]
            raise DataError(f"row {row} of the batch contains NaN or infinity; PCA needs finite values")

    def update(self, batch: Batch) -> None:
        """Update the state with one mini-batch, in place."""
        X = batch.X
        if X.shape[0] == 0:
            return
        if sp.issparse(X) and X.format != "csr":
            X = sp.csr_matrix(X)
        self._check_batch(X)
        w = None if batch.w is None else np.asarray(batch.w, dtype=np.float64)
        if w is not None and (w.shape != (X.shape[0],) or not np.isfinite(w).all() or (w < 0).any()):
            raise DataError(f"the batch weights must be {X.shape[0]} finite values >= 0")
        if self.n_features_ == -1:
            self._init_features(int(X.shape[1]))
        n_rows = int(X.shape[0])
        wsum = float(n_rows if w is None else w.sum())
        if wsum == 0:
            self.n_rows_seen_ += n_rows
            return
        if sp.issparse(X) and self.mode == "sketch":
            self._buffer_rows(X, np.ones(n_rows) if w is None else w)  # counts its rows itself
            return
        if sp.issparse(X):
            with blas_single_thread():  # small products: BLAS threads would only spin (see _parallel)
                self._absorb_exact_sparse(X.astype(np.float64), w, wsum)
        else:
            X = np.asarray(X)
            X = X if X.dtype == np.float32 else X.astype(np.float64, copy=False)
            if self.mode == "exact":
                self._absorb_exact_dense(X, w, wsum)
            else:
                self._absorb_sketch_dense(X, w, wsum)
        self.n_rows_seen_ += n_rows

    def _absorb_sketch_dense(self, X: np.ndarray, w: np.ndarray | None, n_b: float) -> None:
        """Sketch mode, dense rows: FD on the whole batch (narrow data), or a range-finder
        compression of the batch first (wide data; see the class Notes), in the batch's
        precision: float32 rows are centered on the float32-rounded batch mean ``c`` and
        compressed in float32 (the scatter they sketch is off the one about the true mean
        ``m`` by ``n_b (m - c)(m - c)^T``, float32 rounding); the diagonal, corrected for
        it, is summed in float64."""
        n = X.shape[0]
        mean_b = _batch_mean(X, w, n_b)
        if not np.isfinite(mean_b).all():
            self._check_finite(X)
        compress = not self._narrow(n) and n > 2 * self.sketch_.shape[0]
        if not compress:
            X = X.astype(np.float64, copy=False)
        center = mean_b.astype(X.dtype)
        sw = None if w is None else np.sqrt(w).astype(X.dtype)[:, None]
        with blas_single_thread():  # small products: BLAS threads would only spin (see _parallel)
            Xs = X - center
            if sw is not None:
                Xs *= sw
            diag_b = np.square(Xs).sum(axis=0, dtype=np.float64) - n_b * (mean_b - center) ** 2
            if not np.isfinite(diag_b).all():
                raise DataError(_TOO_LARGE)
            if self.subtract_mean:
                rows = Xs
            else:
                rows = X if sw is None else X * sw
            if compress:
                # two power iterations while the sketch is young (its first four batches' worth
                # of rows), one once its directions make a good warm start
                young = self.weight_seen_ < 4 * n_b
                rows = _compress_dense(rows, self.sketch_, self.rng_, _POWER_ITERATIONS if young else 1)
            self._absorb_sketch(n_b, mean_b, np.maximum(diag_b, 0.0), rows)

    def _absorb_exact_dense(self, X: np.ndarray, w: np.ndarray | None, n_b: float) -> None:
        """Exact mode, dense rows: the batch's scatter in fixed row blocks on the thread pool
        (one BLAS thread each), added in float64.

        The products run in the batch's own precision: a float32 batch (what every onepass
        source yields) gets float32 products, twice as fast as float64, and accurate to
        float32's ~1e-7 relative once the rows are centered. A float64 batch stays float64.
        The rows are shifted by a center ``c``, the running mean so far (rounded to the
        batch's dtype), or a first batch's own mean. Each block's product is taken over the
        shifted rows with the square roots of the weights appended as a last column, ``[A,
        s]^T [A, s]``: one symmetric product gives the block's scatter about ``c`` and ``sum
        w (x - c)``, so the batch is read once. The batch mean is ``m = c + sum w (x - c) /
        n_b`` and its scatter ``sum w (x - c)(x - c)^T - n_b (m - c)(m - c)^T``. A batch far
        from the running mean (``(m - c)^2`` beyond 1e4 times a feature's variance: a jump
        in the stream, where the difference would lose float32 digits) is redone centered
        on its own mean. A non-finite value makes the sums non-finite; the batch is then
        searched for the row to report.
        """
        n, d = X.shape
        if self.weight_seen_ > 0:
            center = self.mean_.astype(X.dtype)
        else:
            center = _batch_mean(X, w, n_b).astype(X.dtype)
        sw = None if w is None else np.sqrt(w).astype(X.dtype)

        def block(start: int, stop: int) -> np.ndarray:
            A = self._scratch.get("rows", (stop - start, d + 1), X.dtype)
            np.subtract(X[start:stop], center, out=A[:, :d])
            if sw is None:
                A[:, d] = 1.0
            else:
                A[:, :d] *= sw[start:stop, None]
                A[:, d] = sw[start:stop]
            return A.T @ A

        with blas_single_thread():  # the blocks are the parallelism (see _parallel)
            for _ in range(2):
                parts = map_blocks(block, row_blocks(n))
                G = parts[0].astype(np.float64)
                for part in parts[1:]:
                    G += part
                sums, squares = G[:d, d], np.diag(G)[:d]
                if not (np.isfinite(sums).all() and np.isfinite(squares).all()):
                    self._check_finite(X)
                    raise DataError(_TOO_LARGE)
                delta = sums / n_b
                shift = n_b * delta**2
                if (shift <= 1e4 * np.maximum(squares - shift, 1e-300)).all():
                    break
                center = (center.astype(np.float64) + delta).astype(X.dtype)  # far from the running mean
            S = np.ascontiguousarray(G[:d, :d])
            _add_outer(S, -n_b, delta)
            self._absorb_exact(n_b, center.astype(np.float64) + delta, S)

    def _absorb_exact(self, n_b: float, mean_b: np.ndarray, S: np.ndarray) -> None:
        n, mean, coef, delta = _chan_combine(self.weight_seen_, self.mean_, n_b, mean_b)
        self.scatter_ += S
        _add_outer(self.scatter_, coef, delta)
        self.scatter_diag_ = np.diag(self.scatter_).copy()
        self.mean_, self.weight_seen_ = mean, n

    def _absorb_exact_sparse(self, X: sp.csr_matrix, w: np.ndarray | None, n_b: float) -> None:
        """Exact mode, sparse rows: ``X^T W X`` as a sparse product added into the ``d x d``
        accumulator, and the rank-one terms ``- n_b mean_b mean_b^T`` (the batch's own
        centering) and Chan's ``coef delta delta^T`` in place; ``X`` is never densified."""
        mean_b = np.asarray(X.T @ (np.ones(X.shape[0]) if w is None else w)).ravel() / n_b
        G = (X.T @ (X if w is None else X.multiply(w[:, None]).tocsr())).tocoo()
        G.sum_duplicates()
        n, mean, coef, delta = _chan_combine(self.weight_seen_, self.mean_, n_b, mean_b)
        self.scatter_[G.row, G.col] += G.data
        _add_outer(self.scatter_, -n_b, mean_b)
        _add_outer(self.scatter_, coef, delta)
        self.scatter_diag_ = np.diag(self.scatter_).copy()
        self.mean_, self.weight_seen_ = mean, n

    def _buffer_rows(self, X: sp.csr_matrix, w: np.ndarray) -> None:
        """Sketch mode, sparse rows: hold them (an owned, canonical float64 copy) until
        the buffer reaches :attr:`buffer_capacity`, then compress it into the sketch."""
        rows = sp.csr_matrix(X, dtype=np.float64, copy=True)
        rows.sum_duplicates()
        self.buffer_.append((rows, np.array(w, dtype=np.float64)))
        self.buffer_entries_ += rows.nnz + rows.shape[0]
        self.n_rows_seen_ += rows.shape[0]
        if self.buffer_entries_ >= self.buffer_capacity:
            self._flush_buffer()

    def _buffered(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """The buffered rows as one CSR matrix (float64) and their weights."""
        if not self.buffer_:
            return sp.csr_matrix((0, max(self.n_features_, 0))), np.zeros(0)
        if len(self.buffer_) == 1:
            return self.buffer_[0]
        return sp.vstack([r for r, _ in self.buffer_], format="csr"), np.concatenate([w for _, w in self.buffer_])

    def _flush_buffer(self) -> None:
        """Compress the buffered sparse rows into the sketch (see the class Notes)."""
        if not self.buffer_:
            return
        X, w = self._buffered()
        self.buffer_, self.buffer_entries_ = [], 0
        n_b = float(w.sum())
        if n_b == 0:
            return
        d = self.n_features_
        with blas_single_thread():
            w_nz = np.repeat(w, np.diff(X.indptr))
            mean_b = np.bincount(X.indices, weights=X.data * w_nz, minlength=d) / n_b
            sumsq = np.bincount(X.indices, weights=X.data**2 * w_nz, minlength=d)
            del w_nz
            diag_b = np.maximum(sumsq - n_b * mean_b**2, 0.0)
            cols, Z = _compress_sparse(X, w, mean_b if self.subtract_mean else None, self.sketch_, self.rng_)
            del X  # the buffer's rows are in Z now: free them before the shrink
            rows = np.zeros((Z.shape[0], d))
            rows[:, cols] = Z
            self._absorb_sketch(n_b, mean_b, diag_b, rows)

    def _absorb_sketch(self, n_b: float, mean_b: np.ndarray, diag_b: np.ndarray, rows: np.ndarray) -> None:
        n, mean, coef, delta = _chan_combine(self.weight_seen_, self.mean_, n_b, mean_b)
        self.scatter_diag_ += diag_b + coef * delta**2
        if self.subtract_mean and coef:
            rows = np.concatenate([rows, np.sqrt(coef) * delta[None, :]])
        self._sketch_rows(rows)
        self.mean_, self.weight_seen_ = mean, n

    def _narrow(self, n_rows: int) -> bool:
        """Whether ``n_rows`` dense rows are best shrunk at once through the ``d x d`` Gram
        matrix (one large product, ``O(b d^2 + d^3)``): it beats many small shrinks
        (``O(b d ell)`` flops, but in small, slow products) up to d ~ 25 ell (measured)."""
        ell, d = self.sketch_.shape
        return d * (n_rows + 10 * d) <= 25 * n_rows * ell

    def _sketch_rows(self, rows: np.ndarray) -> None:
        ell, d = self.sketch_.shape
        n_rows = rows.shape[0]
        if self._narrow(n_rows):
            self.sketch_, delta = _fd_shrink(np.concatenate([self.sketch_, rows]), ell)
            self.shrinkage_ += delta
            return
        step = 2 * ell  # wide data: fast FD, the sketch and 2 ell new rows per shrink (measured best)
        for start in range(0, rows.shape[0], step):
            self.sketch_, delta = _fd_shrink(np.concatenate([self.sketch_, rows[start:start + step]]), ell)
            self.shrinkage_ += delta

    def metrics(self) -> dict[str, float]:
        """Cheap progress numbers: rows seen and the norm of the mean (of the rows compressed so far)."""
        return {"n_rows": float(self.n_rows_seen_),
                "mean_norm": float(np.linalg.norm(self.mean_)) if self.mean_.size else 0.0}

    # -- merge ------------------------------------------------------------------------

    def merge(self, other: PCAState) -> None:
        """Merge ``other`` into this state (exact: Chan's combine; sketch: FD merge)."""
        if not isinstance(other, PCAState):
            raise IncompatibleStateError(f"cannot merge a {type(other).__name__} into a PCA state")
        mine = {k: v for k, v in self.hyperparameters().items() if k != "seed"}
        theirs = {k: v for k, v in other.hyperparameters().items() if k != "seed"}
        if mine != theirs:
            raise IncompatibleStateError(
                f"cannot merge PCA states with hyperparameters {mine} and {theirs}; "
                "train both with the same n_components, mode, extra_components and subtract_mean"
            )
        if other.n_features_ == -1:
            return
        if self.n_features_ not in (-1, other.n_features_):
            raise IncompatibleStateError(
                f"cannot merge PCA states of {self.n_features_} and {other.n_features_} features"
            )
        if self.n_features_ == -1:
            self._init_features(other.n_features_)
        with blas_single_thread():
            if self.mode == "exact":
                n, mean, coef, delta = _chan_combine(self.weight_seen_, self.mean_, other.weight_seen_, other.mean_)
                self.scatter_ += other.scatter_
                if coef:
                    self.scatter_ += coef * np.outer(delta, delta)
                self.scatter_diag_ = np.diag(self.scatter_).copy()
                self.mean_, self.weight_seen_ = mean, n
            else:
                n, mean, coef, delta = _chan_combine(self.weight_seen_, self.mean_, other.weight_seen_, other.mean_)
                self.scatter_diag_ += other.scatter_diag_ + coef * delta**2
                rows = [self.sketch_, other.sketch_]
                if self.subtract_mean and coef:
                    rows.append(np.sqrt(coef) * delta[None, :])
                self.sketch_, shrink = _fd_shrink(np.concatenate(rows), self.sketch_size)
                self.shrinkage_ += other.shrinkage_ + shrink
                self.mean_, self.weight_seen_ = mean, n
        buffered = sum(r.shape[0] for r, _ in other.buffer_)
        self.n_rows_seen_ += other.n_rows_seen_ - buffered
        for rows, w in other.buffer_:  # its rows not yet compressed join this buffer
            self._buffer_rows(rows, w)

    # -- parameter server (onepass.distributed.ParameterState) ---------------------------

    @property
    def is_additive(self) -> bool:
        """True in exact mode: its parameters (raw moments) are sums over the rows."""
        return self.mode == "exact"

    def parameters(self) -> dict[str, np.ndarray] | None:
        """Exact mode's statistics as raw moments, which add up across workers.

        ``weight`` (shape (1,)), ``sum`` (d,) and ``moment2`` (d, d): the weighted count,
        sum and sum of outer products of the rows. None before the first rows. Raw
        moments lose digits to cancellation when the mean is far larger than the spread;
        :meth:`merge` (the default distributed strategy) does not.
        """
        if self.mode != "exact":
            raise IncompatibleStateError(
                "PCA's sketch mode cannot train through a parameter server (a sketch is not a sum of its rows); "
                "use strategy='merge'")
        if self.n_features_ == -1:
            return None
        w = self.weight_seen_
        return {"weight": np.array([w]), "sum": self.mean_ * w,
                "moment2": self.scatter_ + w * np.outer(self.mean_, self.mean_)}

    def set_parameters(self, parameters: dict[str, np.ndarray]) -> None:
        """Take the statistics ``parameters`` (see :meth:`parameters`); rows counted are kept."""
        moment2 = np.asarray(parameters["moment2"], dtype=np.float64)
        d = moment2.shape[0]
        if self.mode != "exact":
            self.parameters()  # raises the explanation
        if self.n_features_ == -1:
            self._init_features(d)
        elif d != self.n_features_:
            raise IncompatibleStateError(f"parameters of {d} features for a PCA state of {self.n_features_}")
        w = float(np.asarray(parameters["weight"]).ravel()[0])
        mean = np.asarray(parameters["sum"], dtype=np.float64) / w if w > 0 else np.zeros(d)
        self.scatter_ = moment2 - w * np.outer(mean, mean)
        self.scatter_diag_ = np.diag(self.scatter_).copy()
        self.mean_, self.weight_seen_ = mean, w

    # -- arrays -----------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "hyperparameters": self.hyperparameters(),
            "n_features": self.n_features_,
            "n_rows_seen": self.n_rows_seen_,
            "weight_seen": self.weight_seen_,
            "shrinkage": self.shrinkage_,
            "rng": self.rng_.bit_generator.state,
        }
        X, w = self._buffered()
        arrays = {
            "mean": self.mean_,
            "scatter": self.scatter_,
            "scatter_diag": self.scatter_diag_,
            "sketch": self.sketch_,
            "buffer_data": X.data.astype(np.float64, copy=False),
            "buffer_indices": X.indices.astype(np.int64, copy=False),
            "buffer_indptr": X.indptr.astype(np.int64, copy=False),
            "buffer_weights": w,
        }
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> PCAState:
        state = cls(**meta["hyperparameters"])
        state.n_features_ = int(meta["n_features"])
        state.n_rows_seen_ = int(meta["n_rows_seen"])
        state.weight_seen_ = float(meta["weight_seen"])
        state.shrinkage_ = float(meta["shrinkage"])
        state.mean_ = np.array(arrays["mean"], dtype=np.float64)
        state.scatter_ = np.array(arrays["scatter"], dtype=np.float64)
        state.scatter_diag_ = np.array(arrays["scatter_diag"], dtype=np.float64)
        state.sketch_ = np.array(arrays["sketch"], dtype=np.float64)
        if "rng" in meta:  # checkpoints written before the sparse sketch path have neither
            state.rng_.bit_generator.state = meta["rng"]
        w = np.array(arrays.get("buffer_weights", np.zeros(0)), dtype=np.float64)
        if w.size:
            X = sp.csr_matrix((np.array(arrays["buffer_data"], dtype=np.float64), np.array(arrays["buffer_indices"]),
                               np.array(arrays["buffer_indptr"], dtype=np.int64)), shape=(w.size, state.n_features_))
            X.check_format(full_check=True)
            state.buffer_ = [(X, w)]
            state.buffer_entries_ = X.nnz + X.shape[0]
        return state

    # -- finalize -----------------------------------------------------------------------

    @property
    def max_components(self) -> int:
        """The most components a model of this state can have."""
        d = max(self.n_features_, 0)
        return d if self.mode == "exact" else min(self.sketch_size, d)

    def model(self, n_components: int | None = None, *, explained_variance: float | None = None) -> PCAModel:
        """Finalize to a model, cheaply and repeatably; the state does not change.

        Parameters
        ----------
        n_components : int, default=the state's n_components (all, if None)
            Components of the model: any number up to the width of the data (exact
            mode) or the sketch size (sketch mode).
        explained_variance : float, optional
            Instead of n_components: the smallest number of components whose explained
            variance ratio reaches this share, in (0, 1].
        """
        if self.buffer_:
            # Rows still buffered are compressed in a twin (with a copy of the generator),
            # so finalizing is repeatable and leaves this state as it was. The twin is
            # kept until the state changes: tuning finalizes many models from one state.
            key = (self.n_rows_seen_, self.weight_seen_, self.buffer_entries_, len(self.buffer_), id(self.sketch_))
            cached = self._flushed
            if cached is not None and cached[0] == key:
                return cached[1].model(n_components, explained_variance=explained_variance)
            twin = type(self)(**self.hyperparameters())
            twin.n_features_, twin.n_rows_seen_, twin.weight_seen_ = self.n_features_, self.n_rows_seen_, self.weight_seen_
            # Flushing replaces mean_ and sketch_ (shared here) and adds to scatter_diag_ in place (copied).
            twin.mean_, twin.sketch_, twin.scatter_diag_ = self.mean_, self.sketch_, self.scatter_diag_.copy()
            twin.shrinkage_ = self.shrinkage_
            twin.buffer_, twin.buffer_entries_ = list(self.buffer_), self.buffer_entries_
            twin.rng_.bit_generator.state = self.rng_.bit_generator.state
            twin._flush_buffer()
            self._flushed = (key, twin)
            return twin.model(n_components, explained_variance=explained_variance)
        if self.n_features_ == -1 or self.weight_seen_ == 0:
            raise NotFittedError("this PCA state has seen no data; update it with at least one batch")
        limit = self.max_components
        where = "the width of the data" if self.mode == "exact" else "kept by this sketch"
        fix = ("choose fewer" if self.mode == "exact"
               else "train with a larger n_components or extra_components, or choose fewer")
        if n_components is not None and explained_variance is not None:
            raise InvalidParameterError("give n_components or explained_variance, not both")
        if explained_variance is not None and (
            isinstance(explained_variance, bool) or not isinstance(explained_variance, (int, float, np.number))
            or not 0 < explained_variance <= 1
        ):
            raise InvalidParameterError(f"explained_variance={explained_variance!r} must be a number in (0, 1]")
        if n_components is not None and (not _is_int(n_components) or n_components < 1):
            raise InvalidParameterError(f"n_components={n_components!r} must be an integer >= 1")
        if n_components is not None and n_components > limit:
            held = f"the {limit} {where}" if self.mode == "sketch" else f"the {limit} features of the data"
            raise InvalidParameterError(
                f"n_components={n_components} is more than {held}; {fix}: n_components <= {limit}"
            )
        n = self.weight_seen_
        if self.subtract_mean:
            denom = n - 1 if n > 1 else 1.0
            total = float(self.scatter_diag_.sum())
        else:
            denom = n
            total = float(self.scatter_diag_.sum() + n * self.mean_ @ self.mean_)
        with blas_single_thread():
            if self.mode == "exact":
                S = self.scatter_ if self.subtract_mean else self.scatter_ + n * np.outer(self.mean_, self.mean_)
                lam, V = np.linalg.eigh(S)
                lam, V = np.maximum(lam[::-1], 0.0), V[:, ::-1].T
            else:
                s, V = _sketch_svd(self.sketch_)
                # FD takes exactly shrinkage_ from every direction that stayed in the sketch's
                # span through each shrink (the dominant ones) and at most that from any:
                # s^2 + shrinkage_ is exact for the former and an upper bound for all.
                lam = np.where(s > 0, s**2 + self.shrinkage_, 0.0)
            lam, V = lam[:limit], V[:limit]
        ratio = lam / total if total > 0 else np.zeros_like(lam)
        if explained_variance is not None:
            cumulative = np.cumsum(ratio)
            if cumulative[-1] < explained_variance - 1e-9 and self.mode == "sketch":
                raise InvalidParameterError(
                    f"explained_variance={explained_variance} is not reached by the {limit} components "
                    f"{where} (they explain {cumulative[-1]:.4f}); {fix} explained_variance <= {cumulative[-1]:.4f}"
                )
            k = min(int(np.searchsorted(cumulative, explained_variance - 1e-12)) + 1, limit)
        elif n_components is not None:
            k = int(n_components)
        else:
            k = limit if self.n_components is None else min(self.n_components, limit)
        components = V[:k].copy()
        # A deterministic sign: the largest-magnitude entry of each component is positive.
        signs = np.sign(components[np.arange(k), np.argmax(np.abs(components), axis=1)])
        components *= np.where(signs == 0, 1.0, signs)[:, None]
        return PCAModel(
            components,
            explained_variance=lam[:k] / denom,
            explained_variance_ratio=ratio[:k],
            singular_values=np.sqrt(lam[:k]),
            mean=self.mean_ if self.subtract_mean else np.zeros(self.n_features_),
            n_rows_seen=self.n_rows_seen_,
        )
