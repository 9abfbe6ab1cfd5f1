"""Tuning: "train once, tune after".

- From a state (:func:`tune_from_state`): many models finalized from one training
  state, all scored on one read of a validation source.
- By search (:func:`tune_search`): when a setting changes training itself, trials
  trained by successive halving that pause and resume from their checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from onepass._lazy import lazy_getattr

if TYPE_CHECKING:
    from onepass.tune._leaderboard import Leaderboard
    from onepass.tune._space import Dimension

__all__ = ["Dimension", "Leaderboard", "parse_param", "tune", "tune_from_state", "tune_search"]

# light to import (``onepass.tune`` is imported by ``import onepass``): the rest on first use
__getattr__ = lazy_getattr(__name__, {"Dimension": "onepass.tune._space", "Leaderboard": "onepass.tune._leaderboard",
                                      "parse_param": "onepass.tune._space"})


def tune_from_state(*args: Any, **kwargs: Any) -> Leaderboard:
    from onepass.tune._from_state import tune_from_state as run

    return run(*args, **kwargs)


def tune_search(*args: Any, **kwargs: Any) -> Leaderboard:
    from onepass.tune._search import tune_search as run

    return run(*args, **kwargs)


def tune(
    state: Any = None,
    *,
    validation: Any,
    params: Sequence[str | Dimension] | dict[str, Any],
    search: str | None = None,
    data: Any = None,
    budget_rows: int | None = None,
    workdir: str | os.PathLike[str] | None = None,
    metric: str | None = None,
    **options: Any,
) -> Leaderboard:
    """Tune, as ``onepass tune`` does; returns the leaderboard (a list of records).

    From a state — ``tune("ckpt/", validation="val.csv", params=["n_clusters=2:64"])``
    (a state object, or a checkpoint, checkpoint directory or model directory written
    with its state) — every setting is finalized from the one state and scored on one
    read of ``validation``; options: ``select`` (``best``, ``elbow``, ``target``),
    ``target``, ``out``, ``plot``, ``batch_size``, and the validation source's options.

    By search — ``tune(search="kmeans", data="train.csv", validation="val.csv",
    params=["half_life=log:1e4:1e6"], budget_rows=2_000_000, workdir="search/")`` —
    trials train by successive halving; see :func:`onepass.tune._search.tune_search`.
    """
    if search is not None:
        if state is not None:
            raise _error("give a state to tune from, or search=ALGO with data, not both")
        if data is None or budget_rows is None or workdir is None:
            raise _error("a search needs data, budget_rows and workdir")
        return tune_search(search, data, validation, list(params), budget_rows=budget_rows, workdir=workdir,
                           metric=metric, **options)
    if state is None:
        raise _error("give a state (or a checkpoint or model directory) to tune from, or search=ALGO")
    if isinstance(state, (str, os.PathLike)):
        from onepass.tune._from_state import load_tunable_state, tunable_schema

        options.setdefault("schema", tunable_schema(state))  # the tuned model reads data as the original
        state = load_tunable_state(state)
    return tune_from_state(state, validation, params, metric=metric, **options)


def _error(message: str) -> Exception:
    from onepass.errors import InvalidParameterError

    return InvalidParameterError(message)
