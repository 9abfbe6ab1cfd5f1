"""Distributed training on Ray: many workers, one state, nothing lost when a worker dies.

``onepass train ALGO --data ... --workers N`` (or :func:`train_distributed`) cuts the
source into shards without reading it (by file, Parquet row groups, CSV byte ranges
aligned to line starts, ``.npy`` row ranges) and hands them to ``N`` Ray workers
through a work queue. Ray is imported only here, and only when a job starts: without
``--workers`` nothing about Ray is needed (``pip install 'onepass[ray]'`` adds it).

Strategies
----------
``merge`` (sketch algorithms: K-Means, PCA; Linear Learner by model averaging)
    Each worker trains one state on the pieces of shards it is given
    (``sync_every_rows`` rows each) and sends a snapshot of it after each piece; the
    driver keeps the newest snapshot of each worker, recording the shard's cursor in
    the same step, and merges the workers' states at checkpoints and at the end. Merge
    is associative, so which worker read which shard does not matter (PCA's exact mode
    equals one pass up to float rounding).
``parameter-server`` and ``average`` (gradient-trained states)
    For states implementing :class:`ParameterState`: a parameter-server actor holds the
    weights. With ``parameter-server`` workers pull them, learn from a mini-batch and
    push the change, asynchronously, pulling again when their copy is more than
    ``max_staleness`` pushes old. With ``average`` each worker trains on its own copy
    for ``sync_every_rows`` rows and pushes its change divided by the number of workers
    (periodic model averaging). See :mod:`onepass.distributed._parameters` for which
    to choose.

Failures
--------
A worker killed mid-piece loses that piece only: its rows were not committed (its last
committed snapshot is merged into the job), its shard goes back to the queue at the
shard's last recorded cursor, and a new worker starts.
The job checkpoint (``checkpoint_dir``) holds the job state and every shard's cursor,
written atomically by the driver; ``resume=True`` goes on from it after the driver
itself was killed.
"""

from typing import Any

__all__ = ["ParameterState", "plan_shards", "train_distributed"]


def __getattr__(name: str) -> Any:
    if name == "train_distributed":
        from onepass.distributed._job import train_distributed

        return train_distributed
    if name == "plan_shards":
        from onepass.distributed._shards import plan_shards

        return plan_shards
    if name == "ParameterState":
        from onepass.distributed._parameters import ParameterState

        return ParameterState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
