"""The driver of a distributed job: shards to workers, pieces merged, checkpoints, failures.

One loop, in the calling process:

1. plan the shards (metadata only) or load the plan and every shard's cursor from the
   job checkpoint;
2. start ``workers`` Ray actors (:class:`~onepass.distributed._worker.ShardWorker`);
3. give each free worker a piece of a shard (the shard it was reading, or the next one
   waiting: a work queue, so a slow worker holds nothing back); as soon as a piece comes
   back, send the worker its next piece, then commit the piece: keep the snapshot of the
   worker's state it carries (``merge``; with a parameter server, merge the piece's own
   state) and record the shard's cursor in the same step;
4. a worker that dies (its process killed, its node lost) costs its running piece only:
   its last committed snapshot is merged into the job's base state, the shard goes back
   to the queue at its last recorded cursor and a new worker starts;
5. write job checkpoints (the base state merged with every worker's snapshot, plus every
   shard's cursor, atomically, with :func:`onepass.io.save_checkpoint`) every
   ``checkpoint_every_rows`` rows or seconds and at the end; ``resume=True`` goes on
   from the newest one;
6. watch the cluster: workers tell a heartbeat actor of every batch they learn (at most
   once a second); when neither a piece comes back nor a batch is learned for
   ``stall_timeout`` seconds (a node or a Ray system process lost, a worker hung), the
   job checkpoints what it has committed and stops with an error saying how to resume,
   instead of waiting forever.

Rows are counted once by construction: the base state and the workers' snapshots hold
exactly the pieces committed, and each shard's cursor is the end of its last committed
piece. The driver does no training work per piece (a snapshot replaces the previous one
of the same worker), so it takes next to no CPU from the workers; states are merged
once per worker, at checkpoints and at the end.
"""

from __future__ import annotations

import copy
import itertools
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from onepass import _failpoints
from onepass.distributed._parameters import ParameterServer, check_parameter_state
from onepass.distributed._queue import ShardBook
from onepass.distributed._shards import SHARD_BYTES, plan_shards
from onepass.distributed._worker import Heartbeats, ParameterWorker, ShardWorker, piece_seed, worker_seed
from onepass.errors import EmptySourceError, IncompatibleStateError, InvalidParameterError, OnePassError
from onepass.state import get_algorithm
from onepass.training import TrainingRun, TrainResult
from onepass.training._loop import Job
from onepass.training._report import Schedule
from onepass.training._states import make_state

__all__ = ["DEFAULT_STALL_TIMEOUT", "RayPieces", "train_distributed"]

_MIN_AUTO_SHARD = 4 << 20
#: seconds without a piece back or a batch learned before a job is taken for stalled
DEFAULT_STALL_TIMEOUT = 600.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the environment
        raise InvalidParameterError(
            "training with workers needs Ray: pip install 'onepass[ray]' (or train without --workers)") from None
    return ray


def _total_bytes(uris: Any, fmt: str | None) -> int:
    from onepass.distributed._shards import _entries
    from onepass.sources.transports import is_record_uri

    if is_record_uri(uris):  # records, not files: the transport plans its own parts
        return 0

    entries, _ = _entries(uris, fmt)
    return sum(int(e.size() or 0) for e in entries)


class _Cluster:
    """Ray, joined or started for this job (and stopped after, if started here)."""

    def __init__(self, address: str | None, workers: int) -> None:
        self.ray = _import_ray()
        self._started = False
        if not self.ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if address is None:  # a local cluster of this machine alone, on loopback
                kwargs.update(num_cpus=max(workers, os.cpu_count() or 1), _node_ip_address="127.0.0.1")
            self.ray.init(address=address, **kwargs)
            self._started = True

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    ex = ray.exceptions
    return tuple(getattr(ex, n) for n in ("RayActorError", "WorkerCrashedError", "ObjectLostError",
                                          "OwnerDiedError", "NodeDiedError") if hasattr(ex, n))


def _raise_task_error(exc: BaseException) -> None:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, OnePassError):
        raise cause from None
    raise exc


def train_distributed(
    algorithm: str,
    data: Any,
    *,
    workers: int,
    ray_address: str | None = None,
    strategy: str = "merge",
    sync_every_rows: int = 1_000_000,
    max_staleness: int = 4,
    shard_bytes: int | None = None,
    shard_rows: int | None = None,
    max_worker_restarts: int | None = None,
    worker_env: dict[str, str] | None = None,
    on_commit: Callable[[dict[str, Any]], None] | None = None,
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
    **kwargs: Any,
) -> TrainResult:
    """Train ``algorithm`` on ``data`` with ``workers`` Ray workers; one pass, rows counted once.

    The run :func:`onepass.train` describes with ``kwargs`` (one epoch to the end; no
    validation data, quarantine file or vocabulary yet), on workers:

    Parameters
    ----------
    workers : int
        Worker processes (Ray actors of one CPU each).
    ray_address : str or None
        An existing Ray cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
        None joins the Ray already initialized in this process, or starts a local one.
    strategy : {"merge", "parameter-server", "average"}, default "merge"
        ``merge``: each worker trains one state of its own on every piece it is given;
        the workers' states are merged into the job state (at checkpoints and at the end). ``parameter-server`` and ``average``: for
        states that implement :class:`~onepass.distributed.ParameterState`; see
        :mod:`onepass.distributed`.
    sync_every_rows : int, default 1,000,000
        Rows of a piece: how often a worker's work is committed and its shard's cursor
        recorded (what a lost worker can cost), and, with ``average``, how often models
        are averaged.
    max_staleness : int, default 4
        ``parameter-server`` only: how many pushes of other workers a worker's copy of
        the weights may lag behind before it pulls them again.
    shard_bytes, shard_rows : int or None
        Shard size (see :func:`plan_shards`); default about a quarter of the data per
        worker, between 4 and 64 MB.
    max_worker_restarts : int or None
        Workers replaced after failures before the job gives up (default ``2 * workers``).
    worker_env : dict or None
        Environment variables of the worker processes (``OMP_NUM_THREADS``...).
    on_commit : callable, optional
        Called with a dict (shard, rows, cursor, done, worker pids) after each piece is
        merged (tests and hooks).
    stall_timeout : float or None, default 600
        Seconds the cluster may go without a piece coming back or a worker learning a
        batch; then the job checkpoints what it committed (with ``checkpoint_dir``) and
        raises :class:`~onepass.errors.OnePassError` saying how to resume. None waits
        forever. Raise it where workers wait long for nodes (an autoscaling cluster).

    Returns
    -------
    TrainResult
        ``metrics`` also holds ``shards``, ``workers_lost`` and per-worker rows.

    Examples
    --------
    >>> from onepass.distributed import train_distributed
    >>> result = train_distributed("kmeans", "data/*.parquet", workers=4,  # doctest: +SKIP
    ...                            params={"n_clusters": 10}, seed=0, checkpoint_dir="ckpt",
    ...                            checkpoint_every_rows=10_000_000, resume=True)
    >>> result.n_rows_seen, result.metrics["workers_lost"]  # doctest: +SKIP
    (48000000, 0)
    """
    from onepass.training import TrainingRun, Workers

    pool = Workers(workers, ray_address=ray_address, strategy=strategy, sync_every_rows=sync_every_rows,
                   max_staleness=max_staleness, shard_bytes=shard_bytes, shard_rows=shard_rows,
                   max_restarts=max_worker_restarts, env=worker_env, on_commit=on_commit,
                   stall_timeout=stall_timeout)
    return TrainingRun.of(algorithm, data, workers=pool, **kwargs).run()


class RayPieces:
    """The engine of a run on Ray workers (see the module's docstring): its progress is
    the shard book (every shard's cursor), kept in the job's checkpoints."""

    def __init__(self, spec: TrainingRun) -> None:
        assert spec.workers is not None
        self.spec, self.pool = spec, spec.workers
        self.data_arg: Any = spec.data.target
        d = spec.data
        self.source = {"batch_size": spec.batch_size, "label_column": d.label_column,
                       "weight_column": d.weight_column, "header": d.header, "n_features": d.n_features,
                       "zero_based": d.zero_based, "on_bad_record": d.on_bad_record,
                       "stream": {k: v for k in ("stream", "group", "consumer", "query", "key_column", "null")
                                  if (v := getattr(d, k)) is not None}}
        self.book: ShardBook | None = None
        self.job_seed = int(spec.seed) if spec.seed is not None else int.from_bytes(os.urandom(7), "little")
        self.counters: dict[str, Any] = {"workers_lost": 0, "pieces": 0, "worker_cpu_s": 0.0,
                                         "worker_wall_s": 0.0, "worker_idle_s": 0.0}
        self.worker_rows: dict[int, int] = {}

    def start(self, job: Job, manifest: dict[str, Any] | None) -> None:
        if self.pool.strategy != "merge":
            check_parameter_state(get_algorithm(self.spec.algorithm).state, self.pool.strategy)
        uris = list(self.spec.data.uris)
        if manifest is not None:
            info = manifest.get("distributed")
            if info is None:
                raise IncompatibleStateError(
                    f"{job.checkpoint} was written by a single-process run; resume it without --workers, "
                    "or use another --checkpoint-dir")
            if info.get("sources") != uris:
                raise IncompatibleStateError(
                    f"the checkpoint's job read {info.get('sources')}, this run asks {uris}; resume with the same --data")
            self.book, self.job_seed = ShardBook.from_json(info), int(info["seed"])
        else:
            shard_bytes = self.pool.shard_bytes
            if shard_bytes is None:
                per = _total_bytes(self.data_arg, self.spec.data.format) // max(1, 4 * self.pool.n)
                shard_bytes = int(min(SHARD_BYTES, max(_MIN_AUTO_SHARD, per)))
            self.book = ShardBook(plan_shards(self.data_arg, format=self.spec.data.format, shard_bytes=shard_bytes,
                                              shard_rows=self.pool.shard_rows, stream=self.source["stream"],
                                              workers=self.pool.n))
            job.state = make_state(self.spec.algorithm, dict(self.spec.params), self.job_seed)
        job.finished = self.book.is_done
        job.epoch = 1 if job.finished else 0
        self.count(job)

    def count(self, job: Job) -> None:
        """The job's bad-record counts: the shards' totals."""
        assert self.book is not None
        job.skipped, job.quarantined = self.book.total("skipped"), self.book.total("quarantined")

    def rows(self, job: Job) -> int:
        assert self.book is not None
        return self.book.n_rows

    def fields(self) -> dict[str, Any]:
        assert self.book is not None
        c = self.counters
        return {
            "workers": self.pool.n, "workers_lost": c["workers_lost"],
            "shards_done": self.book.n_done, "shards": len(self.book.shards),
            "worker_rows": {str(k): v for k, v in sorted(self.worker_rows.items())},
            "pieces": c["pieces"], "worker_cpu_s": round(c["worker_cpu_s"], 3),
            "worker_wall_s": round(c["worker_wall_s"], 3), "worker_idle_s": round(c["worker_idle_s"], 3),
            "workers_ready_s": c.get("workers_ready_s"),
            **({"server": c["server"]} if "server" in c else {}),
        }

    def checkpoint_fields(self) -> dict[str, Any]:
        assert self.book is not None
        return {"distributed": {"version": 1, "seed": self.job_seed, "sources": list(self.spec.data.uris),
                                "strategy": self.pool.strategy, **self.book.to_json()}}

    def model_fields(self) -> dict[str, Any]:
        return {"workers": self.pool.n}

    def train(self, job: Job) -> None:
        if job.finished:
            return
        assert self.book is not None
        pool, spec = self.pool, self.spec
        if pool.strategy != "merge":
            _warm_up(job.state, self, job)
            check_parameter_state(job.state, pool.strategy)
        cluster = _Cluster(pool.ray_address, pool.n)
        mode: _MergeMode | None = None
        try:
            if pool.strategy == "merge":
                mode = _MergeMode(job.state, pool.sync_every_rows, self.job_seed)
            else:
                mode = _ServerMode(cluster.ray, job.state, pool.sync_every_rows, workers=pool.n,
                                   strategy=pool.strategy, max_staleness=pool.max_staleness,
                                   batch_size=spec.batch_size, timeout=pool.stall_timeout)
            _run_pieces(cluster.ray, mode, self, job)
            job.state = mode.state
            if isinstance(mode, _ServerMode):
                self.counters["server"] = mode.stats()
        finally:
            if mode is not None:
                mode.close()
            cluster.close()
        if self.book.n_rows == 0:
            raise EmptySourceError(f"{', '.join(spec.data.uris)} yielded no rows; nothing to train on")
        job.epoch, job.finished = 1, True
        job.last_metrics = job.record("epoch_end")
        if spec.checkpoints.dir is not None:
            job.save_checkpoint(None, True)
        self.acknowledge()

    def acknowledge(self) -> None:
        """The job's checkpoint holds every shard's cursor: a record transport's shards may
        forget what they read up to there (a stream's consumers ack)."""
        assert self.book is not None
        if any(shard.get("transport") for shard in self.book.shards):
            from onepass.distributed._shards import acknowledge_shards

            acknowledge_shards(self.data_arg, self.spec.data.format, self.source["stream"], self.book.shards,
                               [p["cursor"] for p in self.book.progress])


def _warm_up(state: Any, pieces: RayPieces, job: Job) -> None:
    """Train ``state`` in this process on the first rows until it has parameters to share.

    A parameter server needs parameters that mean the same to every worker (a
    normalization fixed by warm-up rows, the width of the data): the driver reads the
    first shards' rows itself, as pieces recorded like any other, until the state has them.
    """
    from onepass.distributed._shards import iter_shard

    book = pieces.book
    assert book is not None and job.bar is not None
    while state.parameters() is None:
        sid = book.take()
        if sid is None:
            return
        p = book.progress[sid]
        piece = make_state(pieces.spec.algorithm, dict(pieces.spec.params), piece_seed(pieces.job_seed, sid, p["pieces"]))
        rows, cursor, done = 0, p["cursor"], True
        batches = iter_shard(pieces.data_arg, book.shards[sid], pieces.source, cursor)
        for batch in batches:
            piece.update(batch)
            rows += batch.n_rows
            cursor = batch.cursor
            probe = type(state).from_arrays(*state.to_arrays())
            probe.merge(piece)
            if probe.parameters() is not None:
                done = False
                break
        batches.close()
        state.merge(piece)
        book.commit(sid, cursor, rows, done)
        if not done:
            book.give_back(sid)
        job.rows_this_run += rows
        job.bar.update(rows)


def _copy_state(state: Any) -> Any:
    """An independent copy of ``state`` (merging into it leaves ``state`` as it was)."""
    meta, arrays = state.to_arrays()
    return type(state).from_arrays(copy.deepcopy(meta), {k: np.array(v, copy=True) for k, v in arrays.items()})


class _MergeMode:
    """Each worker trains one state; the job state is the base merged with the workers' snapshots.

    ``base`` holds what no running worker holds: the state resumed from, and the last
    committed snapshots of workers that were lost. Per piece the driver only keeps the
    worker's newest snapshot (meta and arrays, as received); states are built and
    merged in :meth:`snapshot`, at checkpoints, progress records and the end.
    """

    actor = ShardWorker

    def __init__(self, state: Any, sync_every_rows: int, job_seed: int) -> None:
        self.state, self.sync, self.job_seed = state, sync_every_rows, job_seed
        self.base = state
        self.held: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}  # worker slot -> committed snapshot

    def actor_args(self, slot: int) -> tuple[Any, ...]:
        return (worker_seed(self.job_seed, slot),)

    def call(self, actor: Any, shard: dict[str, Any], cursor: Any, seed: int, key: str) -> Any:
        return actor.run.remote(shard, cursor, self.sync)

    def commit(self, slot: int, result: dict[str, Any], key: str) -> None:
        self.held[slot] = (result["meta"], result["arrays"])

    def lost(self, slot: int, key: str) -> None:
        held = self.held.pop(slot, None)
        if held is not None:  # the lost worker's committed rows stay in the job
            self.base = self._merged(self.base, [held])

    def _merged(self, base: Any, held: list[tuple[dict[str, Any], dict[str, Any]]]) -> Any:
        job = _copy_state(base)
        for meta, arrays in held:
            job.merge(type(base).from_arrays(meta, arrays))
        return job

    def snapshot(self) -> Any:
        """The job state now: the base merged with every worker's committed snapshot (a new state)."""
        return self._merged(self.base, list(self.held.values()))

    def settle(self) -> None:
        """Make ``state`` the whole job state (at the end)."""
        self.state = self.snapshot()

    def close(self) -> None:
        pass


class _ServerMode(_MergeMode):
    """Pieces train fresh states against a parameter server; their own counts merge into the job state."""

    actor = ParameterWorker

    def __init__(self, ray: Any, state: Any, sync_every_rows: int, *, workers: int, strategy: str,
                 max_staleness: int, batch_size: int, timeout: float | None = None) -> None:
        super().__init__(state, sync_every_rows, 0)
        self.ray = ray
        self.timeout = timeout  # a server that does not answer in this long is taken for lost
        self.server = ray.remote(num_cpus=0)(ParameterServer).remote(state.parameters())
        if strategy == "average":
            self.push_every, self.scale = sync_every_rows, 1.0 / workers
        else:
            self.push_every, self.scale = batch_size, 1.0
        self.max_staleness = max_staleness

    def actor_args(self, slot: int) -> tuple[Any, ...]:
        return ()

    def call(self, actor: Any, shard: dict[str, Any], cursor: Any, seed: int, key: str) -> Any:
        return actor.run_with_server.remote(shard, cursor, self.sync, seed, self.server, key, self.push_every,
                                            self.scale, self.max_staleness)

    def commit(self, slot: int, result: dict[str, Any], key: str) -> None:
        self.server.commit.remote(key)
        # the piece's counts; its parameters are replaced in snapshot()
        self.state.merge(type(self.state).from_arrays(result["meta"], result["arrays"]))

    def lost(self, slot: int, key: str) -> None:
        self.server.discard.remote(key)

    def snapshot(self) -> Any:
        self.settle()
        return self.state

    def settle(self) -> None:
        self.state.set_parameters(self.ray.get(self.server.committed.remote(), timeout=self.timeout))

    def stats(self) -> dict[str, int]:
        return self.ray.get(self.server.stats.remote(), timeout=self.timeout)

    def close(self) -> None:
        self.ray.kill(self.server, no_restart=True)


class _Stalled(Exception):
    """The cluster made no progress for the watchdog's time."""


class _Watchdog:
    """Whether the cluster makes progress: a piece back, an actor answering, or a batch learned
    (counted by the :class:`~onepass.distributed._worker.Heartbeats` actor the workers tell).
    :meth:`check` raises :class:`_Stalled` once none was seen for ``seconds``."""

    def __init__(self, ray: Any, seconds: float | None, heartbeat: Any) -> None:
        self.ray, self.seconds, self.heartbeat = ray, seconds, heartbeat
        #: how long one wait for a piece lasts before the heartbeats are looked at
        self.poll = None if seconds is None else max(0.05, min(5.0, seconds / 4))
        self._last = time.monotonic()
        self._count = 0
        self._asked: Any = None  # a count asked of the heartbeat actor, not answered yet

    def progressed(self) -> None:
        self._last = time.monotonic()

    def check(self) -> None:
        if self.seconds is None:
            return
        if self._asked is None:
            self._asked = self.heartbeat.count.remote()
        ready, _ = self.ray.wait([self._asked], timeout=0)
        if ready:  # an actor that does not answer is no sign of life: its count is not awaited
            count, self._asked = self.ray.get(ready[0]), None
            if count != self._count:
                self._count = count
                self.progressed()
        if time.monotonic() - self._last > self.seconds:
            raise _Stalled

    def get(self, ref: Any) -> Any:
        """``ray.get(ref)``, watched: :class:`_Stalled` if the cluster stops meanwhile."""
        while not self.ray.wait([ref], timeout=self.poll)[0]:
            self.check()
        self.progressed()
        return self.ray.get(ref)


def _stop_stalled(mode: _MergeMode, pieces: RayPieces, job: Job, in_flight: int, seconds: float) -> OnePassError:
    """The error of a stalled job, after checkpointing what it committed (when it can)."""
    spec, book = pieces.spec, pieces.book
    assert book is not None
    where = (f"the cluster made no progress for {seconds:g} s (stall_timeout, --stall-timeout): no piece came back "
             f"and no worker learned a batch ({in_flight} pieces out on {pieces.pool.n} workers); a Ray node or "
             "system process may be lost, or a worker hung. The job stops")
    if spec.checkpoints.dir is None:
        return OnePassError(f"{where}; without a checkpoint directory nothing of it is kept: give --checkpoint-dir "
                            "to make a run that stops resumable")
    try:
        job_state = mode.snapshot()  # a parameter server's weights: asked with a timeout
    except Exception as exc:  # noqa: BLE001 - the server is part of what stalled
        return OnePassError(f"{where}; its parameter server did not answer either ({type(exc).__name__}), so no new "
                            f"checkpoint could be written: the newest one in {spec.checkpoints.dir}, if any, resumes "
                            "it (--resume)")
    path = job.save_checkpoint(None, False, of=job_state)
    pieces.acknowledge()
    job.last_metrics = job.record("stalled", of=job_state, checkpoint=str(path))
    return OnePassError(f"{where}. The {book.n_rows:,} rows it committed are checkpointed in {path}: run it again "
                        "with --resume (resume=True) to go on from there, none counted twice")


def _run_pieces(ray: Any, mode: _MergeMode, pieces: RayPieces, job: Job) -> None:
    """Hand pieces of shards to the pool's actors until every shard is done."""
    pool, spec, book, counters = pieces.pool, pieces.spec, pieces.book, pieces.counters
    assert book is not None and job.bar is not None
    options: dict[str, Any] = {"num_cpus": 1, "max_restarts": 0}
    if pool.env:
        options["runtime_env"] = {"env_vars": dict(pool.env)}
    actor_cls = ray.remote(**options)(mode.actor)
    lost_errors = _lost_errors(ray)
    schedule = Schedule(spec.checkpoints.every_rows, spec.checkpoints.every_seconds, spec.reporting.every_seconds)
    max_restarts = 2 * pool.n if pool.max_restarts is None else pool.max_restarts
    params = dict(spec.params)
    heartbeat = ray.remote(num_cpus=0)(Heartbeats).remote()
    watchdog = _Watchdog(ray, pool.stall_timeout, heartbeat)

    actors: dict[int, Any] = {}
    pids: dict[int, int] = {}
    next_slot = 0

    def start_actor() -> int:
        nonlocal next_slot
        slot, next_slot = next_slot, next_slot + 1
        actors[slot] = actor_cls.remote(spec.algorithm, params, pieces.data_arg, pieces.source, *mode.actor_args(slot),
                                        heartbeat=heartbeat)
        return slot

    last_end: dict[int, float] = {}  # worker slot -> when its last piece ended (its own clock)
    inflight: dict[Any, tuple[int, int, str]] = {}  # object ref -> (actor slot, shard id, piece key)

    sends = itertools.count()

    def send(slot: int, sid: int, cursor: Any, piece: int) -> None:
        # one key per attempt: a lost piece's late pushes never mix with those of its redo
        key = f"{sid}:{piece}:{next(sends)}"
        inflight[mode.call(actors[slot], book.shards[sid], cursor, piece_seed(pieces.job_seed, sid, piece), key)] = (
            slot, sid, key)

    def feed(slot: int) -> None:
        sid = book.take()
        if sid is None:
            ray.kill(actors.pop(slot), no_restart=True)
            pids.pop(slot, None)
        else:
            p = book.progress[sid]
            send(slot, sid, p["cursor"], p["pieces"])

    try:
        for _ in range(pool.n):
            start_actor()
        started = time.perf_counter()
        pid_refs = {slot: actor.pid.remote() for slot, actor in actors.items()}
        for slot, ref in pid_refs.items():
            try:
                pids[slot] = watchdog.get(ref)
            except lost_errors:
                pass
        counters["workers_ready_s"] = round(time.perf_counter() - started, 3)
        for slot in list(actors):
            feed(slot)
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=watchdog.poll)
            if not ready:
                watchdog.check()
                continue
            watchdog.progressed()
            ref = ready[0]
            slot, sid, key = inflight.pop(ref)
            try:
                result = ray.get(ref)
            except lost_errors:
                counters["workers_lost"] += 1
                if counters["workers_lost"] > max_restarts:
                    raise OnePassError(
                        f"{counters['workers_lost']} workers were lost (more than max_worker_restarts={max_restarts}); "
                        "the job stops. Its last checkpoint resumes it.") from None
                mode.lost(slot, key)
                book.give_back(sid)
                actors.pop(slot, None)
                pids.pop(slot, None)
                new = start_actor()
                try:
                    pids[new] = watchdog.get(actors[new].pid.remote())
                except lost_errors:
                    pass
                feed(new)
                job.record("worker_lost", of=mode.snapshot(), shard=sid, workers_lost=counters["workers_lost"])
                continue
            except ray.exceptions.RayTaskError as exc:
                _raise_task_error(exc)
            # the worker's next piece goes out before the merge, so it never waits for the driver
            if result["done"]:
                feed(slot)
            else:
                send(slot, sid, result["cursor"], book.progress[sid]["pieces"] + 1)
            mode.commit(slot, result, key)
            book.commit(sid, result["cursor"], result["rows"], result["done"])
            pieces.count(job)
            job.rows_this_run += result["rows"]
            counters["pieces"] += 1
            counters["worker_cpu_s"] += result["cpu_s"]
            counters["worker_wall_s"] += result["seconds"]
            if slot in last_end:  # the worker's wait between its previous piece and this one
                counters["worker_idle_s"] += max(0.0, result["began"] - last_end[slot])
            last_end[slot] = result["ended"]
            pieces.worker_rows[result["pid"]] = pieces.worker_rows.get(result["pid"], 0) + result["rows"]
            job.bar.update(result["rows"])
            if pool.on_commit is not None:
                pool.on_commit({"shard": sid, "rows": result["rows"], "cursor": result["cursor"],
                                "done": result["done"], "pid": result["pid"], "pids": dict(pids),
                                "n_rows": book.n_rows})
            if spec.checkpoints.dir is not None and schedule.checkpoint_due(result["rows"]):
                job_state = mode.snapshot()
                path = job.save_checkpoint(None, False, of=job_state)
                pieces.acknowledge()
                job.last_metrics = job.record("checkpoint", of=job_state, checkpoint=str(path))
                _failpoints.hit("distributed.after_checkpoint")
            elif schedule.metrics_due():
                job.record("progress", of=mode.snapshot())
    except _Stalled:
        assert pool.stall_timeout is not None
        raise _stop_stalled(mode, pieces, job, len(inflight), pool.stall_timeout) from None
    finally:  # no worker outlives the job (one that hangs is killed too)
        for actor in actors.values():
            ray.kill(actor, no_restart=True)
        ray.kill(heartbeat, no_restart=True)
    mode.settle()
