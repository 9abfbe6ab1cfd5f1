"""The checks every algorithm passes, as plain functions that raise AssertionError.

They take an :class:`onepass.state.Algorithm` registry entry and use only the State
contract and the entry's tags, so a new algorithm is checked by registering it. Tags
read here: ``test_params`` (small hyperparameters), ``merge_rtol`` (merge vs one pass),
``sparse_input`` (feed the data as CSR batches), ``documents`` (feed word counts),
``memory_rows`` (check_memory_flat's first and last rows, when 2M would take long); ``variants`` (more tag sets, each
run through every check) is expanded by :func:`configurations`.
``test_conformance.py`` runs them on every registered algorithm, and
``test_checks_catch.py`` shows each one failing on a deliberately broken double.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from typing import Any

import numpy as np
import scipy.sparse as sp

from onepass.batch import Batch
from onepass.errors import DataError, FeatureCountError
from onepass.io import load_checkpoint, save_checkpoint
from onepass.state import ALGORITHMS, Algorithm

N_FEATURES = 6
# Supervised algorithms (tag ``labels``) learn y = [x . u > 0]: u's components sum to 0,
# so the shards shifted by an offset in check_merge keep both classes.
_DIRECTION = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]) / np.sqrt(6.0)


def blobs(n: int, seed: int, *, offset: float = 0.0, n_blobs: int = 4, d: int = N_FEATURES) -> np.ndarray:
    """``n`` rows of well separated Gaussian blobs, float32, shuffled."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(1234).normal(0, 6, (n_blobs, d)) + offset
    labels = rng.integers(0, n_blobs, n)
    return (centers[labels] + rng.standard_normal((n, d))).astype(np.float32)


def configurations(algorithms: dict[str, Algorithm]) -> list[tuple[str, Algorithm]]:
    """``(id, entry)`` for every algorithm, then one per entry of its ``variants`` tag
    (a dict of tags overriding the algorithm's, with a ``name``): e.g. PCA's sketch
    mode, on dense and on sparse input, goes through the same checks as its exact mode."""
    out = []
    for name in sorted(algorithms):
        algo = algorithms[name]
        out.append((name, algo))
        for variant in algo.tags.get("variants", ()):
            tags = {k: v for k, v in {**algo.tags, **variant}.items() if k not in ("variants", "name")}
            out.append((f"{name}-{variant['name']}", dataclasses.replace(algo, tags=tags)))
    return out


def data(algo: Algorithm, X: np.ndarray) -> Any:
    """``X`` as the entry's data: for ``documents`` (topic models), word counts, the
    rounded absolute values of the blobs (each blob a profile of counts; NaN and
    infinities stay bad values); for ``series`` (forecasters), one daily series per row,
    its values the row's (NaN a missing value, infinities bad values), its category the
    row's parity."""
    if algo.tags.get("series"):
        from onepass.sources._series import SeriesRows

        if isinstance(X, SeriesRows):
            return X
        n = X.shape[0]
        return SeriesRows([None] * n, np.full(n, np.datetime64("2026-01-01T00:00:00", "s")),
                          [row.astype(np.float32) for row in np.asarray(X)], (np.arange(n) % 2)[:, None], None,
                          [f"row {i}" for i in range(n)])
    return np.round(np.abs(X)) if algo.tags.get("documents") else X


def rows(algo: Algorithm, X: np.ndarray) -> Any:
    """``X`` in the form the entry's tags ask for (:func:`data`), as CSR when
    ``sparse_input`` is set."""
    X = data(algo, X)
    return sp.csr_matrix(X) if algo.tags.get("sparse_input") else X


def _bad_values(algo: Algorithm) -> tuple[float, ...]:
    """Values a batch must not hold: NaN is a missing value of a series, not a bad one."""
    return (np.inf, -np.inf) if algo.tags.get("series") else (np.nan, np.inf, -np.inf)


def labels_for(state: Any, X: Any) -> np.ndarray | None:
    """The labels a state of this kind learns from (its registry tag ``labels``), or None."""
    kinds = [a for a in ALGORITHMS.values() if a.state.kind == getattr(state, "kind", None)]
    if not kinds or kinds[0].tags.get("labels") is None:
        return None
    if kinds[0].tags["labels"] != "binary":
        raise ValueError(f"unknown labels tag {kinds[0].tags['labels']!r}")
    return (np.asarray(X[:, : _DIRECTION.size] @ _DIRECTION).ravel() > 0).astype(np.float32)


def batches(X: np.ndarray, size: int, y: np.ndarray | None = None) -> list[Batch]:
    return [Batch(X[i : i + size], None if y is None else y[i : i + size]) for i in range(0, X.shape[0], size)]


def score(state: Any, model: Any, X: np.ndarray) -> float:
    y = labels_for(state, X)
    return model.score(X) if y is None else model.score(X, y)


def new_state(algo: Algorithm, seed: int = 0, **more: Any) -> Any:
    return algo.state(**{**algo.tags.get("test_params", {}), **more}, seed=seed)


def stream(state: Any, X: np.ndarray, size: int = 500) -> Any:
    for batch in batches(X, size, labels_for(state, X)):
        state.update(batch)
    return state


def _same(a: tuple[dict, dict], b: tuple[dict, dict], what: str) -> None:
    meta_a, arrays_a = a
    meta_b, arrays_b = b
    assert json.dumps(meta_a, sort_keys=True) == json.dumps(meta_b, sort_keys=True), f"{what}: metadata differ"
    assert arrays_a.keys() == arrays_b.keys(), f"{what}: different arrays {sorted(arrays_a)} vs {sorted(arrays_b)}"
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, f"{what}: dtype of {name} differs"
        assert np.array_equal(arrays_a[name], arrays_b[name]), f"{what}: array {name} differs"


def check_checkpoint_roundtrip(algo: Algorithm) -> None:
    """Save, load, continue == never stopping, bit for bit (state and model)."""
    X = blobs(6000, seed=1)
    first, rest = X[:2500], X[2500:]
    first, rest = rows(algo, first), rows(algo, rest)
    straight = stream(new_state(algo), first)
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, straight)
        resumed, _ = load_checkpoint(tmp)
    _same(straight.to_arrays(), resumed.to_arrays(), "state right after load")
    stream(straight, rest)
    stream(resumed, rest)
    _same(straight.to_arrays(), resumed.to_arrays(), "state after continuing")
    _same(straight.model().to_arrays(), resumed.model().to_arrays(), "finalized model after continuing")


def check_merge(algo: Algorithm) -> None:
    """Merging the states of two different halves ~ one state over all of it.

    The halves differ, as shards often do, unless the algorithm declares the tag
    ``merge_shards="iid"``: its merge averages models (data-parallel SGD), which assumes
    every worker sees the same distribution, so its shards are random splits.
    """
    X1 = blobs(4000, seed=2)
    X2 = blobs(4000, seed=3, offset=25.0)  # the halves differ, as shards often do
    X3 = blobs(3000, seed=4, offset=-25.0)
    rng = np.random.default_rng(0)
    if algo.tags.get("merge_shards") == "iid":
        pooled = np.concatenate([X1, X2, X3])[rng.permutation(11000)]
        X1, X2, X3 = pooled[:4000], pooled[4000:8000], pooled[8000:]
    X = np.concatenate([X1, X2])
    whole = stream(new_state(algo, seed=5), rows(algo, X[rng.permutation(X.shape[0])]))
    a = stream(new_state(algo, seed=5), rows(algo, X1))
    b = stream(new_state(algo, seed=6), rows(algo, X2))
    a.merge(b)
    assert a.n_rows_seen_ == whole.n_rows_seen_ == X.shape[0], (
        f"rows after merge {a.n_rows_seen_}, one pass {whole.n_rows_seen_}, data {X.shape[0]}"
    )
    s_merged, s_whole = score(a, a.model(), data(algo, X)), score(whole, whole.model(), data(algo, X))
    rtol = algo.tags.get("merge_rtol", 0.01)
    assert abs(s_merged - s_whole) <= rtol * abs(s_whole), f"merged score {s_merged} vs one pass {s_whole}"
    # Associativity (to the same tolerance): (a+b)+c ~ a+(b+c).
    p, q, r = (stream(new_state(algo, seed=s), rows(algo, part)) for s, part in ((7, X1), (8, X2), (9, X3)))
    p2, q2, r2 = (stream(new_state(algo, seed=s), rows(algo, part)) for s, part in ((7, X1), (8, X2), (9, X3)))
    p.merge(q)
    p.merge(r)
    q2.merge(r2)
    p2.merge(q2)
    everything = data(algo, np.concatenate([X1, X2, X3]))
    left, right = score(p, p.model(), everything), score(p2, p2.model(), everything)
    assert abs(left - right) <= rtol * abs(left), f"(a+b)+c scores {left}, a+(b+c) {right}"


def state_nbytes(state: Any) -> int:
    return sum(a.nbytes for a in state.to_arrays()[1].values())


def check_memory_flat(algo: Algorithm, n_small: int = 100_000, n_large: int = 2_000_000) -> None:
    """The state's size stays what it was after ``n_small`` rows, measured again each time
    the rows seen double, up to ``n_large`` rows (20 times as many: a state that keeps
    anything per row, per batch or per distinct value grows between two measures)."""
    n_small, n_large = algo.tags.get("memory_rows", (n_small, n_large))
    batch = rows(algo, blobs(algo.tags.get("memory_batch", 50_000), seed=7))
    state = new_state(algo)
    seen = 0
    sizes: dict[int, int] = {}
    next_measure = n_small
    y = labels_for(state, batch)
    while seen < n_large:
        state.update(Batch(batch, y))
        seen += batch.shape[0]
        if seen >= next_measure or seen >= n_large:
            sizes[seen] = state_nbytes(state)
            next_measure = 2 * seen
    assert n_small in sizes, f"no measure at {n_small} rows: it must be a multiple of {batch.shape[0]}"
    assert state.n_rows_seen_ == n_large
    grown = {n: size for n, size in sizes.items() if size != sizes[n_small]}
    assert not grown, f"state grew from {sizes[n_small]} bytes at {n_small} rows to {grown} (rows: bytes)"


def check_bad_values(algo: Algorithm) -> None:
    """NaN, inf and a changed feature count raise the right error and change nothing."""
    X = blobs(3000, seed=8)
    for warm in (200, 3000):  # before and after the state has initialized itself
        state = stream(new_state(algo), rows(algo, X[:warm]))
        before = state.to_arrays()
        for value in _bad_values(algo):
            bad = X[:64].copy()
            bad[10, 2] = value
            try:
                state.update(Batch(rows(algo, bad), labels_for(state, X[:64])))
            except DataError:
                pass
            else:
                raise AssertionError(f"a batch holding {value} was accepted after {warm} rows")
            _same(before, state.to_arrays(), f"state after a rejected batch holding {value}")
        if algo.tags.get("series"):
            continue  # series have no width: a longer one is just longer
        try:
            wide = np.ones((10, N_FEATURES + 1), dtype=np.float32)
            state.update(Batch(rows(algo, wide), labels_for(state, wide)))
        except FeatureCountError as exc:
            assert str(N_FEATURES) in str(exc) and str(N_FEATURES + 1) in str(exc), str(exc)
        else:
            raise AssertionError("a batch with another feature count was accepted")
        _same(before, state.to_arrays(), "state after a rejected wider batch")
        if algo.tags.get("sparse_input"):
            # A CSR row whose column index is beyond the width (scipy builds one only if
            # its arrays are changed afterwards; its products then read out of bounds).
            bad = sp.csr_matrix(X[:64])
            bad.indices[bad.indptr[10]] = N_FEATURES + 3
            try:
                state.update(Batch(bad, labels_for(state, X[:64])))
            except DataError as exc:
                assert "row 10" in str(exc) and str(N_FEATURES + 3) in str(exc), str(exc)
            else:
                raise AssertionError("a sparse row with an index beyond the width was accepted")
            _same(before, state.to_arrays(), "state after a rejected out-of-range index")


def check_seeding(algo: Algorithm) -> None:
    """Same data and seed give the same state and model; another seed is allowed to differ."""
    X = blobs(5000, seed=9)
    a = stream(new_state(algo, seed=11), rows(algo, X))
    b = stream(new_state(algo, seed=11), rows(algo, X))
    _same(a.to_arrays(), b.to_arrays(), "states of two runs with one seed")
    _same(a.model().to_arrays(), b.model().to_arrays(), "models of two runs with one seed")


def check_finalize_repeatable(algo: Algorithm) -> None:
    """Finalizing is repeatable and leaves the state as it was."""
    state = stream(new_state(algo), rows(algo, blobs(5000, seed=10)))
    before = state.to_arrays()
    m1 = state.model()
    m2 = state.model()
    _same(m1.to_arrays(), m2.to_arrays(), "two finalizes of one state")
    _same(before, state.to_arrays(), "state after finalize")


def check_model_roundtrip(algo: Algorithm) -> None:
    """A saved model loads and predicts exactly as before."""
    from onepass.io import load_model, save_model

    X = data(algo, blobs(3000, seed=12))
    model = stream(new_state(algo), rows(algo, X)).model()
    with tempfile.TemporaryDirectory() as tmp:
        save_model(tmp + "/m", model)
        loaded, _ = load_model(tmp + "/m")
    for name, values in model.outputs(X).items():
        assert np.array_equal(values, loaded.outputs(X)[name]), f"output {name} differs after load"


STATE_CHECKS = [
    check_checkpoint_roundtrip,
    check_merge,
    check_memory_flat,
    check_bad_values,
    check_seeding,
    check_finalize_repeatable,
    check_model_roundtrip,
]
