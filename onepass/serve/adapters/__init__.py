"""How each model kind answers ``POST /invocations``: one small adapter module per kind.

An adapter says what SageMaker's built-in algorithm of that kind answers: the key of the
JSON response (``predictions``, ``projections``...) and, when the model's
:meth:`~onepass.state.Model.outputs` are not already the response fields, how to get
them. The server never branches on the kind: it asks :func:`adapter_for`.

To serve a new model kind, add one module here defining ``ADAPTER = Adapter(...)``;
modules of this package are found by introspection (no list to edit). A kind without an
adapter is still served, with :data:`DEFAULT`: ``{"predictions": [outputs of each row]}``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DEFAULT", "Adapter", "adapter_for", "adapters"]


def _model_outputs(model: Any, X: Any) -> dict[str, np.ndarray]:
    return model.outputs(X)


def _model_n_features(model: Any) -> int:
    return int(model.n_features)


@dataclass(frozen=True)
class Adapter:
    """What the server needs to know about one model kind.

    Parameters
    ----------
    kind : str
        The model's ``kind`` (``KMeansModel.kind == "kmeans"``).
    json_key : str, default "predictions"
        Key of the list of per-row records in a JSON response.
    outputs : callable, default ``model.outputs(X)``
        ``(model, X) -> {field: array}``: the response fields of each row, in order
        (1-D arrays for scalars, 2-D for vectors).
    n_features : callable, default ``model.n_features``
        ``model -> int``: the width every request row must have.
    answer : callable or None, default None
        ``(model, body, content_type, accept) -> (response body, records answered)``: for
        kinds whose requests are not rows (a forecaster's series), the whole answer;
        None reads rows and encodes ``outputs``.
    """

    kind: str
    json_key: str = "predictions"
    outputs: Callable[[Any, Any], dict[str, np.ndarray]] = _model_outputs
    n_features: Callable[[Any], int] = _model_n_features
    answer: Callable[[Any, bytes, str, str], tuple[bytes, int]] | None = None


DEFAULT = Adapter(kind="*")

_FOUND: dict[str, Adapter] = {}


def adapters() -> dict[str, Adapter]:
    """Every adapter in this package, by model kind (imported once)."""
    if not _FOUND:
        for info in pkgutil.iter_modules(__path__):
            adapter = importlib.import_module(f"{__name__}.{info.name}").ADAPTER
            if adapter.kind in _FOUND:
                raise RuntimeError(f"two adapters for model kind {adapter.kind!r}")
            _FOUND[adapter.kind] = adapter
    return _FOUND


def adapter_for(kind: str) -> Adapter:
    """The adapter of model ``kind``, or :data:`DEFAULT`."""
    return adapters().get(kind, DEFAULT)
