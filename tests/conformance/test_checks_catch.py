"""Each conformance check fails on a state broken in the way it guards against.

A check that passes by construction proves nothing: here every check meets a
deliberately broken test double (a K-Means state with one flaw) and must fail.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import check_estimator

from onepass.algorithms.kmeans import KMeans, KMeansState
from onepass.algorithms.pca import PCAState
from onepass.state import ALGORITHMS
from tests.conformance import checks

REAL = ALGORITHMS["kmeans"]


def with_state(cls: type) -> Any:
    return dataclasses.replace(REAL, state=cls)


class ForgetsWeightsOnLoad(KMeansState):
    """Checkpoint round trip loses the center weights."""

    @classmethod
    def from_arrays(cls, meta, arrays):  # type: ignore[no-untyped-def]
        state = super().from_arrays(meta, arrays)
        state.weights_ = np.ones_like(state.weights_)
        return state


class ForgetsRngOnLoad(KMeansState):
    """Checkpoint round trip restarts the random generator from the seed."""

    @classmethod
    def from_arrays(cls, meta, arrays):  # type: ignore[no-untyped-def]
        meta = {**meta, "rng": np.random.default_rng(meta["hyperparameters"]["seed"]).bit_generator.state}
        return super().from_arrays(meta, arrays)


class MergeIgnoresCenters(KMeansState):
    """Merge adds the counts but keeps only its own centers."""

    def merge(self, other):  # type: ignore[no-untyped-def]
        self.n_rows_seen_ += other.n_rows_seen_
        self.weight_seen_ += other.weight_seen_


class KeepsEveryRow(KMeansState):
    """Unbounded 'streaming' state: a log of every row's norm."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.norms_ = np.zeros(0)

    def update(self, batch):  # type: ignore[no-untyped-def]
        super().update(batch)
        self.norms_ = np.concatenate([self.norms_, np.linalg.norm(batch.X, axis=1)])

    def to_arrays(self):  # type: ignore[no-untyped-def]
        meta, arrays = super().to_arrays()
        return meta, {**arrays, "norms": self.norms_}


class AcceptsNaN(KMeansState):
    """Lets non-finite values into the state (replaced by zeros, silently)."""

    def update(self, batch):  # type: ignore[no-untyped-def]
        batch.X = np.nan_to_num(batch.X, nan=0.0, posinf=0.0, neginf=0.0)
        super().update(batch)


class UnseededRandomness(KMeansState):
    """Seeds its generator from the OS instead of the given seed."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.rng_ = np.random.default_rng()


class FinalizeMutates(KMeansState):
    """Finalize consumes the generator, so finalizing twice differs."""

    def model(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.rng_.random()
        return super().model(*args, **kwargs)


class SetsAttributeInInit(KMeans):
    """Breaks scikit-learn's contract: does work in __init__."""

    def __init__(self, n_clusters=8, *, random_state=None):  # type: ignore[no-untyped-def]
        super().__init__(n_clusters, random_state=random_state)
        self.fitted_thing_ = 1


CASES = [
    (checks.check_checkpoint_roundtrip, ForgetsWeightsOnLoad),
    (checks.check_checkpoint_roundtrip, ForgetsRngOnLoad),
    (checks.check_merge, MergeIgnoresCenters),
    (checks.check_memory_flat, KeepsEveryRow),
    (checks.check_bad_values, AcceptsNaN),
    (checks.check_seeding, UnseededRandomness),
    (checks.check_finalize_repeatable, FinalizeMutates),
]


@pytest.mark.parametrize(("check", "broken"), CASES, ids=lambda x: x.__name__)
def test_check_catches_broken_state(check, broken, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The checkpoint check loads through the registry: point it at the broken class.
    monkeypatch.setitem(ALGORITHMS, "kmeans", with_state(broken))
    algo = ALGORITHMS["kmeans"]
    with pytest.raises(AssertionError):
        check(algo)


def test_every_state_check_meets_a_broken_double() -> None:
    covered = {check for check, _ in CASES}
    missing = [c.__name__ for c in checks.STATE_CHECKS if c not in covered and c is not checks.check_model_roundtrip]
    assert not missing, f"conformance checks with no broken double: {missing}"


class ModelLosesPrecision(KMeansState):
    """Its model rounds the centers when saved, so a loaded model predicts otherwise."""

    def model(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        model = super().model(*args, **kwargs)
        original = model.to_arrays

        def lossy():  # type: ignore[no-untyped-def]
            meta, arrays = original()
            return meta, {**arrays, "cluster_centers": np.round(arrays["cluster_centers"] / 20) * 20}

        model.to_arrays = lossy
        return model


def test_model_roundtrip_check_catches_lossy_model(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(ALGORITHMS, "kmeans", with_state(ModelLosesPrecision))
    with pytest.raises(AssertionError):
        checks.check_model_roundtrip(ALGORITHMS["kmeans"])


class ForgetsSparseBufferOnLoad(PCAState):
    """Checkpoint round trip drops the sparse rows buffered but not yet compressed."""

    @classmethod
    def from_arrays(cls, meta, arrays):  # type: ignore[no-untyped-def]
        return super().from_arrays(meta, {**arrays, "buffer_weights": np.zeros(0)})


def test_sparse_variant_reaches_what_dense_input_does_not(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # PCA's sketch keeps sparse rows in a buffer that dense input never fills: the
    # sparse_input variant is what lets the checkpoint check see a lost buffer.
    variants = dict(checks.configurations({"pca": dataclasses.replace(ALGORITHMS["pca"], state=ForgetsSparseBufferOnLoad)}))
    monkeypatch.setitem(ALGORITHMS, "pca", variants["pca"])
    checks.check_checkpoint_roundtrip(variants["pca-sketch"])
    with pytest.raises(AssertionError):
        checks.check_checkpoint_roundtrip(variants["pca-sketch-sparse"])


def test_sklearn_suite_catches_work_in_init() -> None:
    results = check_estimator(SetsAttributeInInit(), on_fail=None)
    assert any(r["status"] == "failed" for r in results)
    assert isinstance(SetsAttributeInInit(), BaseEstimator)
