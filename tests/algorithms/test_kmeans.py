"""Streaming K-Means: quality against full k-means, finalize, sparse, weights, fading."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans as FullKMeans

from onepass import KMeans, KMeansState
from onepass.batch import Batch
from onepass.errors import DataError, InvalidParameterError, NotFittedError


def blobs(n: int, k: int, d: int, seed: int, spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The anchor benchmark's overlapping blobs: centers ~ N(0, spread^2), std U(0.8, 1.2)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, spread, (k, d))
    std = rng.uniform(0.8, 1.2, k)
    labels = rng.integers(0, k, n)
    X = centers[labels] + rng.standard_normal((n, d)) * std[labels, None]
    return X.astype(np.float32), labels


@pytest.mark.parametrize("k", [10, 30])
def test_inertia_within_one_percent_of_full_kmeans(k: int) -> None:
    X, _ = blobs(200_000, k, 50, seed=k)
    streaming = KMeans(k, random_state=0)
    for start in range(0, X.shape[0], 50_000):
        streaming.partial_fit(X[start : start + 50_000])
    full = FullKMeans(k, n_init=1, random_state=0).fit(X)
    ratio = -streaming.score(X) / full.inertia_
    assert ratio < 1.01, f"inertia {ratio:.4f}x full KMeans"
    # The running estimate of inertia (no second pass) is close to the real one.
    assert streaming.inertia_ == pytest.approx(-streaming.score(X), rel=0.06)


def test_one_state_finalizes_to_any_k_up_to_the_kept_centers() -> None:
    X, _ = blobs(50_000, 8, 5, seed=1, spread=5.0)
    state = KMeansState(8, extra_center_factor=4, seed=0)
    for start in range(0, X.shape[0], 4096):
        state.update(Batch(X[start : start + 4096]))
    inertias = []
    for k in (2, 4, 8, 16, 32):
        model = state.model(k)
        assert model.cluster_centers_.shape == (k, 5)
        inertias.append(model.inertia(X))
    assert all(a > b for a, b in zip(inertias, inertias[1:], strict=False)), inertias
    with pytest.raises(InvalidParameterError, match=r"n_clusters=33 is more than the 32 centers kept.*extra_center_factor >= 4.13.*n_clusters <= 32"):
        state.model(33)
    with pytest.raises(InvalidParameterError, match="n_clusters=0"):
        state.model(0)


def test_true_number_of_blobs_is_recovered() -> None:
    X, labels = blobs(60_000, 6, 4, seed=2, spread=8.0)
    km = KMeans(6, random_state=0).fit(X)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(labels, km.labels_) > 0.99


def test_sparse_and_dense_input_give_the_same_centers() -> None:
    rng = np.random.default_rng(3)
    X, _ = blobs(20_000, 5, 30, seed=3, spread=4.0)
    X[rng.random(X.shape) < 0.7] = 0.0
    dense = KMeans(5, random_state=1).fit(X)
    sparse = KMeans(5, random_state=1).fit(sp.csr_matrix(X))
    np.testing.assert_allclose(sparse.cluster_centers_, dense.cluster_centers_, atol=1e-3)
    np.testing.assert_array_equal(sparse.predict(sp.csr_matrix(X[:1000])), dense.predict(X[:1000]))


def test_weights_are_honored() -> None:
    """A row of weight 3 counts like three copies of it (in expectation)."""
    rng = np.random.default_rng(4)
    a = rng.normal(-4, 1, (30_000, 2)).astype(np.float32)
    b = rng.normal(4, 1, (30_000, 2)).astype(np.float32)
    X = np.concatenate([a, b])
    order = rng.permutation(X.shape[0])
    w = np.where(np.arange(X.shape[0]) < a.shape[0], 3.0, 1.0)
    weighted = KMeans(1, random_state=0).fit(X[order], sample_weight=w[order])
    # The weighted mean is (3 * -4 + 4) / 4 = -2.
    assert weighted.cluster_centers_[0, 0] == pytest.approx(-2.0, abs=0.05)
    with pytest.raises(DataError, match="sample_weight is zero"):
        KMeans(2).fit(X[:10], sample_weight=np.zeros(10))


def test_half_life_follows_a_drifting_stream() -> None:
    rng = np.random.default_rng(5)
    old = rng.normal(0, 1, (100_000, 2)).astype(np.float32) + np.array([-10, 0], dtype=np.float32)
    new = rng.normal(0, 1, (100_000, 2)).astype(np.float32) + np.array([10, 0], dtype=np.float32)
    fading = KMeansState(1, half_life=5_000, seed=0)
    keeping = KMeansState(1, seed=0)
    for X in (old, new):
        for start in range(0, X.shape[0], 4096):
            fading.update(Batch(X[start : start + 4096]))
            keeping.update(Batch(X[start : start + 4096]))
    assert fading.model().cluster_centers_[0, 0] == pytest.approx(10.0, abs=0.2)
    assert keeping.model().cluster_centers_[0, 0] == pytest.approx(0.0, abs=0.2)


def test_new_data_far_away_gets_centers_of_its_own() -> None:
    """Streaming k-means++ reseeding: a region that appears late is not merged away."""
    rng = np.random.default_rng(6)
    first = rng.normal(0, 1, (60_000, 2)).astype(np.float32)
    late = rng.normal(0, 1, (20_000, 2)).astype(np.float32) + 50
    state = KMeansState(2, half_life=20_000, seed=0)
    for X in (first, late):
        for start in range(0, X.shape[0], 2048):
            state.update(Batch(X[start : start + 2048]))
    centers = np.sort(state.model(2).cluster_centers_[:, 0])
    assert centers[0] == pytest.approx(0, abs=0.5) and centers[1] == pytest.approx(50, abs=0.5)


def test_small_streams_and_errors() -> None:
    state = KMeansState(3, seed=0)
    with pytest.raises(NotFittedError):
        state.model()
    state.update(Batch(np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)))
    with pytest.raises(DataError, match="n_samples=2 should be >= n_clusters=3"):
        state.model()
    state.update(Batch(np.array([[5.0, 5.0]], dtype=np.float32)))
    np.testing.assert_allclose(np.sort(state.model().cluster_centers_[:, 0]), [0, 1, 5])
    for bad in ({"n_clusters": 0}, {"n_clusters": 2.5}, {"extra_center_factor": 0}, {"half_life": -1}):
        with pytest.raises(InvalidParameterError):
            KMeansState(**{"n_clusters": 2, **bad})


def test_estimator_streaming_equals_state_streaming() -> None:
    """fit is a loop of partial_fit: the estimator and a bare state agree exactly."""
    X, _ = blobs(30_000, 4, 3, seed=7, spread=5.0)
    est = KMeans(4, batch_size=1000, random_state=3).fit(X)
    state = KMeansState(4, seed=3)
    for start in range(0, X.shape[0], 1000):
        state.update(Batch(X[start : start + 1000]))
    np.testing.assert_array_equal(est.cluster_centers_, state.model(4).cluster_centers_)


def test_a_large_mean_offset_costs_no_quality() -> None:
    """Distances are computed relative to an origin kept in the state: +1e4 on every
    feature gives the same clustering as the data at zero (float32 alone would not)."""
    X, labels = blobs(60_000, 6, 8, seed=8, spread=3.0)
    at_zero = KMeans(6, random_state=0).fit(X)
    shifted = KMeans(6, random_state=0).fit(X + np.float32(1e4))
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(at_zero.labels_, shifted.labels_) > 0.99
    assert -shifted.score(X + np.float32(1e4)) == pytest.approx(-at_zero.score(X), rel=0.01)
    np.testing.assert_allclose(np.sort(shifted.cluster_centers_[:, 0]) - 1e4, np.sort(at_zero.cluster_centers_[:, 0]), atol=0.05)


def test_lloyd_runs_advance_together_exactly_as_each_alone() -> None:
    from onepass.algorithms.kmeans import _weighted

    rng = np.random.default_rng(3)
    points = rng.normal(size=(120, 6)) * 3 + 50
    points[:40] = points[0]  # duplicates: some runs empty a cluster and refill it
    weights = rng.uniform(0.5, 2.0, 120)
    starts = np.stack([points[rng.choice(120, 9, replace=False)] for _ in range(7)])
    centers, labels, inertia, n_iter = _weighted.lloyd_runs(points, weights, starts, max_iter=50)
    for r in range(7):
        alone = _weighted.lloyd(points, weights, starts[r], max_iter=50)
        assert np.array_equal(centers[r], alone[0]) and np.array_equal(labels[r], alone[1])
        assert (inertia[r], n_iter[r]) == (alone[2], alone[3])


def test_rows_near_float32s_limit_get_their_true_distance() -> None:
    """Their float32 squared distances overflow: the model assigns them again in float64
    (onepass predict wrote inf and the server null before)."""
    from onepass.algorithms.kmeans import KMeansState
    from onepass.batch import Batch

    state = KMeansState(n_clusters=2, seed=0)
    state.update(Batch(np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)))
    model = state.model()
    X = np.array([[3.4e38, -3.4e38, 3.4e38], [1.0, 2.0, 3.0]], dtype=np.float32)
    out = model.outputs(X)
    truth = np.linalg.norm(X[0].astype(np.float64) - model.cluster_centers_.astype(np.float64), axis=1)
    assert np.all(np.isfinite(out["distance_to_cluster"]))
    assert out["closest_cluster"][0] == int(np.argmin(truth))
    assert abs(out["distance_to_cluster"][0] - truth.min()) <= 1e-6 * truth.min()
    assert out["closest_cluster"][1] == model.predict(X[1:])[0]
