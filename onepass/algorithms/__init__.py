"""One package per algorithm, registered when imported.

:data:`PACKAGES` names every algorithm's package and the kinds of its states and models,
so that a command imports only the algorithm it uses (``onepass train kmeans`` never
imports PyTorch for DeepAR, ``onepass --help`` imports none). :func:`load_all` imports
them all, for what must see every algorithm. The classes are served on first use;
estimators import scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "PACKAGES",
    "DeepAR",
    "DeepARModel",
    "DeepARState",
    "FactorizationMachinesClassifier",
    "FactorizationMachinesModel",
    "FactorizationMachinesRegressor",
    "FactorizationMachinesState",
    "KMeans",
    "KMeansModel",
    "KMeansState",
    "LinearLearnerClassifier",
    "LinearLearnerModel",
    "LinearLearnerRegressor",
    "LinearLearnerState",
    "NTM",
    "NTMModel",
    "NTMState",
    "PCA",
    "PCAModel",
    "PCAState",
    "load_all",
    "package_of",
]

# name -> (package, kind of its states and models); adding an algorithm adds a line here
PACKAGES: dict[str, tuple[str, str]] = {
    "deepar": ("onepass.algorithms.deepar", "forecast"),
    "factorization-machines": ("onepass.algorithms.fm", "factorization-machines"),
    "kmeans": ("onepass.algorithms.kmeans", "kmeans"),
    "linear-learner": ("onepass.algorithms.linear", "linear-learner"),
    "ntm": ("onepass.algorithms.ntm", "ntm"),
    "pca": ("onepass.algorithms.pca", "pca"),
}

_CLASSES = {  # public name -> the package serving it
    "DeepAR": "deepar", "DeepARModel": "deepar", "DeepARState": "deepar",
    "FactorizationMachinesClassifier": "factorization-machines",
    "FactorizationMachinesModel": "factorization-machines",
    "FactorizationMachinesRegressor": "factorization-machines",
    "FactorizationMachinesState": "factorization-machines",
    "KMeans": "kmeans", "KMeansModel": "kmeans", "KMeansState": "kmeans",
    "LinearLearnerClassifier": "linear-learner", "LinearLearnerModel": "linear-learner",
    "LinearLearnerRegressor": "linear-learner", "LinearLearnerState": "linear-learner",
    "NTM": "ntm", "NTMModel": "ntm", "NTMState": "ntm",
    "PCA": "pca", "PCAModel": "pca", "PCAState": "pca",
}


def package_of(*, name: str | None = None, kind: str | None = None) -> str | None:
    """The package of the algorithm called ``name``, or of the one whose states and
    models are of ``kind``; None when there is none."""
    for algo, (package, algo_kind) in PACKAGES.items():
        if algo == name or (kind is not None and algo_kind == kind):
            return package
    return None


def load_all() -> None:
    """Import (and so register) every algorithm."""
    for package, _ in PACKAGES.values():
        importlib.import_module(package)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return getattr(importlib.import_module(PACKAGES[_CLASSES[name]][0]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
