"""Tuning from a state: finalize one model per setting, score all of them on one read of
a validation source. No training data is read again."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onepass._parallel import blas_single_thread
from onepass.errors import InvalidParameterError
from onepass.sources import open_source
from onepass.state import ALGORITHMS, State
from onepass.tune._leaderboard import Leaderboard, choose
from onepass.tune._scorers import Scorer, scorer_for
from onepass.tune._space import Dimension, parse_param

__all__ = ["parse_params", "run_scorer", "score_models", "tune_from_state"]


def parse_params(params: Sequence[str | Dimension] | dict[str, Any]) -> list[Dimension]:
    """``["n_clusters=2:64"]`` or ``{"n_clusters": range(2, 65)}`` → dimensions."""
    if isinstance(params, dict):
        dims = [Dimension(k, values=tuple(v) if isinstance(v, (list, tuple, range)) else (v,)) for k, v in params.items()]
    else:
        dims = [p if isinstance(p, Dimension) else parse_param(p) for p in params]
    if not dims:
        raise InvalidParameterError("give at least one setting to tune (--param NAME=RANGE)")
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"a setting is given twice: {names}")
    return dims


def _algorithm_of(state: State) -> Any:
    from onepass.algorithms import load_all

    load_all()
    return next(a for a in ALGORITHMS.values() if a.state.kind == state.kind)


def score_models(models: Sequence[Any], validation: Any, *, seed: int = 0, batch_size: int = 8192,
                 **source_kwargs: Any) -> list[dict[str, float]]:
    """Every metric of the models' kind for each of ``models``, reading ``validation`` once."""
    scorer, _ = run_scorer(models, validation, seed=seed, batch_size=batch_size, **source_kwargs)
    return scorer.results()


def run_scorer(models: Sequence[Any], data: Any, *, seed: int = 0, batch_size: int = 8192, detailed: bool = False,
               check: Any = None, **source_kwargs: Any) -> tuple[Scorer, dict[str, int]]:
    """The scorer of the models' kind after one read of ``data``, and the source's counts
    (``rows``, ``skipped``, ``quarantined``). ``check(batch)``, when given, sees each
    batch first (and may raise a clearer error than the scorer would)."""
    scorer = scorer_for(models[0].kind)(models, seed=seed, detailed=detailed)
    # Many small products, on two row blocks in parallel: BLAS threads would only compete.
    with blas_single_thread(), open_source(data, batch_size=batch_size, **source_kwargs) as src:
        for batch in src:
            if check is not None:
                check(batch)
            scorer.update(batch)
        if scorer.n_rows == 0:
            raise InvalidParameterError(f"the validation source {data} yielded no rows")
        return scorer, {"rows": scorer.n_rows, "skipped": src.n_skipped, "quarantined": src.n_quarantined}


def tune_from_state(state: State, validation: Any, params: Sequence[str | Dimension] | dict[str, Any], *,
                    metric: str | None = None, select: str = "best", target: float | None = None,
                    batch_size: int = 8192, seed: int = 0, out: str | os.PathLike[str] | None = None,
                    plot: str | os.PathLike[str] | None = None, schema: dict[str, Any] | None = None,
                    **source_kwargs: Any) -> Leaderboard:
    """Finalize ``state`` once per setting, score each on ``validation``, rank them.

    ``schema`` (the input schema of the model the state came with) is written with the
    chosen model, so that it reads data as the original did."""
    algo = _algorithm_of(state)
    dims = parse_params(params)
    for dim in dims:
        if dim.name not in algo.finalize_settings:
            valid = ", ".join(algo.finalize_settings) or "(none)"
            raise InvalidParameterError(
                f"--param {dim.name}: not a finalize setting of {algo.name}; from a state, tune: {valid} "
                "(settings that change training need a search: onepass tune --search)"
            )
    scorer_cls = scorer_for(state.kind)
    metric = metric or scorer_cls.default_for(state)
    if metric not in scorer_cls.metrics:
        raise InvalidParameterError(f"metric={metric!r}: {algo.name} offers {', '.join(scorer_cls.metrics)}")
    settings = [dict(zip([d.name for d in dims], combo, strict=True)) for combo in itertools.product(*(d.grid() for d in dims))]
    models = []
    for setting in settings:  # every candidate is finalized before validation is read: errors come first
        try:
            models.append(state.model(**setting))
        except InvalidParameterError as exc:
            shown = ", ".join(f"{k}={v}" for k, v in setting.items())
            raise InvalidParameterError(f"--param {shown}: {exc}") from None
    scores = score_models(models, validation, seed=seed, batch_size=batch_size, **source_kwargs)
    records = [{**setting, **score} for setting, score in zip(settings, scores, strict=True)]
    board = choose(records, metric=metric, direction=scorer_cls.metrics[metric], select=select,
                   params=[d.name for d in dims], target=target)
    if out is not None:
        from onepass.io import save_model

        best = scorer_cls.adjust(models[records.index(board.chosen)], board.chosen, metric)
        save_model(out, best, extra={"algorithm": algo.name, "finalize": {k: board.chosen[k] for k in board.params},
                                     "rows_seen": state.n_rows_seen_, "tune": board.to_json(),
                                     **({"schema": schema} if schema else {})})
    if plot is not None:
        from onepass.tune._plot import plot_leaderboard

        plot_leaderboard(board, plot)
    return board


def tunable_schema(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The input schema recorded beside a tunable state: a model directory's (its state
    is in ``state/``), or None (a checkpoint records none)."""
    from onepass.io._artifact import read_manifest

    target = Path(path)
    if not (target / "state" / "manifest.json").is_file():
        return None
    schema = read_manifest(target).get("schema")
    return schema if isinstance(schema, dict) else None


def load_tunable_state(path: str | os.PathLike[str]) -> State:
    """The state in a checkpoint, checkpoint directory, state directory or model
    directory written with its state (``onepass train --out``)."""
    from onepass.io._models import load_state

    return load_state(Path(path))[0]
