"""The training loop: a :class:`~onepass.training.TrainingRun` run to its model.

One loop serves every caller (the Python API, the CLI, tuning, Ray and the SageMaker
container). A :class:`Job` holds what every run has: its state (fresh, or resumed from
the newest checkpoint), its counts, its metrics records, its checkpoints and, at the
end, its model and output. How rows reach the state is the run's *engine*:
:class:`InProcess` reads the source here, batch by batch, epoch after epoch;
:class:`onepass.distributed._job.RayPieces` hands pieces of shards to Ray workers.
A run with a checkpoint directory and ``resume`` continues from the newest complete
checkpoint, at the progress saved with it (the source's cursor, or every shard's), so a
process killed at any instant ends with the same model as a run that was never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from onepass._readahead import read_ahead
from onepass._version import __version__
from onepass.errors import (
    CheckpointCorruptError,
    CheckpointSkippedWarning,
    EmptySourceError,
    IncompatibleStateError,
    InvalidParameterError,
)
from onepass.io import save_checkpoint, save_model
from onepass.io._checkpoints import Resumed, load_latest_checkpoint, skipped_message
from onepass.io._models import STATE_SUBDIR, save_state
from onepass.state import Model, State
from onepass.training._report import MetricsWriter, Progress, Schedule
from onepass.training._run import TrainingRun
from onepass.training._states import check_resume, make_state

__all__ = ["Engine", "InProcess", "Job", "TrainResult", "run"]


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


class Engine(Protocol):
    """How a run's rows reach its state."""

    def start(self, job: Job, manifest: dict[str, Any] | None) -> None:
        """Take the engine's progress from a resumed checkpoint's manifest (the job's state
        is the checkpoint's), or start afresh (``manifest`` None)."""

    def train(self, job: Job) -> None:
        """Learn until the run ends or pauses, counting, recording and checkpointing through ``job``."""

    def rows(self, job: Job) -> int:
        """Rows the job has counted."""

    def fields(self) -> dict[str, Any]:
        """The engine's own fields of a metrics record."""

    def checkpoint_fields(self) -> dict[str, Any]:
        """The engine's own fields of a checkpoint's manifest (its progress)."""

    def model_fields(self) -> dict[str, Any]:
        """The engine's own fields of the model's manifest."""


class Job:
    """A run in progress: its state, its counts, its records and checkpoints."""

    def __init__(self, spec: TrainingRun, engine: Engine) -> None:
        self.spec, self.engine = spec, engine
        self.state: State = make_state(spec.algorithm, dict(spec.params), spec.seed)
        self.epoch = 0
        self.finished = self.paused = False
        self.skipped = self.quarantined = 0
        self.rows_this_run = 0
        self.checkpoint: Path | None = None
        self.last_metrics: dict[str, Any] = {}
        self.sources = list(spec.data.uris)
        self.feature_columns: list[str] | None = None  # from the data's header, when it has one
        self.columns: list[str] | None = None
        self.source_format: str | None = spec.data.format
        self.skipped_checkpoints: list[dict[str, str]] = []
        manifest = None
        ck = spec.checkpoints
        if ck.resume and ck.dir is not None and (resumed := self._resume(ck.dir)) is not None:
            check_resume(resumed.manifest, spec.algorithm, self.state)
            self.state, manifest, self.checkpoint = resumed.state, resumed.manifest, resumed.path
        engine.start(self, manifest)
        self._writer: MetricsWriter | None = None
        self.bar: Progress | None = None
        self._start = time.perf_counter()

    def schema(self) -> dict[str, Any]:
        """What the model remembers of its input: the features by name and order (when the
        data had a header), their number, the label and weight columns and the format,
        so that predict, evaluate and serve can match other data to it."""
        data = self.spec.data
        return {"feature_names": self.feature_columns, "columns": self.columns, "n_features": _n_features(self.state),
                "label_column": data.label_column, "weight_column": data.weight_column, "format": self.source_format}

    def _resume(self, directory: str | os.PathLike[str]) -> Resumed | None:
        """The newest checkpoint that verifies; a damaged newer one is skipped, saying so,
        when the rows since the older one can be read again (not from a stream that
        delivered them once and forgot them at the newer one's commit)."""
        resumed = load_latest_checkpoint(directory)
        if resumed is None or not resumed.skipped:
            return resumed
        if not self.spec.data.is_rewindable:
            newest, why = resumed.skipped[0]
            raise CheckpointCorruptError(
                f"{why}. {resumed.path.name} verifies, but {', '.join(self.spec.data.uris)} delivers its records once: "
                f"those acknowledged at {newest.name} cannot be read again, and resuming from {resumed.path.name} "
                f"would skip them. Move {newest} aside to resume from {resumed.path.name} all the same")
        self.skipped_checkpoints = [{"checkpoint": str(path), "reason": why} for path, why in resumed.skipped]
        warnings.warn(f"{skipped_message(resumed)}; the rows since it are read again", CheckpointSkippedWarning,
                      stacklevel=3)
        return resumed

    @property
    def rows(self) -> int:
        return self.engine.rows(self)

    def record(self, event: str, of: State | None = None, **more: Any) -> dict[str, Any]:
        """Write a metrics record (the state's own metrics are ``of``'s, default the job's state)."""
        state = self.state if of is None else of
        elapsed = time.perf_counter() - self._start
        rec: dict[str, Any] = {
            "event": event,
            "time": round(time.time(), 3),
            "elapsed_s": round(elapsed, 3),
            "epoch": self.epoch,
            "rows": self.rows,
            "rows_this_run": self.rows_this_run,
            "rows_per_s": round(self.rows_this_run / elapsed, 1) if elapsed > 0 else None,
            "skipped": self.skipped,
            "quarantined": self.quarantined,
            **self.engine.fields(),
        }
        metrics_fn = getattr(state, "metrics", None)
        if metrics_fn is not None and state.n_rows_seen_ > 0:
            rec.update(metrics_fn())
        rec.update(more)
        if self._writer is not None:
            self._writer.write(rec)
        return rec

    def save_checkpoint(self, cursor: dict[str, Any] | None, done: bool, of: State | None = None) -> Path:
        """Checkpoint ``of`` (default the job's state) with the run's progress: ``cursor``
        (in-process) and the engine's own."""
        assert self.spec.checkpoints.dir is not None
        state = self.state if of is None else of
        self.checkpoint = save_checkpoint(self.spec.checkpoints.dir, state, keep=self.spec.checkpoints.keep, extra={
            "algorithm": self.spec.algorithm,
            "epoch": self.epoch,
            "cursor": cursor,
            "finished": done,
            "rows_seen": state.n_rows_seen_,
            "skipped": self.skipped,
            "quarantined": self.quarantined,
            "sources": self.sources,
            "batch_size": self.spec.batch_size,
            "metrics": self.last_metrics,
            "onepass_version": __version__,
            **self.engine.checkpoint_fields(),
        })
        return self.checkpoint

    def _read_validation(self) -> int:
        """Give the state the validation rows (up to what it keeps); a resumed state has them."""
        spec = self.spec
        if spec.validation is None:
            return 0
        add = getattr(self.state, "add_validation", None)
        if add is None:
            raise InvalidParameterError(f"{spec.algorithm} takes no validation data; train without --validation")
        if self.checkpoint is not None:
            return 0
        n = 0
        with spec.validation.open(spec.batch_size) as src:
            for batch in src:
                n += add(batch)
                if not self.state.wants_validation:  # type: ignore[attr-defined]
                    break
        return n

    def run(self) -> TrainResult:
        spec = self.spec
        n_validation = self._read_validation()
        self._writer = MetricsWriter(spec.reporting.metrics)
        self.bar = Progress(spec.reporting.progress, initial=self.rows, epochs=spec.epochs)
        self._start = time.perf_counter()
        try:
            self.last_metrics = self.record("start", resumed_from=str(self.checkpoint) if self.checkpoint else None,
                                            **({"skipped_checkpoints": self.skipped_checkpoints}
                                               if self.skipped_checkpoints else {}),
                                            **({"validation_rows": n_validation} if spec.validation else {}))
            self.engine.train(self)
            model = self.state.model(**dict(spec.finalize))
            out_path = None
            if spec.out is not None:
                out_path = save_model(spec.out, model, extra={
                    "algorithm": spec.algorithm,
                    "finalize": dict(spec.finalize),
                    "hyperparameters": self.state.to_arrays()[0].get("hyperparameters", {}),
                    "rows_seen": self.state.n_rows_seen_,
                    "epochs": self.epoch,
                    "skipped": self.skipped,
                    "quarantined": self.quarantined,
                    "sources": self.sources,
                    "metrics": self.last_metrics,
                    "schema": self.schema(),
                    "onepass_version": __version__,
                    **self.engine.model_fields(),
                })
                save_state(out_path / STATE_SUBDIR, self.state,
                           extra={"algorithm": spec.algorithm, "rows_seen": self.state.n_rows_seen_})
            self.last_metrics = self.record("end", out=str(out_path) if out_path else None)
        finally:
            self.bar.close()
            self._writer.close()
        return TrainResult(
            state=self.state, model=model, n_rows_seen=self.state.n_rows_seen_, n_skipped=self.skipped,
            n_quarantined=self.quarantined, epochs=self.epoch, checkpoint=self.checkpoint, out=out_path,
            metrics=self.last_metrics, paused=self.paused,
        )


class InProcess:
    """The rows read here, batch by batch (read ahead on a thread), epoch after epoch."""

    def __init__(self) -> None:
        self.cursor: dict[str, Any] | None = None

    def start(self, job: Job, manifest: dict[str, Any] | None) -> None:
        if manifest is None:
            return
        if manifest.get("distributed") is not None:
            raise IncompatibleStateError(
                f"{job.checkpoint} was written by a distributed job (--workers): its progress is one cursor per "
                "shard; resume it with --workers, or use another --checkpoint-dir")
        job.epoch = int(manifest.get("epoch", 0))
        self.cursor = manifest.get("cursor")
        # a finished run asked for more epochs than it ran goes on (unless it stopped early)
        job.finished = bool(manifest.get("finished", False)) and (
            job.epoch >= job.spec.epochs or bool(getattr(job.state, "is_stopped", False)))
        job.skipped, job.quarantined = int(manifest.get("skipped", 0)), int(manifest.get("quarantined", 0))

    def rows(self, job: Job) -> int:
        return job.state.n_rows_seen_

    def fields(self) -> dict[str, Any]:
        return {}

    def checkpoint_fields(self) -> dict[str, Any]:
        return {}

    def model_fields(self) -> dict[str, Any]:
        return {}

    def train(self, job: Job) -> None:
        spec, state = job.spec, job.state
        ck, rep = spec.checkpoints, spec.reporting
        schedule = Schedule(ck.every_rows, ck.every_seconds, rep.every_seconds)
        job.paused = not job.finished and spec.max_rows is not None and state.n_rows_seen_ >= spec.max_rows
        while not job.finished and not job.paused and job.epoch < spec.epochs:
            src = spec.data.open(spec.batch_size, self.cursor)
            try:
                with stop_on_signal(src):
                    self._epoch(job, src, schedule)
            finally:
                src.close()
            if job.paused:
                break

    def _epoch(self, job: Job, src: Any, schedule: Schedule) -> None:
        """Read ``src`` once into the job's state; a source that follows a stream ends
        when stopped (SIGTERM), and the run then pauses at its last batch."""
        spec, state = job.spec, job.state
        ck, rep = spec.checkpoints, spec.reporting
        acknowledge = getattr(src, "acknowledge", None)  # a broker forgets what a checkpoint holds

        def checkpoint(cursor: dict[str, Any] | None, done: bool) -> Path:
            path = job.save_checkpoint(cursor, done)
            if acknowledge is not None:
                acknowledge(cursor if cursor is not None else last)
            return path

        schedule.restart()
        names = getattr(src, "feature_names", None)
        if names is not None and hasattr(state, "name_features"):  # e.g. the words of --vocab
            state.name_features(names)
        last: dict[str, Any] | None = None
        # a drawn bar's total, when the source knows its size (its files' sizes are looked up then)
        fraction_read = getattr(src, "fraction_read", None) if job.bar is not None and job.bar.shown else None
        for batch in read_ahead(src):
            if spec.feature_dim is not None and batch.X.shape[1] != spec.feature_dim:
                from onepass.algorithms._sagemaker_names import check_width

                check_width(spec.feature_dim, batch.X.shape[1], ", ".join(job.sources))
            state.update(batch)
            last = batch.cursor
            job.rows_this_run += batch.n_rows
            # The cursor's totals, not the source's: the source may be reading ahead.
            job.skipped = int(batch.cursor.get("skipped", job.skipped))
            job.quarantined = int(batch.cursor.get("quarantined", job.quarantined))
            assert job.bar is not None
            job.bar.update(batch.n_rows, fraction_read(batch.cursor) if fraction_read else None,
                           batch.cursor.get("rows"))
            if rep.on_batch is not None:
                rep.on_batch(state, batch.cursor)
            if schedule.checkpoint_due(batch.n_rows) and ck.dir is not None:
                path = checkpoint(batch.cursor, False)
                job.last_metrics = job.record("checkpoint", checkpoint=str(path))
            elif schedule.metrics_due():
                job.last_metrics = job.record("progress")
            if spec.max_rows is not None and state.n_rows_seen_ >= spec.max_rows:
                job.paused = True
                break
        job.feature_columns = getattr(src, "feature_columns", None) or job.feature_columns
        job.columns = getattr(src, "columns", None) or job.columns
        job.source_format = getattr(src, "format", None) or job.source_format
        # a follower ends only when stopped, and a stream's entries cannot be read again: the
        # run pauses at its last batch, and --resume goes on with the entries that come next
        stopped = bool(getattr(src, "follows", False)) or (hasattr(src, "transport") and not src.is_rewindable)
        if not job.paused and not stopped:  # the source's own totals: every record has been read
            job.skipped, job.quarantined = src.n_skipped, src.n_quarantined
        if job.paused or stopped:
            job.paused = True
            if ck.dir is not None and last is not None:
                checkpoint(last, False)
            elif acknowledge is not None and last is not None:  # no checkpoints: the run itself holds them
                acknowledge(last)
            job.last_metrics = job.record("paused" if not stopped else "stopped",
                                          checkpoint=str(job.checkpoint) if job.checkpoint else None)
            return
        if state.n_rows_seen_ == 0:
            raise EmptySourceError(f"{', '.join(job.sources)} yielded no rows; nothing to train on")
        job.epoch += 1
        self.cursor = None
        end_epoch = getattr(state, "end_epoch", None)  # e.g. an early-stopping evaluation
        if end_epoch is not None:
            end_epoch()
        early = bool(getattr(state, "is_stopped", False))
        job.finished = job.epoch >= spec.epochs or early
        job.last_metrics = job.record(
            "epoch_end", **({"early_stopped": True} if early and job.epoch < spec.epochs else {}))
        if ck.dir is not None:
            checkpoint(None, job.finished)


@contextlib.contextmanager
def stop_on_signal(src: Any) -> Iterator[None]:
    """While a source that follows a stream is read: SIGTERM or SIGINT stop it at the next
    record boundary (the loop then checkpoints and ends, exit 0), instead of killing the run."""
    if not getattr(src, "follows", False) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        src.stop()

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def run(spec: TrainingRun) -> TrainResult:
    """Run ``spec`` to its model: in this process, or on Ray workers (``spec.workers``)."""
    spec.check()
    spec = spec.resolved()
    if spec.workers is None:
        engine: Engine = InProcess()
    else:
        from onepass.distributed._job import RayPieces

        engine = RayPieces(spec)
    return Job(spec, engine).run()


def _n_features(state: State) -> int | None:
    """The width of the rows ``state`` was trained on, as its fields say."""
    for name in ("n_features_in_", "n_features_", "n_features", "d_"):
        value = getattr(state, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None
