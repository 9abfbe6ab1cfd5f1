"""What one worker process runs: pieces of shards, learned into the worker's own state.

A *piece* is up to ``max_rows`` rows of one shard read from a cursor. With the ``merge``
strategy (:class:`ShardWorker`) a worker keeps one state for the whole job: every piece
it is given, whatever the shard, updates that state, and the worker returns a snapshot
of it (its arrays) with the cursor after the piece's last row. The driver keeps each
worker's newest snapshot and records the shard's cursor in one step, so the snapshots
hold exactly the rows before every shard's recorded cursor: a worker that dies mid-piece
loses only rows that were never counted (its last snapshot stays with the driver), and
the shard resumes at its recorded cursor. One state per worker means the driver merges
a handful of states per job instead of one per piece, and a state seeds (K-Means'
k-means++, Linear Learner's warm-up) once per worker rather than once per piece.

With a parameter server (:class:`ParameterWorker`) each piece trains a fresh state that
starts from the server's parameters (the server's exactly-once protocol is per piece).

The classes are plain Python; :mod:`onepass.distributed._job` makes them Ray actors.
The shard's source stays open between pieces of the same shard, so reading goes on
where it stopped (and a read-ahead thread keeps parsing while the state learns).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from onepass import _failpoints
from onepass._parallel import run_blocks_inline
from onepass._readahead import read_ahead
from onepass.batch import Batch
from onepass.distributed._shards import iter_shard

__all__ = ["HEARTBEAT_SECONDS", "Heartbeats", "ParameterWorker", "ShardWorker", "piece_seed", "worker_seed"]

#: how often, at most, a worker tells the driver's watchdog it is learning
HEARTBEAT_SECONDS = 1.0


class Heartbeats:
    """The batches the job's workers have learned, counted (a Ray actor using no CPU): the
    driver's watchdog sees the cluster making progress while pieces are long."""

    def __init__(self) -> None:
        self.n_batches = 0

    def beat(self, n_batches: int) -> None:
        self.n_batches += int(n_batches)

    def count(self) -> int:
        return self.n_batches


def piece_seed(job_seed: int, shard_id: int, piece: int) -> int:
    """The seed of a piece's state: fixed by the job seed and the piece's place, so a piece
    redone after a failure learns exactly what it would have."""
    return int(np.random.SeedSequence([job_seed, shard_id, piece]).generate_state(1, np.uint64)[0] >> 1)


def worker_seed(job_seed: int, slot: int) -> int:
    """The seed of the state that worker ``slot`` (0, 1, ... in start order) of a job trains."""
    return int(np.random.SeedSequence(job_seed, spawn_key=(slot,)).generate_state(1, np.uint64)[0] >> 1)


class ShardWorker:
    """Trains one state on the pieces of shards it is given (run as a Ray actor by the driver).

    ``seed`` seeds the worker's state (see :func:`worker_seed`); None starts no state
    (a :class:`ParameterWorker` trains a fresh one per piece).
    """

    def __init__(self, algorithm: str, params: dict[str, Any], uris: Any, source: dict[str, Any],
                 seed: int | None = None, inline_blocks: bool = True, heartbeat: Any = None) -> None:
        from onepass.state import get_algorithm
        from onepass.training import make_state

        get_algorithm(algorithm)  # registers the algorithm in this process

        self._blas_limit: Any = None
        if inline_blocks:
            # one core per worker: no second thread for row blocks, none in BLAS either
            # (an SVD on 2 BLAS threads in each of 2 workers on 2 cores runs slower than on 1)
            from threadpoolctl import threadpool_limits

            run_blocks_inline(True)
            self._blas_limit = threadpool_limits(limits=1)
        # and no read-ahead thread: with one, a single worker used ~1.45 cores (measured), more
        # than Ray gave it, and a second worker on 2 cores then had little left to add
        self._read_ahead = not inline_blocks
        self._algorithm, self._params = algorithm, dict(params)
        self._uris, self._source = uris, dict(source)
        self._open: tuple[int, Any, Iterator[Batch]] | None = None  # (shard id, cursor, batches)
        self._state = None if seed is None else make_state(algorithm, params, seed)
        self._local: dict[str, Any] | None = None  # a ParameterWorker's own arrays between pieces
        self._heartbeat = heartbeat  # a Heartbeats actor told of the batches learned (the driver's watchdog)
        self._beaten = 0.0  # when it was last told
        self._unbeaten = 0  # batches learned since

    def pid(self) -> int:
        """This worker's process id (tests kill it)."""
        return os.getpid()

    def _batches(self, shard: dict[str, Any], cursor: dict[str, Any] | None) -> Iterator[Batch]:
        if self._open is not None:
            sid, at, batches = self._open
            if sid == shard["id"] and at == cursor:
                return batches
            getattr(batches, "close", lambda: None)()
        self._open = None
        batches = iter_shard(self._uris, shard, self._source, cursor)
        return read_ahead(batches) if self._read_ahead else batches

    def run(self, shard: dict[str, Any], cursor: dict[str, Any] | None, max_rows: int) -> dict[str, Any]:
        """Update this worker's state with up to ``max_rows`` rows of ``shard`` from ``cursor``.

        Returns a snapshot of the state (``meta``, ``arrays``: every row this worker has
        learned, in this piece and before), the cursor after the last row learned, the
        piece's rows and whether the shard is done.
        """
        if self._state is None:
            raise RuntimeError("this worker was started without a seed, so it holds no state to train")
        started, cpu = time.perf_counter(), time.process_time()
        rows, last, done = self._learn(self._state, shard, cursor, max_rows)
        return self._result(shard, self._state, rows, last, done, started, cpu)

    def _learn(self, state: Any, shard: dict[str, Any], cursor: dict[str, Any] | None, max_rows: int,
               after_batch: Any = None) -> tuple[int, dict[str, Any] | None, bool]:
        """Update ``state`` with up to ``max_rows`` rows of ``shard`` from ``cursor``:
        (rows, cursor after the last, whether the shard is done). The source stays open
        for the next piece of the same shard."""
        batches = self._batches(shard, cursor)
        rows, done, last = 0, False, cursor
        while rows < max_rows:
            try:
                batch = next(batches)
            except StopIteration:
                done = True
                break
            state.update(batch)
            rows += batch.n_rows
            last = batch.cursor
            self._beat()
            _failpoints.hit("distributed.piece_batch")
            if after_batch is not None:
                after_batch(batch.n_rows)
        self._open = None if done else (shard["id"], last, batches)
        return rows, last, done

    def _beat(self) -> None:
        """Tell the heartbeat actor of the batches learned, at most once a second (no reply awaited)."""
        if self._heartbeat is None:
            return
        self._unbeaten += 1
        now = time.monotonic()
        if now - self._beaten >= HEARTBEAT_SECONDS:
            self._heartbeat.beat.remote(self._unbeaten)
            self._beaten, self._unbeaten = now, 0

    @staticmethod
    def _result(shard: dict[str, Any], state: Any, rows: int, last: Any, done: bool, started: float, cpu: float,
                **more: Any) -> dict[str, Any]:
        meta, arrays = state.to_arrays()
        ended = time.perf_counter()  # began/ended: this process's clock, for the idle time between pieces
        return {"shard": shard["id"], "meta": meta, "arrays": arrays, "cursor": last, "rows": rows,
                "done": done, "seconds": ended - started, "began": started, "ended": ended,
                "cpu_s": time.process_time() - cpu, "pid": os.getpid(), **more}


class ParameterWorker(ShardWorker):
    """A worker that also trains against a parameter server (``parameter-server``, ``average``)."""

    def run_with_server(self, shard: dict[str, Any], cursor: dict[str, Any] | None, max_rows: int, seed: int,
                        server: Any, key: str, push_every_rows: int, scale: float, max_staleness: int
                        ) -> dict[str, Any]:
        """Train a fresh state started from the server's parameters on up to ``max_rows`` rows.

        Pushes the change of the parameters every ``push_every_rows`` rows (and at the
        end), under ``key``; pulls again when another worker's pushes made this copy
        more than ``max_staleness`` versions old. Returns what :meth:`run` returns (the
        state's own counts; its parameters are the server's business).
        """
        import ray

        from onepass.distributed._parameters import parameter_delta
        from onepass.training import make_state

        started, cpu = time.perf_counter(), time.process_time()
        state = make_state(self._algorithm, self._params, seed)
        params, version = ray.get(server.pull.remote())
        state.set_parameters(params)
        if self._local is not None and hasattr(state, "set_local_arrays"):
            state.set_local_arrays(self._local)  # this worker's optimizer moments, from its last piece
        base = state.parameters()
        own = 0  # pushes since the last pull
        pulls = 1
        refs: list[Any] = []
        since = 0

        def push() -> None:
            nonlocal base, own, since, params, version, pulls
            now = state.parameters()
            if scale < 1.0:  # model averaging: the server moves towards this copy
                refs.append(server.push.remote(key, now, scale, version + own))
            else:
                refs.append(server.push.remote(key, parameter_delta(now, base), scale))
            base, since = now, 0
            own += 1
            if len(refs) >= 2:  # the answer to the previous push: one push in flight, never more
                seen = ray.get(refs[-2])
                _failpoints.hit("distributed.after_push")  # this piece's pushes so far are applied
                if seen - version - (own - 1) > max_staleness:
                    params, version = ray.get(server.pull.remote())  # after our pushes: the actor runs calls in order
                    state.set_parameters(params)
                    base, own = state.parameters(), 0
                    refs.clear()
                    pulls += 1

        def after_batch(n: int) -> None:
            nonlocal since
            since += n
            if since >= push_every_rows:
                push()

        rows, last, done = self._learn(state, shard, cursor, max_rows, after_batch)
        if since:
            push()
        ray.get(refs)  # every push applied before the driver hears of the piece
        if hasattr(state, "local_arrays"):
            self._local = state.local_arrays()
        return self._result(shard, state, rows, last, done, started, cpu, pulls=pulls)
