"""The State protocol, the Model protocol and the registry of algorithms.

A *state* is everything training produces: it can be updated with a mini-batch,
merged with another state of its kind, turned into arrays and back (checkpoints), and
finalized into a model, cheaply and many times. A *model* is what predicts.

Adding an algorithm touches its own module and one line of :data:`ALGORITHMS`
(via :func:`register`); nothing else dispatches on the kind.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from onepass.batch import Batch
from onepass.errors import InvalidParameterError

__all__ = ["ALGORITHMS", "Algorithm", "ArraySpec", "Model", "State", "become_copy", "get_algorithm", "register"]


@runtime_checkable
class State(Protocol):
    """What every algorithm's training state offers."""

    kind: ClassVar[str]
    n_rows_seen_: int

    def update(self, batch: Batch) -> None: ...

    def merge(self, other: State) -> None: ...

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> State: ...

    def model(self, **settings: Any) -> Model: ...


@runtime_checkable
class Model(Protocol):
    """What every finalized model offers."""

    kind: ClassVar[str]

    def predict(self, X: Any) -> np.ndarray: ...

    def score(self, X: Any, y: Any = None) -> float:
        """Quality on ``X`` (higher is better), the algorithm's natural measure."""
        ...

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        """Named output columns, one value (or vector) per row: what ``onepass predict``
        writes and what the server returns."""
        ...

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Model: ...


@dataclass(frozen=True)
class ArraySpec:
    """What one array of a state or model must be, checked when a checkpoint or model is
    loaded (the directory is untrusted input). A class declares its arrays in a class
    attribute ``ARRAY_SPECS``: array name -> ``ArraySpec``; a name ending in ``*`` declares
    every array whose name starts with what precedes it (a network's parameters).

    Parameters
    ----------
    dtypes : tuple of str
        The dtypes the array may have, as kind and size in bytes (``"f4"``, ``"i8"``,
        ``"b1"``) or a kind alone for any size (``"U"``: strings of any length).
    shape : tuple or None, default None
        One entry per dimension: an int (that size), a str (a size every array naming the
        same letter shares, e.g. the clusters of centers and weights), None (any size);
        None for any number of dimensions.
    finite : bool, default False
        NaN and infinities are refused (what the model cannot hold).
    required : bool, default True
        The artifact must hold the array (False: the class writes it only when not empty).
    """

    dtypes: tuple[str, ...]
    shape: tuple[int | str | None, ...] | None = None
    finite: bool = False
    required: bool = True


@dataclass(frozen=True)
class Algorithm:
    """One registry entry: the classes of an algorithm and how finalize is asked.

    ``estimator_path`` names the estimator as ``"module:Class"``: estimators import
    scikit-learn, which the CLI and the server do not need. ``finalize_settings`` names the keyword arguments ``State.model`` accepts, so the CLI
    and the tuner can offer them without knowing the algorithm. ``tags`` declare what the
    shared conformance suite needs to know (small test hyperparameters, the tolerance of
    merge against one pass, whether to feed sparse input, and ``variants``: more tag sets
    the suite runs too, such as another mode), so the suite never special-cases an
    algorithm by name. ``sagemaker_names`` declares SageMaker's hyperparameters of the
    algorithm and where each goes (:mod:`onepass.algorithms._sagemaker_names`).
    """

    name: str
    state: type
    model: type
    estimator_path: str
    finalize_settings: tuple[str, ...] = field(default=())
    tags: dict[str, Any] = field(default_factory=dict)
    sagemaker_names: dict[str, Any] = field(default_factory=dict)

    @property
    def estimator(self) -> type:
        """The scikit-learn estimator class, imported on first use (``module:Class``)."""
        module, _, attr = self.estimator_path.partition(":")
        return getattr(importlib.import_module(module), attr)


ALGORITHMS: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add ``algorithm`` to :data:`ALGORITHMS` under its name and return it."""
    ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def get_algorithm(name: str) -> Algorithm:
    """The registry entry called ``name`` (its package imported, no other), or a clear
    error listing the known ones."""
    from onepass.algorithms import PACKAGES, package_of

    package = package_of(name=name)
    if package is not None:
        importlib.import_module(package)
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    known = ", ".join(sorted(PACKAGES))
    raise InvalidParameterError(f"unknown algorithm {name!r}; choose one of: {known}")


def algorithm_of_kind(kind: str, role: str) -> type:
    """The state or model class (``role``) whose ``kind`` attribute is ``kind``."""
    from onepass.algorithms import load_all, package_of

    package = package_of(kind=kind)
    if package is not None:
        importlib.import_module(package)
    else:
        load_all()  # an algorithm registered from outside onepass.algorithms
    for algo in ALGORITHMS.values():
        cls = getattr(algo, role)
        if cls.kind == kind:
            return cls
    raise InvalidParameterError(f"no {role} class of kind {kind!r} is registered")


def become_copy(target: Any, source: Any) -> None:
    """Make ``target`` a copy of ``source`` (a merge into a state that has not started),
    keeping ``target``'s own seed and generator state, through the arrays a checkpoint
    holds: every field is copied, none shared."""
    meta, arrays = source.to_arrays()
    meta = {**meta, "hyperparameters": {**meta["hyperparameters"], "seed": target.seed},
            "rng": target.rng_.bit_generator.state}
    copy = type(target).from_arrays(meta, {k: np.array(v) for k, v in arrays.items()})
    target.__dict__.update(copy.__dict__)
