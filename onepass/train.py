"""The training loop: source -> state.update, with checkpoints, metrics and progress.

One loop serves the Python API (:func:`train`) and the CLI (``onepass train``). A run
with ``checkpoint_dir`` and ``resume=True`` continues from the newest complete
checkpoint, at the source cursor saved with it, so a process killed at any instant
ends with the same model as a run that was never killed.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from onepass._readahead import read_ahead
from onepass._version import __version__
from onepass.algorithms._sagemaker_names import check_width
from onepass.errors import EmptySourceError, IncompatibleStateError, InvalidParameterError
from onepass.io import latest_checkpoint, load_checkpoint, save_checkpoint, save_model
from onepass.io._models import STATE_SUBDIR, save_state
from onepass.sources import open_source
from onepass.state import Model, State, get_algorithm

__all__ = ["MetricsWriter", "TrainResult", "state_parameters", "train"]


def state_parameters(state_cls: type) -> dict[str, inspect.Parameter]:
    """The hyperparameters a state class accepts (its keyword arguments but ``seed``)."""
    params = inspect.signature(state_cls.__init__).parameters
    return {n: p for n, p in params.items() if n not in ("self", "seed")}


def make_state(algorithm: str, params: dict[str, Any] | None, seed: int | None) -> State:
    """A fresh state of ``algorithm`` with ``params``, refusing unknown parameters."""
    algo = get_algorithm(algorithm)
    params = dict(params or {})
    known = state_parameters(algo.state)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidParameterError(
            f"unknown parameter(s) {', '.join(unknown)} for {algorithm}; valid: {', '.join(known)}"
        )
    return algo.state(**params, seed=seed)


class MetricsWriter:
    """Writes metrics as one JSON object per line to a path, ``"-"`` (stdout), or a file."""

    def __init__(self, target: str | os.PathLike[str] | IO[str] | None) -> None:
        self._own = False
        self._fh: IO[str] | None
        if target is None:
            self._fh = None
        elif target == "-":
            self._fh = sys.stdout
        elif hasattr(target, "write"):
            self._fh = target  # type: ignore[assignment]
        else:
            path = Path(target)  # type: ignore[arg-type]
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")
            self._own = True

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, sort_keys=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._own and self._fh is not None:
            self._fh.close()


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    state : State
        The final training state.
    model : Model
        The model finalized from it with the run's finalize settings.
    n_rows_seen : int
        Rows the state has learned from, across epochs and resumed runs.
    n_skipped, n_quarantined : int
        Bad records dropped or set aside (of the last epoch's source).
    epochs : int
        Epochs completed.
    checkpoint : Path or None
        The last checkpoint written.
    out : Path or None
        The model directory written, when ``out`` was given.
    metrics : dict
        The last metrics record.
    paused : bool
        True when the run stopped at ``max_rows`` before the end of its epochs; a run
        with ``resume=True`` on the same checkpoint directory goes on from there.
    """

    state: State
    model: Model
    n_rows_seen: int
    n_skipped: int = 0
    n_quarantined: int = 0
    epochs: int = 1
    checkpoint: Path | None = None
    out: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    paused: bool = False


class _Progress:
    """A progress bar on stderr (rows, rows/s, elapsed) when stderr is a terminal."""

    def __init__(self, enabled: bool | None, initial: int) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=None, initial=initial, unit=" rows", unit_scale=True,
                             file=sys.stderr, dynamic_ncols=True, desc="train")

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _check_resume(state: State, manifest: dict[str, Any], algorithm: str, fresh: State) -> None:
    if manifest.get("algorithm") != algorithm:
        raise IncompatibleStateError(
            f"the checkpoint holds a {manifest.get('algorithm')!r} state, this run trains {algorithm!r}; "
            "use another --checkpoint-dir or the same algorithm"
        )
    saved = dict(manifest["meta"].get("hyperparameters", {}))
    wanted = fresh.to_arrays()[0].get("hyperparameters", {})
    for name, value in wanted.items():
        if name == "seed" or name not in saved:
            continue
        if saved[name] != value:
            raise IncompatibleStateError(
                f"the checkpoint was trained with {name}={saved[name]!r}, this run asks {name}={value!r}; "
                "resume with the same hyperparameters or use another --checkpoint-dir"
            )


def train(
    algorithm: str,
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    params: dict[str, Any] | None = None,
    finalize: dict[str, Any] | None = None,
    batch_size: int = 8192,
    format: str | None = None,
    label_column: str | int | None = None,
    weight_column: str | int | None = None,
    header: bool | None = None,
    n_features: int | None = None,
    zero_based: bool = False,
    on_bad_record: str = "fail",
    quarantine_file: str | os.PathLike[str] | None = None,
    vocab: str | os.PathLike[str] | None = None,
    document: str = "line",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every_rows: int | None = None,
    checkpoint_every_seconds: float | None = None,
    resume: bool = False,
    epochs: int = 1,
    max_rows: int | None = None,
    seed: int | None = None,
    metrics: str | os.PathLike[str] | IO[str] | None = None,
    metrics_every_seconds: float = 10.0,
    progress: bool | None = False,
    out: str | os.PathLike[str] | None = None,
    on_batch: Callable[[State, dict[str, Any]], None] | None = None,
    validation: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    feature_dim: int | None = None,
) -> TrainResult:
    """Train ``algorithm`` on ``data`` in one streaming pass per epoch.

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
    format, label_column, weight_column, header, n_features, zero_based, on_bad_record, quarantine_file, vocab, document
        Passed to the source. ``vocab`` (one word per line) also names the columns of a
        state that takes names (a topic model's top words).
    checkpoint_dir : path, optional
        Where checkpoints go; with ``checkpoint_every_rows`` and/or
        ``checkpoint_every_seconds`` they are written during the run, and one always at
        the end of each epoch.
    resume : bool, default=False
        Continue from the newest checkpoint in ``checkpoint_dir`` when there is one;
        start fresh when there is none.
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
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidParameterError(f"epochs={epochs!r} must be an integer >= 1")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(f"batch_size={batch_size!r} must be an integer >= 1")
    uris = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not uris:
        raise InvalidParameterError("data is empty: give at least one file, folder, glob or URL")
    if epochs > 1 and any(str(u) == "-" for u in uris):
        raise InvalidParameterError(
            f"epochs={epochs} needs a source that can be read again; stdin ('-') is read once. "
            "Save the stream to a file, or train with epochs=1"
        )
    if feature_dim is not None and (isinstance(feature_dim, bool) or not isinstance(feature_dim, int)
                                    or feature_dim < 1):
        raise InvalidParameterError(f"feature_dim={feature_dim!r} must be None or an integer >= 1")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
        raise InvalidParameterError(f"max_rows={max_rows!r} must be None or an integer >= 1")
    if (checkpoint_every_rows or checkpoint_every_seconds or resume) and checkpoint_dir is None:
        raise InvalidParameterError("checkpointing and resume need checkpoint_dir (--checkpoint-dir)")
    for name, value in (("checkpoint_every_rows", checkpoint_every_rows),
                        ("checkpoint_every_seconds", checkpoint_every_seconds)):
        if value is not None and not value > 0:
            raise InvalidParameterError(f"{name}={value!r} must be > 0")

    state = make_state(algorithm, params, seed)
    epoch, cursor, finished = 0, None, False
    checkpoint: Path | None = None
    history_rows = n_skipped = n_quarantined = 0
    if resume and checkpoint_dir is not None and (found := latest_checkpoint(checkpoint_dir)) is not None:
        loaded, manifest = load_checkpoint(found)
        _check_resume(loaded, manifest, algorithm, state)
        if manifest.get("distributed") is not None:
            raise IncompatibleStateError(
                f"{found} was written by a distributed job (--workers): its progress is one cursor per shard; "
                "resume it with --workers, or use another --checkpoint-dir")
        state, checkpoint = loaded, found
        epoch = int(manifest.get("epoch", 0))
        cursor = manifest.get("cursor")
        # a finished run asked for more epochs than it ran goes on (unless it stopped early)
        finished = bool(manifest.get("finished", False)) and (
            epoch >= epochs or bool(getattr(state, "is_stopped", False)))
        history_rows = state.n_rows_seen_
        n_skipped, n_quarantined = int(manifest.get("skipped", 0)), int(manifest.get("quarantined", 0))

    n_validation = 0
    if validation is not None:
        add = getattr(state, "add_validation", None)
        if add is None:
            raise InvalidParameterError(f"{algorithm} takes no validation data; train without --validation")
        if checkpoint is None:  # a resumed state holds its validation rows already
            vuris = [validation] if isinstance(validation, (str, os.PathLike)) else list(validation)
            with open_source(vuris if len(vuris) > 1 else vuris[0], format=format, batch_size=batch_size,
                             label_column=label_column, weight_column=weight_column, header=header,
                             n_features=n_features, zero_based=zero_based, vocab=vocab, document=document,
                             on_bad_record="fail" if on_bad_record == "fail" else "skip") as vsrc:
                for vbatch in vsrc:
                    n_validation += add(vbatch)
                    if not state.wants_validation:  # type: ignore[attr-defined]
                        break

    writer = MetricsWriter(metrics)
    bar = _Progress(progress, initial=history_rows)
    start = time.perf_counter()
    rows_this_run = 0
    paused = False
    last_metrics: dict[str, Any] = {}
    sources_desc = [str(u) for u in uris]

    def record(event: str, **more: Any) -> dict[str, Any]:
        elapsed = time.perf_counter() - start
        rec = {
            "event": event,
            "time": round(time.time(), 3),
            "elapsed_s": round(elapsed, 3),
            "epoch": epoch,
            "rows": state.n_rows_seen_,
            "rows_this_run": rows_this_run,
            "rows_per_s": round(rows_this_run / elapsed, 1) if elapsed > 0 else None,
            "skipped": n_skipped,
            "quarantined": n_quarantined,
        }
        metrics_fn = getattr(state, "metrics", None)
        if metrics_fn is not None and state.n_rows_seen_ > 0:
            rec.update(metrics_fn())
        rec.update(more)
        writer.write(rec)
        return rec

    def write_checkpoint(pos: dict[str, Any] | None, done: bool) -> Path:
        assert checkpoint_dir is not None
        return save_checkpoint(checkpoint_dir, state, extra={
            "algorithm": algorithm,
            "epoch": epoch,
            "cursor": pos,
            "finished": done,
            "rows_seen": state.n_rows_seen_,
            "skipped": n_skipped,
            "quarantined": n_quarantined,
            "sources": sources_desc,
            "batch_size": batch_size,
            "metrics": last_metrics,
            "onepass_version": __version__,
        })

    try:
        record("start", resumed_from=str(checkpoint) if checkpoint else None,
               **({"validation_rows": n_validation} if validation is not None else {}))
        paused = not finished and max_rows is not None and state.n_rows_seen_ >= max_rows
        while not finished and not paused and epoch < epochs:
            src = open_source(
                uris if len(uris) > 1 else uris[0], format=format, batch_size=batch_size,
                label_column=label_column, weight_column=weight_column, header=header,
                n_features=n_features, zero_based=zero_based, on_bad_record=on_bad_record,
                quarantine_file=quarantine_file, vocab=vocab, document=document, cursor=cursor,
            )
            rows_since_ckpt, last_ckpt_time, last_metrics_time = 0, time.perf_counter(), time.perf_counter()
            names = getattr(src, "feature_names", None)
            if names is not None and hasattr(state, "name_features"):  # e.g. the words of --vocab
                state.name_features(names)
            with src:
                for batch in read_ahead(src):
                    if feature_dim is not None and batch.X.shape[1] != feature_dim:
                        check_width(feature_dim, batch.X.shape[1], ", ".join(sources_desc))
                    state.update(batch)
                    rows_this_run += batch.n_rows
                    rows_since_ckpt += batch.n_rows
                    # The cursor's totals, not the source's: the source may be reading ahead.
                    n_skipped = int(batch.cursor.get("skipped", n_skipped))
                    n_quarantined = int(batch.cursor.get("quarantined", n_quarantined))
                    bar.update(batch.n_rows)
                    if on_batch is not None:
                        on_batch(state, batch.cursor)
                    now = time.perf_counter()
                    due = (checkpoint_every_rows is not None and rows_since_ckpt >= checkpoint_every_rows) or (
                        checkpoint_every_seconds is not None and now - last_ckpt_time >= checkpoint_every_seconds
                    )
                    if due and checkpoint_dir is not None:
                        checkpoint = write_checkpoint(batch.cursor, False)
                        rows_since_ckpt, last_ckpt_time = 0, now
                        last_metrics = record("checkpoint", checkpoint=str(checkpoint))
                    elif now - last_metrics_time >= metrics_every_seconds:
                        last_metrics = record("progress")
                        last_metrics_time = now
                    if max_rows is not None and state.n_rows_seen_ >= max_rows:
                        paused = True
                        break
                if not paused:  # the source's own totals: every record has been read
                    n_skipped, n_quarantined = src.n_skipped, src.n_quarantined
            if paused:
                if checkpoint_dir is not None:
                    checkpoint = write_checkpoint(batch.cursor, False)
                last_metrics = record("paused", checkpoint=str(checkpoint) if checkpoint else None)
                break
            if state.n_rows_seen_ == 0:
                raise EmptySourceError(f"{', '.join(sources_desc)} yielded no rows; nothing to train on")
            epoch += 1
            cursor = None
            end_epoch = getattr(state, "end_epoch", None)  # e.g. an early-stopping evaluation
            if end_epoch is not None:
                end_epoch()
            stopped = bool(getattr(state, "is_stopped", False))
            finished = epoch >= epochs or stopped
            last_metrics = record("epoch_end", **({"early_stopped": True} if stopped and epoch < epochs else {}))
            if checkpoint_dir is not None:
                checkpoint = write_checkpoint(None, finished)
        model = state.model(**(finalize or {}))
        out_path = None
        if out is not None:
            out_path = save_model(out, model, extra={
                "algorithm": algorithm,
                "finalize": finalize or {},
                "hyperparameters": state.to_arrays()[0].get("hyperparameters", {}),
                "rows_seen": state.n_rows_seen_,
                "epochs": epoch,
                "skipped": n_skipped,
                "quarantined": n_quarantined,
                "sources": sources_desc,
                "metrics": last_metrics,
                "onepass_version": __version__,
            })
            save_state(out_path / STATE_SUBDIR, state, extra={"algorithm": algorithm, "rows_seen": state.n_rows_seen_})
        last_metrics = record("end", out=str(out_path) if out_path else None)
    finally:
        bar.close()
        writer.close()
    return TrainResult(
        state=state, model=model, n_rows_seen=state.n_rows_seen_, n_skipped=n_skipped,
        n_quarantined=n_quarantined, epochs=epoch, checkpoint=checkpoint, out=out_path,
        metrics=last_metrics, paused=paused,
    )
