"""``onepass.train``: a training run described by keyword arguments, and run."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any

from onepass.training._loop import TrainResult
from onepass.training._run import TrainingRun

__all__ = ["train"]


def train(algorithm: str, data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
          **options: Any) -> TrainResult:
    """Train ``algorithm`` on ``data`` in one streaming pass per epoch.

    The keyword form of a :class:`~onepass.training.TrainingRun` (``TrainingRun.of``
    with the same arguments), run by the one training loop the CLI, tuning, Ray and
    the SageMaker container use too.

    Parameters
    ----------
    algorithm : str
        A registered algorithm, e.g. ``"kmeans"``.
    data : str, path or list of them
        Any URI :func:`onepass.sources.open_source` reads (file, folder, glob, ``-``,
        fsspec URL).
    params : dict, optional
        Hyperparameters of the algorithm's state (e.g. ``{"n_clusters": 10}``).
    finalize : dict, optional
        Settings for ``state.model(...)`` (e.g. ``{"n_clusters": 5}``).
    batch_size : int, default=8192
        Rows per mini-batch.
    format, label_column, weight_column, header, n_features, zero_based, on_bad_record, quarantine_file, vocab, document, series_id_column, timestamp_column, target_column, dynamic_feat_columns, cat_columns
        Passed to the source (:func:`onepass.open_source`; the last five name a long table's
        columns of series). ``vocab`` (one word per line) also names the columns of a
        state that takes names (a topic model's top words).
    stream, group, consumer, query, key_column, follow, null
        A record transport's options (a Redis stream read by a consumer group, a PostgreSQL
        query; see :func:`onepass.open_source`). ``follow`` trains as records arrive
        until SIGTERM/SIGINT, which end with a checkpoint.
    checkpoint_dir : path, optional
        Where checkpoints go; with ``checkpoint_every_rows`` and/or
        ``checkpoint_every_seconds`` they are written during the run, and one always at
        the end of each epoch.
    resume : bool, default=False
        Continue from the newest checkpoint in ``checkpoint_dir`` that verifies when there
        is one (a damaged newer one is skipped with a ``CheckpointSkippedWarning`` and the
        rows since are read again); start fresh when there is none.
    keep_checkpoints : int, default=3
        Checkpoints kept in ``checkpoint_dir``, newest first (so that a resume can fall
        back when the newest is damaged).
    epochs : int, default=1
        Passes over a persistent source, each continuing from the state of the last.
    max_rows : int, optional
        Pause once the state has counted this many rows (across resumed runs), at the
        first batch boundary at or after it: the run checkpoints where it stopped (with
        ``checkpoint_dir``) and returns with ``paused=True``; ``resume=True`` goes on
        from there. Tuning by successive halving trains its trials this way.
    seed : int, optional
        Seeds the state: same data, same seed, same model.
    metrics : path, "-" or file, optional
        Where metrics go, one JSON object per line.
    progress : bool or None, default=False
        A progress bar on stderr; None shows it when stderr is a terminal.
    out : path, optional
        Write the finalized model there, with the final state in ``out/state``.
    on_batch : callable, optional
        Called as ``on_batch(state, cursor)`` after each batch (for tests and hooks).
    workers : onepass.training.Workers, optional
        Train on Ray workers (see :func:`onepass.distributed.train_distributed`).
    validation : str, path or list of them, optional
        A validation source (read with the same format and columns as ``data``), for
        algorithms that score models on validation rows (their state has
        ``add_validation``). Read before training, up to what the state keeps; a resumed
        run has them in its checkpoint. Bad records in it are skipped (``fail`` still fails).
    feature_dim : int, optional
        SageMaker's ``feature_dim``: the width the data must have (an
        InvalidParameterError naming it otherwise); onepass infers the width without it.

    Returns
    -------
    TrainResult
    """
    return TrainingRun.of(algorithm, data, **options).run()


train.__signature__ = inspect.signature(TrainingRun.of).replace(  # type: ignore[attr-defined]
    return_annotation="TrainResult")
