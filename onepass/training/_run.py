"""A training run, described: one value that the CLI, the Python API, Ray and the
SageMaker container all build, and that one loop (:mod:`onepass.training._loop`) runs.

A :class:`TrainingRun` says what is learned (algorithm, hyperparameters, finalize
settings, seed), from what (:class:`Data`, and optionally validation data), how long
(epochs, ``max_rows``), where it is kept while it runs (:class:`Checkpoints`), what it
reports (:class:`Reporting`), where the model goes (``out``) and, with
:class:`Workers`, on how many Ray workers. :meth:`TrainingRun.check` refuses what
cannot run, with why, before anything is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import IO, TYPE_CHECKING, Any

from onepass.errors import InvalidParameterError

if TYPE_CHECKING:
    from onepass.sources import Source
    from onepass.training._loop import TrainResult

__all__ = ["Checkpoints", "Data", "Reporting", "TrainingRun", "Workers"]

STRATEGIES = ("merge", "parameter-server", "average")


def _is_int(value: Any, low: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= low


@dataclass(frozen=True)
class Data:
    """Where rows come from and how they are read: a URI (or several) and the options of
    :func:`onepass.open_source` but the batch size (the run's) and the cursor (the loop's)."""

    uris: tuple[str, ...]
    format: str | None = None
    label_column: str | int | None = None
    weight_column: str | int | None = None
    header: bool | None = None
    n_features: int | None = None
    zero_based: bool = False
    on_bad_record: str = "fail"
    quarantine_file: str | os.PathLike[str] | None = None
    vocab: Any = None
    document: str = "line"
    series_id_column: str | int | None = None
    timestamp_column: str | int | None = None
    target_column: str | int | None = None
    dynamic_feat_columns: list[str | int] | None = None
    cat_columns: list[str | int] | None = None
    # record transports (redis://, postgresql://)
    stream: str | None = None
    group: str | None = None
    consumer: str | None = None
    query: str | None = None
    key_column: str | None = None
    follow: bool = False
    null: str = "nan"

    @classmethod
    def of(cls, data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], **options: Any) -> Data:
        """``data`` (a URI, a path or a list of them) read with ``options``."""
        uris = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        return cls(tuple(os.fspath(u) for u in uris), **options)

    @property
    def target(self) -> str | list[str]:
        """What :func:`onepass.open_source` is given: the URI, or the list of them."""
        return self.uris[0] if len(self.uris) == 1 else list(self.uris)

    @property
    def is_series_table(self) -> bool:
        """Series given as a long table (one row per series and time step), not JSON lines."""
        named = any(getattr(self, n) is not None for n in ("series_id_column", "timestamp_column", "target_column",
                                                            "dynamic_feat_columns", "cat_columns"))
        from onepass.sources._compression import strip_codec

        tables = (".csv", ".tsv", ".parquet", ".pq")  # compressed too: .csv.gz, .tsv.zst...
        return named or (self.format == "series" and any(strip_codec(u).lower().endswith(tables) for u in self.uris))

    @property
    def reads_stdin(self) -> bool:
        return any(u == "-" for u in self.uris)

    def options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`onepass.open_source` (but batch size and cursor)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "uris"}

    def open(self, batch_size: int, cursor: dict[str, Any] | None = None) -> Source:
        from onepass.sources import open_source

        return open_source(self.target, batch_size=batch_size, cursor=cursor, **self.options())

    def read_as(self, data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Data:
        """Other data read as this is (same format and columns): validation and test rows.
        Bad records in it are skipped (``fail`` still fails), never quarantined."""
        other = Data.of(data)
        from onepass.sources.transports import is_record_uri

        transport = {} if any(is_record_uri(u) for u in other.uris) else {
            "stream": None, "group": None, "consumer": None, "query": None, "key_column": None, "follow": False}
        return replace(self, uris=other.uris, quarantine_file=None,
                       on_bad_record="fail" if self.on_bad_record == "fail" else "skip", **transport)

    @property
    def is_rewindable(self) -> bool:
        """Whether another epoch can read the same records (files and queries can; stdin and
        a stream read by a consumer group deliver them once)."""
        from onepass.sources.transports import is_record_uri, transport_class

        return not self.reads_stdin and all(transport_class(u).is_rewindable for u in self.uris if is_record_uri(u))

    @property
    def is_record_transport(self) -> bool:
        """Records read once from a broker or a database (redis://, postgresql://), not files."""
        from onepass.sources.transports import is_record_uri

        return any(is_record_uri(u) for u in self.uris)


@dataclass(frozen=True)
class Checkpoints:
    """Where the state is kept while the run goes on, and how often.

    A checkpoint is written every ``every_rows`` rows or ``every_seconds`` seconds
    (whichever comes first), at the end of each epoch and where ``max_rows`` pauses; the
    newest ``keep`` are kept (an older one is removed only once a newer is committed).
    ``resume`` goes on from the newest one in ``dir`` that verifies, when there is one: a
    damaged newer one is skipped, with a warning saying which and why, and the rows since
    the older one are read again (for a source that can read them again)."""

    dir: str | os.PathLike[str] | None = None
    every_rows: int | None = None
    every_seconds: float | None = None
    resume: bool = False
    keep: int = 3


@dataclass(frozen=True)
class Reporting:
    """What a run tells while it runs: metrics (JSON lines to a path, ``"-"`` or a file)
    every ``every_seconds`` and at every event, a progress bar (None: when stderr is a
    terminal), and ``on_batch(state, cursor)`` after each batch (tests and hooks)."""

    metrics: str | os.PathLike[str] | IO[str] | None = None
    every_seconds: float = 10.0
    progress: bool | None = False
    on_batch: Callable[[Any, dict[str, Any]], None] | None = None


@dataclass(frozen=True)
class Workers:
    """Train on ``n`` Ray workers (see :mod:`onepass.distributed`): the data is cut into
    shards handed out as workers become free.

    ``strategy``: ``merge`` (each worker trains a state; states merged), or
    ``parameter-server``/``average`` for gradient-trained states. ``sync_every_rows``:
    rows of a piece (what a lost worker can cost; with ``average``, how often models are
    averaged). ``max_staleness``: pushes a parameter-server worker's copy may lag.
    ``shard_bytes``/``shard_rows``: shard size. ``max_restarts``: workers replaced
    before the job gives up (default ``2 * n``). ``env``: environment variables of the
    worker processes. ``on_commit``: called with a dict after each piece is merged.
    ``stall_timeout``: seconds without a piece back or a batch learned before the job
    checkpoints and stops with an error (None: wait forever)."""

    n: int
    ray_address: str | None = None
    strategy: str = "merge"
    sync_every_rows: int = 1_000_000
    max_staleness: int = 4
    shard_bytes: int | None = None
    shard_rows: int | None = None
    max_restarts: int | None = None
    env: Mapping[str, str] | None = None
    on_commit: Callable[[dict[str, Any]], None] | None = None
    stall_timeout: float | None = 600.0


@dataclass(frozen=True)
class TrainingRun:
    """One training run: what is learned, from what, how long, kept where, reported how.

    Parameters
    ----------
    algorithm : str
        A registered algorithm, e.g. ``"kmeans"``.
    data : Data
        The training rows.
    params : mapping
        Hyperparameters of the algorithm's state (e.g. ``{"n_clusters": 10}``).
    finalize : mapping
        Settings of ``state.model(...)`` (e.g. ``{"n_clusters": 5}``).
    seed : int or None
        Seeds the state: same data, same seed, same model.
    batch_size : int
        Rows per mini-batch.
    epochs : int
        Passes over a persistent source, each continuing from the state of the last.
    max_rows : int or None
        Pause once the state has counted this many rows (across resumed runs), at the
        first batch boundary at or after it, checkpointed; a resumed run goes on.
    feature_dim : int or None
        SageMaker's ``feature_dim``: the width the data must have.
    validation : Data or None
        Rows every model is scored on, for states with ``add_validation``.
    checkpoints : Checkpoints
    reporting : Reporting
    out : path or None
        Where the finalized model goes (its final state in ``out/state``).
    workers : Workers or None
        Train on Ray workers; None trains in this process.
    """

    algorithm: str
    data: Data
    params: Mapping[str, Any] = field(default_factory=dict)
    finalize: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    batch_size: int = 8192
    epochs: int = 1
    max_rows: int | None = None
    feature_dim: int | None = None
    validation: Data | None = None
    checkpoints: Checkpoints = Checkpoints()
    reporting: Reporting = Reporting()
    out: str | os.PathLike[str] | None = None
    workers: Workers | None = None

    @classmethod
    def of(
        cls,
        algorithm: str,
        data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        params: Mapping[str, Any] | None = None,
        finalize: Mapping[str, Any] | None = None,
        batch_size: int = 8192,
        format: str | None = None,
        label_column: str | int | None = None,
        weight_column: str | int | None = None,
        header: bool | None = None,
        n_features: int | None = None,
        zero_based: bool = False,
        on_bad_record: str = "fail",
        quarantine_file: str | os.PathLike[str] | None = None,
        vocab: Any = None,
        document: str = "line",
        series_id_column: str | int | None = None,
        timestamp_column: str | int | None = None,
        target_column: str | int | None = None,
        dynamic_feat_columns: list[str | int] | None = None,
        cat_columns: list[str | int] | None = None,
        stream: str | None = None,
        group: str | None = None,
        consumer: str | None = None,
        query: str | None = None,
        key_column: str | None = None,
        follow: bool = False,
        null: str = "nan",
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every_rows: int | None = None,
        checkpoint_every_seconds: float | None = None,
        resume: bool = False,
        keep_checkpoints: int = 3,
        epochs: int = 1,
        max_rows: int | None = None,
        seed: int | None = None,
        metrics: str | os.PathLike[str] | IO[str] | None = None,
        metrics_every_seconds: float = 10.0,
        progress: bool | None = False,
        out: str | os.PathLike[str] | None = None,
        on_batch: Callable[[Any, dict[str, Any]], None] | None = None,
        validation: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        feature_dim: int | None = None,
        workers: Workers | None = None,
    ) -> TrainingRun:
        """The run :func:`onepass.train`'s keyword arguments describe (see there)."""
        source = Data.of(data, format=format, label_column=label_column, weight_column=weight_column,
                         header=header, n_features=n_features, zero_based=zero_based,
                         on_bad_record=on_bad_record, quarantine_file=quarantine_file, vocab=vocab,
                         document=document, series_id_column=series_id_column, timestamp_column=timestamp_column,
                         target_column=target_column, dynamic_feat_columns=dynamic_feat_columns,
                         cat_columns=cat_columns, stream=stream, group=group, consumer=consumer, query=query,
                         key_column=key_column, follow=follow, null=null)
        return cls(
            algorithm=algorithm, data=source, params=dict(params or {}), finalize=dict(finalize or {}),
            seed=seed, batch_size=batch_size, epochs=epochs, max_rows=max_rows, feature_dim=feature_dim,
            validation=None if validation is None else source.read_as(validation),
            checkpoints=Checkpoints(checkpoint_dir, checkpoint_every_rows, checkpoint_every_seconds, resume,
                                    keep_checkpoints),
            reporting=Reporting(metrics, metrics_every_seconds, progress, on_batch),
            out=out, workers=workers,
        )

    def check(self) -> None:
        """Refuse, with why, what this run cannot do; before anything is read."""
        if not _is_int(self.epochs, 1):
            raise InvalidParameterError(f"epochs={self.epochs!r} must be an integer >= 1")
        if not _is_int(self.batch_size, 1):
            raise InvalidParameterError(f"batch_size={self.batch_size!r} must be an integer >= 1")
        if not self.data.uris:
            raise InvalidParameterError("data is empty: give at least one file, folder, glob or URL")
        if self.epochs > 1 and self.data.reads_stdin:
            raise InvalidParameterError(
                f"epochs={self.epochs} needs a source that can be read again; stdin ('-') is read once. "
                "Save the stream to a file, or train with epochs=1")
        if self.epochs > 1 and (self.data.follow or not self.data.is_rewindable):
            raise InvalidParameterError(
                f"epochs={self.epochs} needs a source that can be read again; a stream's entries are delivered "
                "once (and --follow never ends). Train with epochs=1")
        if self.feature_dim is not None and not _is_int(self.feature_dim, 1):
            raise InvalidParameterError(f"feature_dim={self.feature_dim!r} must be None or an integer >= 1")
        if self.max_rows is not None and not _is_int(self.max_rows, 1):
            raise InvalidParameterError(f"max_rows={self.max_rows!r} must be None or an integer >= 1")
        ck = self.checkpoints
        if (ck.every_rows or ck.every_seconds or ck.resume) and ck.dir is None:
            raise InvalidParameterError("checkpointing and resume need checkpoint_dir (--checkpoint-dir)")
        for name, value in (("checkpoint_every_rows", ck.every_rows), ("checkpoint_every_seconds", ck.every_seconds)):
            if value is not None and not value > 0:
                raise InvalidParameterError(f"{name}={value!r} must be > 0")
        if not _is_int(ck.keep, 1):
            raise InvalidParameterError(f"keep_checkpoints={ck.keep!r} must be an integer >= 1 (--keep-checkpoints)")
        if self.workers is not None:
            self._check_workers(self.workers)

    def _check_workers(self, w: Workers) -> None:
        if not _is_int(w.n, 1):
            raise InvalidParameterError(f"workers={w.n!r} must be an integer >= 1")
        if w.strategy not in STRATEGIES:
            raise InvalidParameterError(f"strategy={w.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if not _is_int(w.sync_every_rows, 1):
            raise InvalidParameterError(f"sync_every_rows={w.sync_every_rows!r} must be an integer >= 1")
        if not _is_int(w.max_staleness, 0):
            raise InvalidParameterError(f"max_staleness={w.max_staleness!r} must be an integer >= 0")
        if w.stall_timeout is not None and not (isinstance(w.stall_timeout, (int, float)) and w.stall_timeout > 0):
            raise InvalidParameterError(f"stall_timeout={w.stall_timeout!r} must be a number of seconds > 0, or None")
        refused = {
            "epochs": (self.epochs != 1, "workers train one epoch to the end: drop epochs (--epochs)"),
            "max_rows": (self.max_rows is not None, "workers train to the end: drop max_rows (--max-rows)"),
            "feature_dim": (self.feature_dim is not None,
                            "feature_dim is not checked with workers yet; leave it out (onepass infers the width)"),
            "validation": (self.validation is not None,
                           "validation data is not read with workers yet; hold rows out with "
                           "--validation-fraction instead"),
            "quarantine_file": (self.data.quarantine_file is not None or self.data.on_bad_record == "quarantine",
                                "quarantining is not supported with workers yet; use on_bad_record='skip' "
                                "(--on-bad-record skip)"),
            "vocab": (self.data.vocab is not None or self.data.format == "text",
                      "text and vocabularies are not read by workers yet; train without workers"),
            "on_batch": (self.reporting.on_batch is not None, "on_batch is not called with workers; use on_commit"),
            "follow": (self.data.follow, "workers train to the end of what there is: drop --follow"),
            "series_id_column": (self.data.is_series_table,
                                 "long tables of series are not cut into shards yet; give workers SageMaker's JSON "
                                 "lines of series, or train without workers"),
        }
        for name, (bad, why) in refused.items():
            if bad:
                raise InvalidParameterError(f"{name}: {why}")

    def resolved(self) -> TrainingRun:
        """This run with what its algorithm decides filled in: the source format of data
        without one (a forecaster reads series)."""
        from onepass.state import get_algorithm

        own = get_algorithm(self.algorithm).tags.get("source_format")
        if own is None or self.data.format is not None:
            return self
        return replace(self, data=replace(self.data, format=own),
                       validation=None if self.validation is None else replace(self.validation, format=own))

    def run(self) -> TrainResult:
        """Run it (:func:`onepass.training.run`)."""
        from onepass.training._loop import run

        return run(self)

